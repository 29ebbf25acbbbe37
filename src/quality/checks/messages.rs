//! An answer as the checks see it, read from an Anthropic Messages body or stream: text
//! blocks are the text, `tool_use` blocks the tool calls (their input as JSON text), and
//! `stop_reason` is put in chat's words so that the checks have one vocabulary.

use bytes::Bytes;
use serde_json::Value;

use super::answer::{Answer, ToolCall};
use crate::protocol::sse::{SseSplitter, data_of};

/// `stop_reason` in chat's words (`max_tokens` is `length`: cut at the token limit).
fn finish_reason(stop: &str) -> String {
    match stop {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "end_turn" | "stop_sequence" => "stop",
        other => other,
    }
    .to_string()
}

impl Answer {
    /// A whole Messages answer; None when the body is not one.
    pub fn from_messages_json(body: &[u8]) -> Option<Answer> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let blocks = v.get("content")?.as_array()?;
        let mut a = Answer {
            finish_reason: v
                .get("stop_reason")
                .and_then(Value::as_str)
                .map(finish_reason),
            ..Answer::default()
        };
        for b in blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => a
                    .text
                    .push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                Some("tool_use") => a.tool_calls.push(ToolCall {
                    name: b.get("name").and_then(Value::as_str).unwrap_or("").into(),
                    arguments: b.get("input").map(Value::to_string).unwrap_or_default(),
                }),
                _ => {}
            }
        }
        Some(a)
    }

    /// A streamed Messages answer, from the stream's bytes as sent. It ended early unless
    /// `message_stop` came, with no `error` event.
    pub fn from_messages_sse(stream: &[u8]) -> Answer {
        let mut events = Vec::new();
        let mut split = SseSplitter::new();
        split.push(Bytes::copy_from_slice(stream), &mut events);
        if let Some(rest) = split.take_rest() {
            events.push(rest);
        }
        let mut a = Answer::default();
        // Tool calls by content block index: text blocks hold none.
        let mut tools: Vec<(u64, ToolCall)> = Vec::new();
        let (mut stopped, mut errored) = (false, false);
        for event in &events {
            let Some(v) = data_of(event).and_then(|d| serde_json::from_slice::<Value>(&d).ok())
            else {
                continue;
            };
            let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
            match v.get("type").and_then(Value::as_str) {
                Some("content_block_start") => {
                    let block = v.get("content_block");
                    if block.and_then(|b| b.get("type")).and_then(Value::as_str) == Some("tool_use")
                    {
                        let name = block.and_then(|b| b.get("name")).and_then(Value::as_str);
                        let call = ToolCall {
                            name: name.unwrap_or("").into(),
                            arguments: String::new(),
                        };
                        tools.push((index, call));
                    }
                }
                Some("content_block_delta") => {
                    let delta = v.get("delta");
                    let field = |k: &str| delta.and_then(|d| d.get(k)).and_then(Value::as_str);
                    if let Some(t) = field("text") {
                        a.text.push_str(t);
                    } else if let Some(part) = field("partial_json")
                        && let Some((_, call)) = tools.iter_mut().find(|(i, _)| *i == index)
                    {
                        call.arguments.push_str(part);
                    }
                }
                Some("message_delta") => {
                    if let Some(stop) = v
                        .get("delta")
                        .and_then(|d| d.get("stop_reason"))
                        .and_then(Value::as_str)
                    {
                        a.finish_reason = Some(finish_reason(stop));
                    }
                }
                Some("message_stop") => stopped = true,
                Some("error") => errored = true,
                _ => {}
            }
        }
        a.tool_calls = tools.into_iter().map(|(_, c)| c).collect();
        a.ended_early = errored || !stopped;
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_answer_with_text_and_a_tool_call() {
        let a = Answer::from_messages_json(
            br#"{"type":"message","role":"assistant","stop_reason":"tool_use","content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"t","name":"read","input":{"path":"a.py"}}]}"#,
        )
        .unwrap();
        assert_eq!(a.text, "Let me look.");
        assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(a.tool_calls[0].name, "read");
        assert_eq!(a.tool_calls[0].arguments, r#"{"path":"a.py"}"#);
        let cut =
            Answer::from_messages_json(br#"{"stop_reason":"max_tokens","content":[]}"#).unwrap();
        assert_eq!(cut.finish_reason.as_deref(), Some("length"));
        assert!(Answer::from_messages_json(br#"{"choices":[]}"#).is_none());
    }

    #[test]
    fn stream_of_text_and_tool_use() {
        let a = Answer::from_messages_sse(include_bytes!(
            "../../../tests/fixtures/anthropic/stream_tool_use.sse"
        ));
        assert!(!a.ended_early, "{a:?}");
        assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(a.tool_calls.len(), 1, "{a:?}");
        assert!(!a.tool_calls[0].name.is_empty());
        assert!(
            serde_json::from_str::<Value>(&a.tool_calls[0].arguments).is_ok(),
            "{a:?}"
        );
    }

    #[test]
    fn a_stream_without_message_stop_ended_early() {
        let s = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n\
                 event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"def f(\"}}\n\n";
        let a = Answer::from_messages_sse(s.as_bytes());
        assert_eq!(a.text, "def f(");
        assert!(a.ended_early);
        let errored = format!(
            "{s}event: error\ndata: {{\"type\":\"error\",\"error\":{{}}}}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        );
        assert!(Answer::from_messages_sse(errored.as_bytes()).ended_early);
    }
}
