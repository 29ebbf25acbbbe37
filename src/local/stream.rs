//! The stream side: every chunk normalised, and, when the request offered tools, the
//! content held back until it is clear whether it is a call in disguise. Content that opens
//! with prose is released at once and streams on; content that opens like a call is held
//! to the end, then sent as proper `tool_calls` deltas (or, if it is no valid call, as the
//! content it was). Pure: whole SSE events in, SSE events out.

use bytes::Bytes;
use serde_json::{Value, json};

use super::normalize;
use super::offer::ToolOffer;
use super::toolcall::{self, Outcome, Start};
use crate::protocol::sse::data_of;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Chunks are normalised and passed on.
    Pass,
    /// Chunks are held while the content could still be a call.
    Hold,
}

pub struct StreamFix {
    model: String,
    quoted_model: Vec<u8>,
    offer: Option<ToolOffer>,
    mode: Mode,
    held: Vec<Value>,
    content: String,
    outcome: Option<Outcome>,
}

impl StreamFix {
    pub fn new(model: &str, offer: Option<ToolOffer>) -> Self {
        let mode = if offer.is_some() {
            Mode::Hold
        } else {
            Mode::Pass
        };
        StreamFix {
            model: model.to_string(),
            quoted_model: normalize::quoted(model),
            offer,
            mode,
            held: Vec::new(),
            content: String::new(),
            outcome: None,
        }
    }

    /// The repair's outcome, once the held content was judged (None if nothing was held).
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Feeds one whole SSE event; what may go to the client now is appended to `out`.
    pub fn push(&mut self, event: Bytes, out: &mut Vec<Bytes>) {
        let Some(data) = data_of(&event) else {
            // Comments and keep-alives.
            if self.mode == Mode::Pass {
                out.push(event);
            }
            return;
        };
        if data.as_ref() == b"[DONE]" {
            self.finish(out);
            out.push(event);
            return;
        }
        if self.mode == Mode::Pass && !normalize::needs_fix(&data) {
            // The common case: only the model changes; the event is built in one buffer.
            let mut b = Vec::with_capacity(data.len() + self.quoted_model.len() + 8);
            b.extend_from_slice(b"data: ");
            if normalize::splice_model(&data, &self.quoted_model, &mut b) {
                b.extend_from_slice(b"\n\n");
                out.push(Bytes::from(b));
                return;
            }
        }
        let Ok(mut v) = serde_json::from_slice::<Value>(&data) else {
            self.release(out);
            out.push(event);
            return;
        };
        if v.get("error").is_some() {
            self.release(out);
            let status = v
                .pointer("/error/code")
                .and_then(Value::as_u64)
                .unwrap_or(500);
            out.push(sse(&normalize::error_body(
                u16::try_from(status).unwrap_or(500),
                &data,
            )));
            return;
        }
        normalize::chunk(&mut v, &self.model);
        if self.mode == Mode::Pass {
            out.push(sse_value(&v));
            return;
        }
        let choices = v
            .get("choices")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        // Several choices, or a server that sends real tool calls: nothing to repair.
        let plain = choices.iter().all(|c| {
            c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0
                && c.pointer("/delta/tool_calls").is_none()
        });
        if !plain {
            self.release(out);
            out.push(sse_value(&v));
            return;
        }
        if let Some(text) = choices
            .first()
            .and_then(|c| c.pointer("/delta/content"))
            .and_then(Value::as_str)
        {
            self.content.push_str(text);
        }
        self.held.push(v);
        if toolcall::start_of(&self.content) == Start::Prose {
            self.judge();
            self.release(out);
        }
    }

    /// The stream ended (with `[DONE]` or without): judge and send what was held.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.mode != Mode::Hold {
            return;
        }
        self.judge();
        if let Some(Outcome::Repaired(calls)) = &self.outcome {
            let calls = calls.clone();
            out.extend(self.as_tool_calls(&calls));
            self.held.clear();
            self.mode = Mode::Pass;
        } else {
            self.release(out);
        }
    }

    fn judge(&mut self) {
        if let (Some(offer), None) = (&self.offer, &self.outcome) {
            self.outcome = Some(toolcall::repair(offer, &self.content));
        }
    }

    /// Sends the held chunks as they came (normalised) and streams on.
    fn release(&mut self, out: &mut Vec<Bytes>) {
        out.extend(self.held.drain(..).map(|v| sse_value(&v)));
        self.mode = Mode::Pass;
    }

    /// The held answer as OpenAI streams a tool call: a role delta with the calls, a finish
    /// chunk with `tool_calls`, then whatever held chunks had no choices (usage).
    fn as_tool_calls(&self, calls: &[toolcall::ToolCall]) -> Vec<Bytes> {
        let Some(first) = self.held.first() else {
            return Vec::new();
        };
        let id = first
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("local")
            .to_string();
        let with_choice = |choice: Value| {
            let mut c = first.clone();
            if let Value::Object(m) = &mut c {
                m.remove("usage");
                m.remove("timings");
                m.insert("choices".into(), json!([choice]));
            }
            sse_value(&c)
        };
        let mut out = vec![
            with_choice(
                json!({"index": 0, "delta": {"role": "assistant", "content": null,
                "tool_calls": normalize::tool_calls_json(calls, &id, true)}, "finish_reason": null}),
            ),
            with_choice(json!({"index": 0, "delta": {}, "finish_reason": "tool_calls"})),
        ];
        let no_choices = |v: &&Value| {
            v.get("choices")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
        };
        out.extend(self.held.iter().filter(no_choices).map(sse_value));
        out
    }
}

fn sse_value(v: &Value) -> Bytes {
    sse(&serde_json::to_vec(v).unwrap_or_default())
}

fn sse(data: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(data.len() + 8);
    b.extend_from_slice(b"data: ");
    b.extend_from_slice(data);
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
}
