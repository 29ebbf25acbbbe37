//! An Anthropic event stream -> OpenAI `chat.completion.chunk`s.
//!
//! - `message_start`: the first chunk (`role: assistant`); id, model and the input usage.
//! - `content_block_start` of `tool_use`: a tool call with its id and name, numbered by the
//!   order of tool blocks (0, 1, ...), whatever the Anthropic block index; its
//!   `input_json_delta`s become argument deltas at that number.
//! - `text_delta`: content deltas. Thinking, signature and server-tool blocks are dropped.
//! - `message_delta`: the stop reason and the cumulative usage; `message_stop`: the chunk with
//!   `finish_reason`, then, when the client asked for it (`stream_options.include_usage`),
//!   the usage-only chunk, then `[DONE]`.
//! - `ping` and unknown events are ignored; an `error` event becomes OpenAI's in-stream error
//!   chunk and ends the stream; an upstream that stops before `message_stop` gets an error
//!   chunk too, so the client never mistakes a cut answer for a whole one.

use crate::protocol::anthropic::{Block, Delta, ErrorDetail, StreamEvent, Usage};
use crate::protocol::openai_chat::{
    Chunk, ChunkChoice, ChunkDelta, FunctionDelta, ToolCallDelta, UsageOut,
};
use crate::protocol::sse::data_of;
use crate::translate::StreamTranslator;
use crate::translate::errors::anthropic_stream_error_to_openai;

use super::finish_reason;

pub struct ChatFromAnthropic {
    created: u64,
    include_usage: bool,
    id: String,
    model: String,
    usage: Option<Usage>,
    /// (Anthropic block index, OpenAI tool call index)
    tools: Vec<(usize, u32)>,
    stop_reason: Option<String>,
    done: bool,
}

impl ChatFromAnthropic {
    /// `include_usage`: whether the client asked for the usage chunk.
    pub fn new(created: u64, include_usage: bool) -> Self {
        ChatFromAnthropic {
            created,
            include_usage,
            id: String::new(),
            model: String::new(),
            usage: None,
            tools: Vec::new(),
            stop_reason: None,
            done: false,
        }
    }

    fn chunk(&self, delta: ChunkDelta, finish: Option<&str>, out: &mut Vec<u8>) {
        Chunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(str::to_owned),
                logprobs: None,
            }],
            usage: None,
        }
        .to_sse(out);
    }

    fn tool_delta(
        &self,
        index: u32,
        id: Option<String>,
        name: Option<String>,
        args: String,
        out: &mut Vec<u8>,
    ) {
        let call = ToolCallDelta {
            index,
            kind: id.as_ref().map(|_| "function".to_string()),
            id,
            function: Some(FunctionDelta {
                name,
                arguments: Some(args),
            }),
        };
        self.chunk(
            ChunkDelta {
                tool_calls: Some(vec![call]),
                ..Default::default()
            },
            None,
            out,
        );
    }

    fn fail(&mut self, e: &ErrorDetail, out: &mut Vec<u8>) {
        out.extend_from_slice(&anthropic_stream_error_to_openai(e));
        self.done = true;
    }

    fn stop(&mut self, out: &mut Vec<u8>) {
        let finish = finish_reason(self.stop_reason.as_deref());
        self.chunk(ChunkDelta::default(), Some(finish), out);
        if self.include_usage {
            Chunk {
                id: self.id.clone(),
                object: "chat.completion.chunk".into(),
                created: self.created,
                model: self.model.clone(),
                choices: Vec::new(),
                usage: Some(UsageOut::from(self.usage.unwrap_or_default().to_openai())),
            }
            .to_sse(out);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }

    fn handle(&mut self, ev: StreamEvent, out: &mut Vec<u8>) {
        match ev {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.usage = Some(message.usage);
                let delta = ChunkDelta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Default::default()
                };
                self.chunk(delta, None, out);
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::Text { text, .. } if !text.is_empty() => {
                    self.chunk(
                        ChunkDelta {
                            content: Some(text),
                            ..Default::default()
                        },
                        None,
                        out,
                    );
                }
                Block::ToolUse {
                    id, name, input, ..
                } => {
                    let n = self.tools.len() as u32;
                    self.tools.push((index, n));
                    // Streams start tool input as `{}` and send it in deltas; a whole input
                    // given here is sent as the first argument delta.
                    let args = match &input {
                        serde_json::Value::Object(m) if !m.is_empty() => input.to_string(),
                        _ => String::new(),
                    };
                    self.tool_delta(n, Some(id), Some(name), args, out);
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                Delta::TextDelta { text } if !text.is_empty() => {
                    self.chunk(
                        ChunkDelta {
                            content: Some(text),
                            ..Default::default()
                        },
                        None,
                        out,
                    );
                }
                Delta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    if let Some(&(_, n)) = self.tools.iter().find(|(i, _)| *i == index) {
                        self.tool_delta(n, None, None, partial_json, out);
                    }
                }
                _ => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                self.usage.get_or_insert_default().merge(&usage);
            }
            StreamEvent::MessageStop => self.stop(out),
            StreamEvent::Error { error } => self.fail(&error, out),
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping | StreamEvent::Other => {}
        }
    }
}

impl StreamTranslator for ChatFromAnthropic {
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let Some(data) = data_of(event) else { return };
        match serde_json::from_slice::<StreamEvent>(&data) {
            Ok(ev) => self.handle(ev, out),
            Err(e) => {
                let detail = ErrorDetail {
                    kind: "api_error".into(),
                    message: format!("the upstream sent an event that is not valid: {e}"),
                };
                self.fail(&detail, out);
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        let whole = self.stop_reason.is_some();
        if self.done {
            return whole;
        }
        if whole {
            // message_delta arrived: the answer is whole, only message_stop is missing.
            self.stop(out);
        } else {
            let detail = ErrorDetail {
                kind: "api_error".into(),
                message: "the upstream stream ended before the message was complete".into(),
            };
            self.fail(&detail, out);
        }
        whole
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        if !self.done {
            out.extend(crate::protocol::Format::Chat.stream_error(code, message));
            self.done = true;
        }
    }

    fn usage(&self) -> Option<crate::protocol::openai::Usage> {
        self.usage.map(Usage::to_openai)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::testutil::{events, run};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const TOOLS: &[u8] = include_bytes!("../../../tests/fixtures/anthropic/stream_tool_use.sse");
    const TEXT: &[u8] =
        include_bytes!("../../../tests/fixtures/anthropic/stream_text_thinking.sse");

    /// (text, tool calls as (id, name, arguments), finish reason, usage)
    type Assembled = (
        String,
        Vec<(String, String, String)>,
        Option<String>,
        Option<Value>,
    );

    /// What an OpenAI client assembles from the chunks.
    fn assemble(out: &[u8]) -> Assembled {
        let mut text = String::new();
        let mut calls: Vec<(String, String, String)> = Vec::new();
        let mut finish = None;
        let mut usage = None;
        for (_, c) in events(out) {
            if let Some(u) = c.get("usage").filter(|u| !u.is_null()) {
                usage = Some(u.clone());
            }
            let Some(choice) = c["choices"].get(0) else {
                continue;
            };
            if let Some(t) = choice["delta"]["content"].as_str() {
                text.push_str(t);
            }
            for tc in choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let i = tc["index"].as_u64().unwrap() as usize;
                if calls.len() <= i {
                    calls.resize(i + 1, Default::default());
                }
                if let Some(id) = tc["id"].as_str() {
                    calls[i].0 = id.into();
                }
                if let Some(n) = tc["function"]["name"].as_str() {
                    calls[i].1 = n.into();
                }
                calls[i]
                    .2
                    .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
        (text, calls, finish, usage)
    }

    #[test]
    fn recorded_tool_stream_translates() {
        let mut t = ChatFromAnthropic::new(1, true);
        let out = run(&mut t, TOOLS, &[]);
        let (text, calls, finish, usage) = assemble(&out);
        assert_eq!(text, "Okay, let's check the weather for San Francisco, CA:");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
        assert_eq!(calls[0].1, "get_weather");
        let args: Value = serde_json::from_str(&calls[0].2).unwrap();
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
        );
        assert_eq!(finish.as_deref(), Some("tool_calls"));
        // input 472 + cache write 100 + cache read 200, output cumulative 89.
        assert_eq!(
            usage.unwrap(),
            json!({"prompt_tokens":772,"completion_tokens":89,"total_tokens":861,"prompt_tokens_details":{"cached_tokens":200}})
        );
        assert!(out.ends_with(b"data: [DONE]\n\n"));
        let u = t.usage().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens()),
            (772, 89, 200)
        );
        let first = &events(&out)[0].1;
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(first["model"], "claude-sonnet-4-5-20250929");
    }

    #[test]
    fn usage_chunk_only_when_asked_and_thinking_dropped() {
        let mut t = ChatFromAnthropic::new(1, false);
        let out = run(&mut t, TEXT, &[]);
        let (text, calls, finish, usage) = assemble(&out);
        assert_eq!(text, "Hello! How can I help?");
        assert!(calls.is_empty());
        assert_eq!(finish.as_deref(), Some("stop"));
        assert!(usage.is_none(), "the client did not ask for usage");
        assert!(
            !String::from_utf8_lossy(&out).contains("ponder"),
            "thinking must not leak"
        );
        assert_eq!(
            t.usage().unwrap().completion_tokens,
            12,
            "the ledger still gets usage"
        );
    }

    #[test]
    fn error_event_and_truncation_become_error_chunks() {
        let stream = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let out = run(&mut ChatFromAnthropic::new(1, true), stream, &[]);
        let evs = events(&out);
        assert_eq!(evs.last().unwrap().1["error"]["code"], "overloaded");
        assert!(!out.ends_with(b"[DONE]\n\n"));
        let cut = &TOOLS[..TOOLS.len() / 2];
        let out = run(&mut ChatFromAnthropic::new(1, true), cut, &[]);
        assert!(
            events(&out).last().unwrap().1["error"]["message"]
                .as_str()
                .unwrap()
                .contains("ended before")
        );
    }

    proptest! {
        #[test]
        fn any_split_carries_the_same_text_and_arguments(mut cuts in proptest::collection::vec(0usize..TOOLS.len(), 0..40)) {
            cuts.sort();
            let whole = assemble(&run(&mut ChatFromAnthropic::new(1, true), TOOLS, &[]));
            let split = assemble(&run(&mut ChatFromAnthropic::new(1, true), TOOLS, &cuts));
            prop_assert_eq!(whole, split);
        }

        #[test]
        fn every_byte_boundary_of_the_text_stream(cut in 0usize..TEXT.len()) {
            let whole = assemble(&run(&mut ChatFromAnthropic::new(1, true), TEXT, &[]));
            let split = assemble(&run(&mut ChatFromAnthropic::new(1, true), TEXT, &[cut]));
            prop_assert_eq!(whole, split);
        }
    }
}
