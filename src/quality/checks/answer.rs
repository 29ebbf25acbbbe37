//! An answer as the checks see it, read from a chat completion body or from the SSE bytes of
//! a streamed one.

use super::lite::Lite;
use bytes::Bytes;

use crate::protocol::sse::{SseSplitter, data_of};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub text: String,
    pub finish_reason: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// A stream that stopped before its finish reason (broken, cut, or an error event).
    pub ended_early: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolCall {
    pub name: String,
    /// As sent: a JSON text when the model did its job.
    pub arguments: String,
}

/// The text of a message's `content`: a string, or the `text` of an array of parts.
fn content_text(v: Option<&Lite<'_>>) -> String {
    match v {
        Some(Lite::Str(s)) => s.to_string(),
        Some(Lite::Arr(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Lite::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

impl Answer {
    pub fn text(text: &str, finish_reason: Option<&str>) -> Answer {
        Answer {
            text: text.to_string(),
            finish_reason: finish_reason.map(str::to_string),
            ..Answer::default()
        }
    }

    /// The first choice of a chat completion (or a legacy completion's `text`); None when
    /// the body is not one.
    pub fn from_chat_json(body: &[u8]) -> Option<Answer> {
        let v = Lite::parse(body)?;
        let choice = v.get("choices")?.as_array()?.first()?;
        let finish_reason = choice
            .get("finish_reason")
            .and_then(Lite::as_str)
            .map(str::to_string);
        let Some(message) = choice.get("message") else {
            return Some(Answer {
                text: content_text(choice.get("text")),
                finish_reason,
                ..Answer::default()
            });
        };
        let tool_calls = message
            .get("tool_calls")
            .and_then(Lite::as_array)
            .map(|calls| {
                calls
                    .iter()
                    .map(|c| ToolCall {
                        name: c
                            .get("function")
                            .and_then(|f| f.get("name"))
                            .and_then(Lite::as_str)
                            .unwrap_or("")
                            .to_string(),
                        arguments: c
                            .get("function")
                            .and_then(|f| f.get("arguments"))
                            .and_then(Lite::as_str)
                            .unwrap_or("")
                            .to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Answer {
            text: content_text(message.get("content")),
            finish_reason,
            tool_calls,
            ended_early: false,
        })
    }

    /// The first choice of a streamed chat completion, from the stream's bytes as sent.
    pub fn from_chat_sse(stream: &[u8]) -> Answer {
        let mut a = Answer::default();
        let mut split = SseSplitter::new();
        let mut events = Vec::new();
        split.push(Bytes::copy_from_slice(stream), &mut events);
        if let Some(rest) = split.take_rest() {
            events.push(rest);
        }
        let mut errored = false;
        for event in &events {
            let Some(data) = data_of(event) else { continue };
            if data.as_ref() == b"[DONE]" {
                continue;
            }
            let Some(v) = Lite::parse(&data) else {
                continue;
            };
            if v.get("error").is_some() {
                errored = true;
                continue;
            }
            let Some(choice) = v.get("choices").and_then(Lite::as_array).and_then(|c| {
                c.iter()
                    .find(|c| c.get("index").and_then(Lite::as_u64).unwrap_or(0) == 0)
            }) else {
                continue;
            };
            if let Some(delta) = choice.get("delta") {
                a.text.push_str(&content_text(delta.get("content")));
                for call in delta
                    .get("tool_calls")
                    .and_then(Lite::as_array)
                    .into_iter()
                    .flatten()
                {
                    let i = call.get("index").and_then(Lite::as_u64).unwrap_or(0) as usize;
                    if i >= a.tool_calls.len() {
                        a.tool_calls.resize(i + 1, ToolCall::default());
                    }
                    let slot = &mut a.tool_calls[i];
                    // Set once: llama-cpp-python repeats the whole name in every delta.
                    if let Some(name) = call
                        .get("function")
                        .and_then(|f| f.get("name"))
                        .and_then(Lite::as_str)
                        && slot.name.is_empty()
                    {
                        slot.name = name.to_string();
                    }
                    if let Some(args) = call
                        .get("function")
                        .and_then(|f| f.get("arguments"))
                        .and_then(Lite::as_str)
                    {
                        slot.arguments.push_str(args);
                    }
                }
            } else {
                a.text.push_str(&content_text(choice.get("text")));
            }
            if let Some(f) = choice.get("finish_reason").and_then(Lite::as_str) {
                a.finish_reason = Some(f.to_string());
            }
        }
        a.ended_early = errored || a.finish_reason.is_none();
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_body_with_tool_calls() {
        let a = Answer::from_chat_json(br#"{"choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}}]}"#).unwrap();
        assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(a.text, "");
        assert_eq!(
            a.tool_calls,
            [ToolCall {
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            }]
        );
        assert!(Answer::from_chat_json(b"not json").is_none());
        assert!(Answer::from_chat_json(br#"{"error":{}}"#).is_none());
    }

    #[test]
    fn stream_deltas_are_joined_and_an_early_end_is_seen() {
        let s = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\",\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}\n\n";
        let a = Answer::from_chat_sse(s);
        assert_eq!(a.text, "Hello");
        assert_eq!(a.tool_calls[0].arguments, "{\"a\":1}");
        assert!(a.ended_early);
        let mut done = s.to_vec();
        done.extend_from_slice(b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        let a = Answer::from_chat_sse(&done);
        assert!(!a.ended_early);
        assert_eq!(a.finish_reason.as_deref(), Some("stop"));
    }
}
