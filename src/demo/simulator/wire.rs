//! A simulated answer in each API's shape: whole bodies, stream events, errors.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::*;

pub(super) struct UsageOut {
    pub(super) prompt: u64,
    pub(super) completion: u64,
    pub(super) cached: u64,
}

impl UsageOut {
    fn openai(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached},
        })
    }

    /// Anthropic counts cached prompt tokens apart from `input_tokens`.
    fn anthropic(&self, output: u64) -> Value {
        json!({
            "input_tokens": self.prompt - self.cached,
            "cache_read_input_tokens": self.cached,
            "cache_creation_input_tokens": 0,
            "output_tokens": output,
        })
    }
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn chat_body(
    id: &str,
    model: &str,
    answer: &Answer,
    text: &str,
    usage: &UsageOut,
    as_text: bool,
) -> Value {
    let (message, finish) = match answer {
        Answer::Tool { name, .. } if !as_text => (
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": format!("call_{id}"), "type": "function",
                "function": {"name": name, "arguments": text}}]}),
            "tool_calls",
        ),
        _ => (json!({"role": "assistant", "content": text}), "stop"),
    };
    json!({
        "id": format!("chatcmpl-{id}"), "object": "chat.completion", "created": now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage.openai(),
    })
}

pub(super) fn legacy_body(id: &str, model: &str, text: &str, usage: &UsageOut) -> Value {
    json!({
        "id": format!("cmpl-{id}"), "object": "text_completion", "created": now(),
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": null}],
        "usage": usage.openai(),
    })
}

pub(super) fn messages_body(
    id: &str,
    model: &str,
    answer: &Answer,
    text: &str,
    usage: &UsageOut,
) -> Value {
    let (content, stop) = match answer {
        Answer::Tool { name, arguments } => (
            json!([{"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": arguments}]),
            "tool_use",
        ),
        Answer::Text(_) => (json!([{"type": "text", "text": text}]), "end_turn"),
    };
    json!({
        "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": usage.anthropic(usage.completion),
    })
}

/// One server-sent event and the output tokens generated before it is sent.
pub(super) struct Event {
    pub(super) text: String,
    pub(super) tokens: u64,
}

pub(super) fn data(v: &Value, tokens: u64) -> Event {
    Event {
        text: format!("data: {v}\n\n"),
        tokens,
    }
}

pub(super) fn named(name: &str, v: &Value, tokens: u64) -> Event {
    Event {
        text: format!("event: {name}\ndata: {v}\n\n"),
        tokens,
    }
}

/// The text in pieces of about `tokens_per_piece` tokens, cut on char boundaries.
pub(super) fn pieces(text: &str, tokens_per_piece: usize) -> Vec<(&str, u64)> {
    let size = tokens_per_piece * 4;
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push((&text[start..end], tokens_of_bytes(end - start)));
        start = end;
    }
    out
}

pub(super) const TOKENS_PER_EVENT: usize = 6;

pub(super) fn chat_events(
    id: &str,
    model: &str,
    answer: &Answer,
    text: &str,
    usage: &UsageOut,
    include_usage: bool,
    as_text: bool,
) -> Vec<Event> {
    let created = now();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion.chunk", "created": created,
               "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut out = vec![data(
        &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        0,
    )];
    let finish = match answer {
        Answer::Tool { name, .. } if !as_text => {
            out.push(data(
                &chunk(
                    json!({"tool_calls": [{"index": 0, "id": format!("call_{id}"), "type": "function",
                                            "function": {"name": name, "arguments": ""}}]}),
                    Value::Null,
                ),
                1,
            ));
            for (p, t) in pieces(text, TOKENS_PER_EVENT) {
                let d = json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]});
                out.push(data(&chunk(d, Value::Null), t));
            }
            "tool_calls"
        }
        _ => {
            for (p, t) in pieces(text, TOKENS_PER_EVENT) {
                out.push(data(&chunk(json!({"content": p}), Value::Null), t));
            }
            "stop"
        }
    };
    out.push(data(&chunk(json!({}), json!(finish)), 0));
    if include_usage {
        let u = json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion.chunk",
                       "created": created, "model": model, "choices": [], "usage": usage.openai()});
        out.push(data(&u, 0));
    }
    out.push(Event {
        text: "data: [DONE]\n\n".into(),
        tokens: 0,
    });
    out
}

pub(super) fn legacy_events(
    id: &str,
    model: &str,
    text: &str,
    usage: &UsageOut,
    include_usage: bool,
) -> Vec<Event> {
    let created = now();
    let chunk = |t: &str, finish: Value| {
        json!({"id": format!("cmpl-{id}"), "object": "text_completion", "created": created,
               "model": model, "choices": [{"index": 0, "text": t, "finish_reason": finish, "logprobs": null}]})
    };
    let mut out: Vec<Event> = pieces(text, TOKENS_PER_EVENT)
        .into_iter()
        .map(|(p, t)| data(&chunk(p, Value::Null), t))
        .collect();
    out.push(data(&chunk("", json!("stop")), 0));
    if include_usage {
        let u = json!({"id": format!("cmpl-{id}"), "object": "text_completion", "created": created,
                       "model": model, "choices": [], "usage": usage.openai()});
        out.push(data(&u, 0));
    }
    out.push(Event {
        text: "data: [DONE]\n\n".into(),
        tokens: 0,
    });
    out
}

pub(super) fn messages_events(
    id: &str,
    model: &str,
    answer: &Answer,
    text: &str,
    usage: &UsageOut,
) -> Vec<Event> {
    let start = json!({"type": "message_start", "message": {
        "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage.anthropic(1)}});
    let mut out = vec![named("message_start", &start, 0)];
    let (block, delta_kind, field, stop) = match answer {
        Answer::Tool { name, .. } => (
            json!({"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": {}}),
            "input_json_delta",
            "partial_json",
            "tool_use",
        ),
        Answer::Text(_) => (
            json!({"type": "text", "text": ""}),
            "text_delta",
            "text",
            "end_turn",
        ),
    };
    out.push(named(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0, "content_block": block}),
        0,
    ));
    out.push(named("ping", &json!({"type": "ping"}), 0));
    for (p, t) in pieces(text, TOKENS_PER_EVENT) {
        let d = json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": delta_kind, field: p}});
        out.push(named("content_block_delta", &d, t));
    }
    out.push(named(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
        0,
    ));
    out.push(named(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": {"output_tokens": usage.completion}}),
        0,
    ));
    out.push(named("message_stop", &json!({"type": "message_stop"}), 0));
    out
}

pub(super) fn whole(status: u16, v: Value) -> Response<SimBody> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

pub(super) fn error(p: &Profile, status: u16, kind: &str, message: &str) -> Response<SimBody> {
    let body = match p.wire {
        Wire::OpenAi => {
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        Wire::Anthropic => {
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    };
    whole(status, body)
}
