//! An Anthropic Messages response -> an OpenAI chat completion.
//!
//! Text blocks are joined into `content` (null when there is none), `tool_use` blocks become
//! `tool_calls` (input serialised as the arguments string), the stop reason maps as
//! `finish_reason` says, usage counts every prompt token once. Thinking and redacted
//! thinking blocks are dropped (chat completions has no field that round-trips their
//! signature), as are server-tool blocks.

use crate::protocol::anthropic::{Block, MessagesResponse};
use crate::protocol::openai_chat::{ChatCompletion, Choice, ResponseMessage, ToolCall, UsageOut};

use super::finish_reason;

pub fn translate(resp: MessagesResponse, created: u64) -> ChatCompletion {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in resp.content {
        match block {
            Block::Text { text: t, .. } => text.push_str(&t),
            Block::ToolUse {
                id, name, input, ..
            } => calls.push(ToolCall::function(id, name, input.to_string())),
            _ => {}
        }
    }
    let content = (!text.is_empty() || calls.is_empty()).then_some(text);
    ChatCompletion {
        id: resp.id,
        object: "chat.completion".into(),
        created,
        model: resp.model,
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".into(),
                content,
                tool_calls: (!calls.is_empty()).then_some(calls),
                refusal: None,
            },
            finish_reason: Some(finish_reason(resp.stop_reason.as_deref()).into()),
            logprobs: None,
        }],
        usage: Some(UsageOut::from(resp.usage.to_openai())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn recorded_tool_use_response_translates() {
        let resp: MessagesResponse = serde_json::from_str(include_str!(
            "../../../tests/fixtures/anthropic/messages_response_tool_use.json"
        ))
        .unwrap();
        let got = serde_json::to_value(translate(resp, 1700000000)).unwrap();
        let want: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/anthropic/messages_response_tool_use.openai.json"
        ))
        .unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn stop_reasons_map() {
        for (stop, want) in [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("stop_sequence", "stop"),
            ("refusal", "content_filter"),
        ] {
            let resp: MessagesResponse = serde_json::from_value(json!({"id":"m","content":[{"type":"text","text":"x"}],"stop_reason":stop,"usage":{"input_tokens":1,"output_tokens":1}})).unwrap();
            assert_eq!(
                translate(resp, 0).choices[0].finish_reason.as_deref(),
                Some(want)
            );
        }
    }

    #[test]
    fn thinking_is_dropped_and_text_kept() {
        let resp: MessagesResponse = serde_json::from_value(json!({"id":"m","model":"c","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"answer"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}})).unwrap();
        let c = translate(resp, 0);
        assert_eq!(c.choices[0].message.content.as_deref(), Some("answer"));
        assert_eq!(c.usage.unwrap().total_tokens, 5);
    }
}
