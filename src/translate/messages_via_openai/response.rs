//! An OpenAI chat completion -> an Anthropic message.
//!
//! `content` (and a `refusal`) -> a text block, `tool_calls` -> `tool_use` blocks, the
//! finish reason -> `stop_reason` (`stop_sequence` stays null: OpenAI does not say which
//! one matched), usage -> input / cache read / output tokens. `reasoning_content` of
//! reasoning servers is dropped. Tool arguments that are not a JSON object are passed as
//! `{"_unparsed_arguments": "<text>"}`, so that the client's input validation tells the
//! model what went wrong instead of the whole turn failing.

use serde_json::{Value, json};

use crate::protocol::anthropic::{Block, MessagesResponse};
use crate::protocol::openai_chat::ChatCompletion;
use crate::translate::parse_arguments;

use super::{message_id, stop_reason, usage_of};

pub fn tool_input(arguments: &str) -> Value {
    parse_arguments(arguments)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({ "_unparsed_arguments": arguments }))
}

pub fn translate(resp: ChatCompletion) -> MessagesResponse {
    let mut content = Vec::new();
    let mut finish = None;
    if let Some(choice) = resp.choices.into_iter().next() {
        finish = choice.finish_reason;
        let m = choice.message;
        for text in [m.content, m.refusal]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_empty())
        {
            content.push(Block::Text {
                text,
                cache_control: None,
            });
        }
        for call in m.tool_calls.unwrap_or_default() {
            let input = tool_input(&call.function.arguments);
            content.push(Block::ToolUse {
                id: call.id,
                name: call.function.name,
                input,
                cache_control: None,
            });
        }
    }
    let has_tools = content.iter().any(|b| matches!(b, Block::ToolUse { .. }));
    MessagesResponse {
        id: message_id(&resp.id),
        kind: "message".into(),
        role: "assistant".into(),
        model: resp.model,
        stop_reason: Some(stop_reason(finish.as_deref(), has_tools).into()),
        stop_sequence: None,
        usage: resp.usage.as_ref().map(usage_of).unwrap_or_default(),
        content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(v: Value) -> Value {
        serde_json::to_value(translate(serde_json::from_value(v).unwrap())).unwrap()
    }

    #[test]
    fn recorded_tool_call_response_translates() {
        let got = tr(serde_json::from_str(include_str!(
            "../../../tests/fixtures/anthropic/chat_response_tool_calls.json"
        ))
        .unwrap());
        let want: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/anthropic/chat_response_tool_calls.anthropic.json"
        ))
        .unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn finish_reasons_map_and_bad_arguments_survive() {
        let v = tr(
            json!({"id":"c","model":"q","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"length"}]}),
        );
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(v["usage"]["input_tokens"], 0);
        let v = tr(
            json!({"id":"c","model":"q","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{not json"}}]},"finish_reason":"stop"}]}),
        );
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(
            v["content"][0]["input"],
            json!({"_unparsed_arguments":"{not json"})
        );
    }
}
