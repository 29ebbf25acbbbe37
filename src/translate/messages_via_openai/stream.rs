//! OpenAI `chat.completion.chunk`s -> the Anthropic event sequence: `message_start`, then per
//! content block `content_block_start` / `content_block_delta`s / `content_block_stop`, then
//! `message_delta` (stop reason and usage) and `message_stop`.
//!
//! Text deltas open a text block; a tool call with a new index closes the open block and
//! opens a `tool_use` block, its argument fragments become `input_json_delta`s. The usage
//! chunk (the request always asks for it) arrives after the finish reason, so the closing
//! events are written at `[DONE]` (or when the upstream ends after a finish reason).
//! An in-stream error, an unreadable chunk, or an upstream that stops without a finish
//! reason ends the stream with an Anthropic `error` event. `reasoning_content` is dropped.

use crate::protocol::anthropic::{
    Block, Delta, DeltaUsage, ErrorDetail, MessageDeltaBody, MessagesResponse, StreamEvent, Usage,
};
use crate::protocol::openai_chat::{Chunk, UsageOut};
use crate::protocol::sse::data_of;
use crate::translate::StreamTranslator;
use crate::translate::errors::openai_message;

use super::{message_id, stop_reason, usage_of};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Tool(usize),
}

#[derive(Default)]
pub struct MessagesFromOpenAi {
    started: bool,
    open: Option<Open>,
    next_block: usize,
    /// (OpenAI tool call index, Anthropic block index)
    tools: Vec<(u32, usize)>,
    finish: Option<String>,
    usage: Option<UsageOut>,
    done: bool,
}

impl MessagesFromOpenAi {
    pub fn new() -> Self {
        Self::default()
    }

    fn emit(ev: StreamEvent, out: &mut Vec<u8>) {
        ev.to_sse(out);
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        if let Some(Open::Text(index) | Open::Tool(index)) = self.open.take() {
            Self::emit(StreamEvent::ContentBlockStop { index }, out);
        }
    }

    fn start_block(&mut self, block: Block, out: &mut Vec<u8>) -> usize {
        self.close_open(out);
        let index = self.next_block;
        self.next_block += 1;
        Self::emit(
            StreamEvent::ContentBlockStart {
                index,
                content_block: block,
            },
            out,
        );
        index
    }

    fn text(&mut self, text: String, out: &mut Vec<u8>) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                let i = self.start_block(
                    Block::Text {
                        text: String::new(),
                        cache_control: None,
                    },
                    out,
                );
                self.open = Some(Open::Text(i));
                i
            }
        };
        Self::emit(
            StreamEvent::ContentBlockDelta {
                index,
                delta: Delta::TextDelta { text },
            },
            out,
        );
    }

    fn fail(&mut self, message: String, out: &mut Vec<u8>) {
        Self::emit(
            StreamEvent::Error {
                error: ErrorDetail {
                    kind: "api_error".into(),
                    message,
                },
            },
            out,
        );
        self.done = true;
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
        let usage = self.usage.as_ref().map(usage_of).unwrap_or_default();
        let delta = MessageDeltaBody {
            stop_reason: Some(stop_reason(self.finish.as_deref(), !self.tools.is_empty()).into()),
            stop_sequence: None,
        };
        let usage = DeltaUsage {
            input_tokens: Some(usage.input_tokens),
            output_tokens: Some(usage.output_tokens),
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
        };
        Self::emit(StreamEvent::MessageDelta { delta, usage }, out);
        Self::emit(StreamEvent::MessageStop, out);
        self.done = true;
    }

    fn chunk(&mut self, c: Chunk, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            let message = MessagesResponse {
                id: message_id(&c.id),
                kind: "message".into(),
                role: "assistant".into(),
                model: c.model.clone(),
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: Usage {
                    input_tokens: 0,
                    output_tokens: 0,
                    ..Default::default()
                },
            };
            Self::emit(StreamEvent::MessageStart { message }, out);
        }
        if c.usage.is_some() {
            self.usage = c.usage;
        }
        // Only choice 0 exists: the translated request never asks for n > 1.
        let Some(choice) = c.choices.into_iter().find(|ch| ch.index == 0) else {
            return;
        };
        let d = choice.delta;
        for text in [d.content, d.refusal]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_empty())
        {
            self.text(text, out);
        }
        for tc in d.tool_calls.unwrap_or_default() {
            let index = match self.tools.iter().find(|(n, _)| *n == tc.index) {
                Some(&(_, i)) => i,
                None => {
                    let f = tc.function.as_ref();
                    let id = tc
                        .id
                        .clone()
                        .unwrap_or_else(|| format!("toolu_{}", self.tools.len()));
                    let name = f.and_then(|f| f.name.clone()).unwrap_or_default();
                    let block = Block::ToolUse {
                        id,
                        name,
                        input: serde_json::json!({}),
                        cache_control: None,
                    };
                    let i = self.start_block(block, out);
                    self.open = Some(Open::Tool(i));
                    self.tools.push((tc.index, i));
                    i
                }
            };
            if let Some(args) = tc
                .function
                .and_then(|f| f.arguments)
                .filter(|a| !a.is_empty())
            {
                Self::emit(
                    StreamEvent::ContentBlockDelta {
                        index,
                        delta: Delta::InputJsonDelta { partial_json: args },
                    },
                    out,
                );
            }
        }
        if choice.finish_reason.is_some() {
            self.finish = choice.finish_reason;
        }
    }
}

impl StreamTranslator for MessagesFromOpenAi {
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let Some(data) = data_of(event) else { return };
        if data.as_ref() == b"[DONE]" {
            self.finish(out);
            return;
        }
        #[derive(serde::Deserialize)]
        struct MaybeError {
            error: Option<serde_json::Value>,
        }
        if let Ok(MaybeError { error: Some(e) }) = serde_json::from_slice(&data)
            && !e.is_null()
        {
            let message = openai_message(&data);
            self.fail(message, out);
            return;
        }
        match serde_json::from_slice::<Chunk>(&data) {
            Ok(c) => self.chunk(c, out),
            Err(e) => self.fail(
                format!("the upstream sent a chunk that is not valid: {e}"),
                out,
            ),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        let whole = self.started && self.finish.is_some();
        if self.done {
            return whole;
        }
        if whole {
            self.close(out);
        } else {
            self.fail(
                "the upstream stream ended before the message was complete".into(),
                out,
            );
        }
        whole
    }

    fn fail(&mut self, _code: &str, message: &str, out: &mut Vec<u8>) {
        if !self.done {
            MessagesFromOpenAi::fail(self, message.to_string(), out);
        }
    }

    fn usage(&self) -> Option<crate::protocol::openai::Usage> {
        self.usage.map(|u| crate::protocol::openai::Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            prompt_tokens_details: Some(crate::protocol::openai::PromptDetails {
                cached_tokens: Some(u.cached()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::testutil::{events, run};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const TOOLS: &[u8] =
        include_bytes!("../../../tests/fixtures/anthropic/chat_stream_tool_calls.sse");

    /// What an Anthropic client assembles: event names in order, text, tool inputs, stop, usage.
    type Assembled = (
        Vec<String>,
        String,
        Vec<(String, String, String)>,
        Value,
        Value,
    );

    fn assemble(out: &[u8]) -> Assembled {
        let mut names = Vec::new();
        let mut text = String::new();
        let mut tools: Vec<(usize, String, String, String)> = Vec::new();
        let mut stop = Value::Null;
        let mut usage = Value::Null;
        for (name, e) in events(out) {
            assert_eq!(
                name.as_deref(),
                e["type"].as_str(),
                "event: line matches type"
            );
            names.push(name.unwrap());
            match e["type"].as_str().unwrap() {
                "content_block_start" if e["content_block"]["type"] == "tool_use" => tools.push((
                    e["index"].as_u64().unwrap() as usize,
                    e["content_block"]["id"].as_str().unwrap().into(),
                    e["content_block"]["name"].as_str().unwrap().into(),
                    String::new(),
                )),
                "content_block_delta" => match e["delta"]["type"].as_str().unwrap() {
                    "text_delta" => text.push_str(e["delta"]["text"].as_str().unwrap()),
                    "input_json_delta" => {
                        let i = e["index"].as_u64().unwrap() as usize;
                        let t = tools
                            .iter_mut()
                            .find(|t| t.0 == i)
                            .expect("delta for a started tool block");
                        t.3.push_str(e["delta"]["partial_json"].as_str().unwrap());
                    }
                    other => panic!("unexpected delta {other}"),
                },
                "message_delta" => {
                    stop = e["delta"]["stop_reason"].clone();
                    usage = e["usage"].clone();
                }
                _ => {}
            }
        }
        (
            names,
            text,
            tools.into_iter().map(|t| (t.1, t.2, t.3)).collect(),
            stop,
            usage,
        )
    }

    #[test]
    fn recorded_tool_call_stream_translates() {
        let mut t = MessagesFromOpenAi::new();
        let out = run(&mut t, TOOLS, &[]);
        let (names, text, tools, stop, usage) = assemble(&out);
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(text, "Let me write both.");
        assert_eq!(tools.len(), 2);
        assert_eq!(
            (tools[0].0.as_str(), tools[0].1.as_str()),
            ("call_a", "Write")
        );
        assert_eq!(
            serde_json::from_str::<Value>(&tools[0].2).unwrap(),
            json!({"file_path": "a.txt", "content": "A"})
        );
        assert_eq!(
            serde_json::from_str::<Value>(&tools[1].2).unwrap(),
            json!({"file_path": "b.txt", "content": "B"})
        );
        assert_eq!(stop, "tool_use");
        assert_eq!(
            usage,
            json!({"input_tokens": 80, "output_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 20})
        );
        let u = t.usage().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens()),
            (100, 40, 20)
        );
        // message_start is a full message skeleton.
        let start = &events(&out)[0].1;
        assert_eq!(start["message"]["content"], json!([]));
        assert_eq!(start["message"]["stop_reason"], Value::Null);
        assert_eq!(start["message"]["id"], "msg_chatcmpl-1");
    }

    #[test]
    fn errors_and_cut_streams_end_with_an_error_event() {
        let out = run(
            &mut MessagesFromOpenAi::new(),
            b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n",
            &[],
        );
        let evs = events(&out);
        assert_eq!(
            evs.last().unwrap().1,
            json!({"type":"error","error":{"type":"api_error","message":"boom"}})
        );
        let cut = b"data: {\"id\":\"c\",\"model\":\"q\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hal\"}}]}\n\n";
        let out = run(&mut MessagesFromOpenAi::new(), cut, &[]);
        assert_eq!(events(&out).last().unwrap().1["type"], "error");
        // A finish reason without [DONE] still closes properly.
        let no_done = b"data: {\"id\":\"c\",\"model\":\"q\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n";
        let (names, text, _, stop, _) =
            assemble(&run(&mut MessagesFromOpenAi::new(), no_done, &[]));
        assert_eq!(
            (names.last().unwrap().as_str(), text.as_str(), stop),
            ("message_stop", "hi", json!("end_turn"))
        );
    }

    proptest! {
        #[test]
        fn any_split_carries_the_same_text_and_arguments(mut cuts in proptest::collection::vec(0usize..TOOLS.len(), 0..40)) {
            cuts.sort();
            let whole = assemble(&run(&mut MessagesFromOpenAi::new(), TOOLS, &[]));
            let split = assemble(&run(&mut MessagesFromOpenAi::new(), TOOLS, &cuts));
            prop_assert_eq!(whole, split);
        }
    }
}
