//! OpenAI `chat.completion.chunk`s -> Responses API stream events.
//!
//! `response.created` and `response.in_progress` first; text deltas open a `message` item
//! (`output_item.added`, `content_part.added`) and stream as `output_text.delta`; each tool
//! call opens a `function_call` item (`output_item.added`) whose argument deltas stream as
//! `function_call_arguments.delta`. A text item is closed when a tool call starts; at the end
//! of the upstream stream every open item is closed (`output_text.done`,
//! `content_part.done`, `function_call_arguments.done`, `output_item.done`) and
//! `response.completed` (or `incomplete`, for `length`) carries the output and usage. An
//! upstream error chunk, or a stream that ends without a `finish_reason`, ends in
//! `response.failed`, so the client never takes a cut answer for a whole one.

use serde_json::{Value, json};

use super::response::{Envelope, message_item, text_part};
use super::status_of;
use crate::protocol::openai::Usage;
use crate::protocol::openai_chat::{Chunk, FunctionCall, ToolCall};
use crate::protocol::sse::data_of;
use crate::translate::StreamTranslator;

struct TextItem {
    output_index: usize,
    id: String,
    text: String,
}

struct CallItem {
    /// The chat tool call index.
    chat_index: u32,
    output_index: usize,
    id: String,
    call: ToolCall,
}

pub struct ResponsesFromChat {
    env: Envelope,
    seq: u64,
    started: bool,
    done: bool,
    /// Finished output items, by output index.
    output: Vec<Value>,
    text: Option<TextItem>,
    calls: Vec<CallItem>,
    next_index: usize,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl ResponsesFromChat {
    pub fn new(env: Envelope) -> Self {
        ResponsesFromChat {
            env,
            seq: 0,
            started: false,
            done: false,
            output: Vec::new(),
            text: None,
            calls: Vec::new(),
            next_index: 0,
            finish_reason: None,
            usage: None,
        }
    }

    fn emit(&mut self, kind: &str, mut body: Value, out: &mut Vec<u8>) {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        let _ = serde_json::to_writer(&mut *out, &body);
        out.extend_from_slice(b"\n\n");
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self
            .env
            .response("in_progress", None, Vec::new(), None, None);
        self.emit("response.created", json!({ "response": r }), out);
        let r = self
            .env
            .response("in_progress", None, Vec::new(), None, None);
        self.emit("response.in_progress", json!({ "response": r }), out);
    }

    fn place(&mut self, item: Value, index: usize) {
        if self.output.len() <= index {
            self.output.resize(index + 1, Value::Null);
        }
        self.output[index] = item;
    }

    fn text_delta(&mut self, delta: &str, out: &mut Vec<u8>) {
        if self.text.is_none() {
            let item = TextItem {
                output_index: self.next_index,
                id: format!("msg_{}_{}", self.env.id, self.next_index),
                text: String::new(),
            };
            self.next_index += 1;
            let added = json!({"output_index": item.output_index, "item": message_item(&item.id, "", "in_progress")});
            self.emit("response.output_item.added", added, out);
            let part = json!({"item_id": item.id, "output_index": item.output_index, "content_index": 0, "part": text_part("")});
            self.emit("response.content_part.added", part, out);
            self.text = Some(item);
        }
        let Some(t) = self.text.as_mut() else { return };
        t.text.push_str(delta);
        let ev = json!({"item_id": t.id, "output_index": t.output_index, "content_index": 0, "delta": delta});
        self.emit("response.output_text.delta", ev, out);
    }

    fn close_text(&mut self, out: &mut Vec<u8>) {
        let Some(t) = self.text.take() else { return };
        let base = json!({"item_id": t.id, "output_index": t.output_index, "content_index": 0});
        let mut ev = base.clone();
        ev["text"] = json!(t.text);
        self.emit("response.output_text.done", ev, out);
        let mut ev = base;
        ev["part"] = text_part(&t.text);
        self.emit("response.content_part.done", ev, out);
        let item = message_item(&t.id, &t.text, "completed");
        let ev = json!({"output_index": t.output_index, "item": item});
        self.emit("response.output_item.done", ev, out);
        self.place(item, t.output_index);
    }

    fn call_delta(
        &mut self,
        chat_index: u32,
        id: Option<String>,
        name: Option<String>,
        args: Option<String>,
        out: &mut Vec<u8>,
    ) {
        let pos = match self.calls.iter().position(|c| c.chat_index == chat_index) {
            Some(p) => p,
            None => {
                self.close_text(out);
                let output_index = self.next_index;
                self.next_index += 1;
                let item = CallItem {
                    chat_index,
                    output_index,
                    id: format!("fc_{}_{output_index}", self.env.id),
                    call: ToolCall {
                        id: id
                            .clone()
                            .unwrap_or_else(|| format!("call_{}_{chat_index}", self.env.id)),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: name.clone().unwrap_or_default(),
                            arguments: String::new(),
                        },
                    },
                };
                let ev = json!({"output_index": output_index, "item": self.env.function_call(&item.id, &item.call, "in_progress")});
                self.emit("response.output_item.added", ev, out);
                self.calls.push(item);
                self.calls.len() - 1
            }
        };
        let Some(args) = args.filter(|a| !a.is_empty()) else {
            return;
        };
        let c = &mut self.calls[pos];
        c.call.function.arguments.push_str(&args);
        let ev = json!({"item_id": c.id, "output_index": c.output_index, "delta": args});
        self.emit("response.function_call_arguments.delta", ev, out);
    }

    fn close_calls(&mut self, out: &mut Vec<u8>) {
        for c in std::mem::take(&mut self.calls) {
            let ev = json!({"item_id": c.id, "output_index": c.output_index, "arguments": c.call.function.arguments});
            self.emit("response.function_call_arguments.done", ev, out);
            let item = self.env.function_call(&c.id, &c.call, "completed");
            let ev = json!({"output_index": c.output_index, "item": item});
            self.emit("response.output_item.done", ev, out);
            self.place(item, c.output_index);
        }
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.start(out);
        self.done = true;
        let error = json!({"code": code, "message": message});
        let output = std::mem::take(&mut self.output);
        let r = self
            .env
            .response("failed", None, output, self.usage.as_ref(), Some(error));
        self.emit("response.failed", json!({ "response": r }), out);
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        self.close_text(out);
        self.close_calls(out);
        self.done = true;
        let (status, incomplete) = status_of(self.finish_reason.as_deref());
        let output: Vec<Value> = std::mem::take(&mut self.output)
            .into_iter()
            .filter(|v| !v.is_null())
            .collect();
        let r = self
            .env
            .response(status, incomplete, output, self.usage.as_ref(), None);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(kind, json!({ "response": r }), out);
    }

    fn chunk(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let v: Value = match serde_json::from_slice(data) {
            Ok(v) => v,
            Err(_) => return,
        };
        if let Some(e) = v.get("error") {
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the upstream failed");
            let code = e
                .get("code")
                .and_then(Value::as_str)
                .or_else(|| e.get("type").and_then(Value::as_str))
                .unwrap_or("server_error");
            let (code, message) = (code.to_string(), message.to_string());
            self.fail(&code, &message, out);
            return;
        }
        let Ok(chunk) = serde_json::from_value::<Chunk>(v) else {
            return;
        };
        self.start(out);
        if let Some(u) = chunk.usage {
            self.usage = Some(Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                prompt_tokens_details: Some(crate::protocol::openai::PromptDetails {
                    cached_tokens: Some(u.cached()),
                }),
            });
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            let d = choice.delta;
            if let Some(text) = d.content.or(d.refusal).filter(|t| !t.is_empty()) {
                self.text_delta(&text, out);
            }
            for tc in d.tool_calls.unwrap_or_default() {
                let (name, args) = tc
                    .function
                    .map(|f| (f.name, f.arguments))
                    .unwrap_or_default();
                self.call_delta(tc.index, tc.id, name, args, out);
            }
            if let Some(f) = choice.finish_reason {
                self.finish_reason = Some(f);
            }
        }
    }
}

impl StreamTranslator for ResponsesFromChat {
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let Some(data) = data_of(event) else { return };
        if data.as_ref() == b"[DONE]" {
            if self.finish_reason.is_some() {
                self.start(out);
                self.complete(out);
            }
            return;
        }
        self.chunk(&data, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        let whole = self.finish_reason.is_some();
        if self.done {
            return whole;
        }
        if whole {
            self.start(out);
            self.complete(out);
        } else {
            self.fail(
                "server_error",
                "the upstream stream ended before the answer was complete",
                out,
            );
        }
        whole
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        if !self.done {
            ResponsesFromChat::fail(self, code, message, out);
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::testutil::{events, run};
    use proptest::prelude::*;

    const TOOL_STREAM: &[u8] = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Writing \"}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"it.\"}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"exec_command\",\"arguments\":\"\"}}]}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"cmd\\\":\"}}]}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"ls\\\"}\"}}]}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n\
data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"total_tokens\":120,\"prompt_tokens_details\":{\"cached_tokens\":40}}}\n\n\
data: [DONE]\n\n";

    fn translator() -> ResponsesFromChat {
        ResponsesFromChat::new(Envelope::new(7, 1, "m", vec![]))
    }

    fn names(evs: &[(Option<String>, Value)]) -> Vec<String> {
        evs.iter()
            .map(|(_, v)| v["type"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn text_then_tool_call_in_order() {
        let mut t = translator();
        let out = run(&mut t, TOOL_STREAM, &[]);
        let evs = events(&out);
        assert_eq!(
            names(&evs),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        // Event names on the wire match the `type`, and sequence numbers count up.
        for (i, (name, v)) in evs.iter().enumerate() {
            assert_eq!(name.as_deref(), v["type"].as_str());
            assert_eq!(v["sequence_number"], i);
        }
        let done = &evs.last().unwrap().1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Writing it.");
        assert_eq!(done["output"][1]["type"], "function_call");
        assert_eq!(done["output"][1]["call_id"], "call_1");
        assert_eq!(done["output"][1]["arguments"], "{\"cmd\":\"ls\"}");
        assert_eq!(done["usage"]["input_tokens"], 100);
        assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 40);
        assert_eq!(done["usage"]["total_tokens"], 120);
        assert_eq!(evs[12].1["arguments"], "{\"cmd\":\"ls\"}");
        assert_eq!(t.usage().unwrap().completion_tokens, 20);
    }

    #[test]
    fn cut_stream_fails_and_error_chunk_fails() {
        let mut t = translator();
        let out = run(
            &mut t,
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hal\"}}]}\n\n",
            &[],
        );
        let evs = events(&out);
        let last = &evs.last().unwrap().1;
        assert_eq!(last["type"], "response.failed");
        assert_eq!(last["response"]["status"], "failed");

        let mut t = translator();
        let out = run(
            &mut t,
            b"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
            &[],
        );
        let evs = events(&out);
        assert_eq!(
            names(&evs),
            [
                "response.created",
                "response.in_progress",
                "response.failed"
            ]
        );
        assert_eq!(evs[2].1["response"]["error"]["message"], "overloaded");
    }

    #[test]
    fn length_ends_incomplete() {
        let mut t = translator();
        let out = run(
            &mut t,
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n",
            &[],
        );
        let last = events(&out).pop().unwrap().1;
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
    }

    proptest! {
        #[test]
        fn any_byte_split_gives_the_same_events(mut cuts in proptest::collection::vec(0usize..TOOL_STREAM.len(), 0..10)) {
            cuts.sort_unstable();
            let whole = run(&mut translator(), TOOL_STREAM, &[]);
            let split = run(&mut translator(), TOOL_STREAM, &cuts);
            prop_assert_eq!(whole, split);
        }
    }
}
