//! The parts of OpenAI request and response bodies that tiergate reads. Everything else in a
//! request is carried through as the client's own bytes: the body is never re-serialised, only
//! the `model` value (and, for streams, `stream_options`) is spliced.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The top-level fields of a request that routing needs, in any of the client formats
/// (chat and legacy completions; Anthropic's `system`; the Responses API's `instructions`
/// and `input`). Borrowed from the body; unknown fields are skipped by the parser, not copied.
#[derive(Debug, Deserialize)]
pub struct RequestHead<'a> {
    /// `Some("null")` for an explicit null: the rewrite replaces it instead of adding a
    /// second key.
    #[serde(borrow, default, deserialize_with = "present")]
    pub model: Option<&'a RawValue>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub stream_options: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub prompt: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub suffix: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub instructions: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
}

/// A field that is present, null included (plain `Option` would read null as absent).
fn present<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'a RawValue>, D::Error> {
    <&'a RawValue>::deserialize(d).map(Some)
}

impl<'a> RequestHead<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The model as a string, if it is one.
    pub fn model_name(&self) -> Option<Cow<'a, str>> {
        self.model
            .and_then(|raw| serde_json::from_str::<Cow<'a, str>>(raw.get()).ok())
    }

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the client asked for the final usage chunk of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        #[derive(Deserialize)]
        struct Opts {
            #[serde(default)]
            include_usage: Option<bool>,
        }
        self.stream_options
            .and_then(|raw| serde_json::from_str::<Opts>(raw.get()).ok())
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

/// Where a borrowed raw value sits inside the body it was parsed from.
pub fn span_of(body: &[u8], raw: &RawValue) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    start..start + raw.get().len()
}

/// The body with `model` replaced by `model`, and, when `force_usage` is set, the stream asked
/// to report usage (`stream_options.include_usage: true`) without touching any other field.
pub fn rewrite_body(body: &Bytes, head: &RequestHead<'_>, model: &str, force_usage: bool) -> Bytes {
    let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::with_capacity(2);
    let quoted = serde_json::to_vec(model).unwrap_or_default();
    match head.model {
        Some(raw) => edits.push((span_of(body, raw), quoted)),
        None => {
            let at = body.iter().position(|&b| b == b'{').map_or(0, |i| i + 1);
            let mut v = b"\"model\":".to_vec();
            v.extend_from_slice(&quoted);
            v.push(b',');
            edits.push((at..at, v));
        }
    }
    if force_usage {
        match head.stream_options {
            Some(raw) => edits.push((span_of(body, raw), with_include_usage(raw.get()))),
            None => {
                // Inserted right after the opening brace; the model edit may sit there too.
                let at = body.iter().position(|&b| b == b'{').map_or(0, |i| i + 1);
                edits.push((
                    at..at,
                    b"\"stream_options\":{\"include_usage\":true},".to_vec(),
                ));
            }
        }
    }
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    // Members inserted into an empty object (`{}`) must not leave a trailing comma.
    let open = body.iter().position(|&b| b == b'{').map_or(0, |i| i + 1);
    let empty = body[open.min(body.len())..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        == Some(&b'}');
    if empty
        && let Some((_, text)) = edits
            .iter_mut()
            .rev()
            .find(|(r, _)| r.start == open && r.is_empty())
        && text.last() == Some(&b',')
    {
        text.pop();
    }
    let mut out = BytesMut::with_capacity(body.len() + 64);
    let mut pos = 0;
    for (range, text) in edits {
        out.extend_from_slice(&body[pos..range.start]);
        out.extend_from_slice(&text);
        pos = range.end;
    }
    out.extend_from_slice(&body[pos..]);
    out.freeze()
}

/// `stream_options` with `include_usage` set to true, other options kept.
fn with_include_usage(raw: &str) -> Vec<u8> {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw) {
        Ok(mut map) => {
            map.insert("include_usage".into(), serde_json::Value::Bool(true));
            serde_json::to_vec(&map).unwrap_or_else(|_| raw.as_bytes().to_vec())
        }
        // Not an object (null, say): replace it.
        Err(_) => b"{\"include_usage\":true}".to_vec(),
    }
}

/// Token usage as OpenAI reports it (chat, completions, and the final stream chunk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

impl Usage {
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
    }
}

/// The usage of a whole (non-streamed) response body, if it reports one.
pub fn usage_of_body(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct WithUsage {
        #[serde(default)]
        usage: Option<Usage>,
    }
    serde_json::from_slice::<WithUsage>(body).ok()?.usage
}

/// A stream chunk's usage and whether it is the usage-only chunk (no choices).
pub fn usage_of_chunk(data: &[u8]) -> Option<(Usage, bool)> {
    #[derive(Deserialize)]
    struct Chunk<'a> {
        #[serde(default)]
        usage: Option<Usage>,
        #[serde(borrow, default)]
        choices: Option<Vec<&'a RawValue>>,
    }
    let chunk: Chunk<'_> = serde_json::from_slice(data).ok()?;
    let usage = chunk.usage?;
    Some((usage, chunk.choices.is_none_or(|c| c.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(body: &str, model: &str, force: bool) -> String {
        let body = Bytes::from(body.to_string());
        let head = RequestHead::parse(&body).unwrap();
        String::from_utf8(rewrite_body(&body, &head, model, force).to_vec()).unwrap()
    }

    #[test]
    fn model_is_replaced_and_everything_else_kept_byte_for_byte() {
        let body = r#"{"messages":[{"role":"user","content":"hi"}], "model" : "auto","x_custom":{"a":[1,2]},"temperature":0.2}"#;
        let out = rewrite(body, "qwen\"2", false);
        assert_eq!(out, body.replace("\"auto\"", r#""qwen\"2""#));
    }

    #[test]
    fn stream_usage_is_added_or_merged() {
        let out = rewrite(r#"{"model":"a","stream":true}"#, "b", true);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["model"], "b");
        let out = rewrite(
            r#"{"model":"a","stream":true,"stream_options":{"x":1}}"#,
            "b",
            true,
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"x":1,"include_usage":true})
        );
    }

    #[test]
    fn missing_model_is_inserted() {
        let out = rewrite(r#" {"prompt":"x"}"#, "m", false);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["model"], "m");
    }

    #[test]
    fn head_reads_stream_flags() {
        let body = br#"{"model":"auto","stream":true,"stream_options":{"include_usage":true}}"#;
        let head = RequestHead::parse(body).unwrap();
        assert!(head.is_stream() && head.wants_stream_usage());
        assert_eq!(head.model_name().as_deref(), Some("auto"));
    }

    #[test]
    fn usage_chunk_is_recognised() {
        let (u, only) = usage_of_chunk(br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":1}}}"#).unwrap();
        assert_eq!(
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.cached_tokens(),
                only
            ),
            (3, 4, 1, true)
        );
        assert!(usage_of_chunk(br#"{"choices":[{"delta":{}}],"usage":null}"#).is_none());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// A JSON value of a few levels, as text.
        fn value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i32>().prop_map(serde_json::Value::from),
                "[ -~]{0,10}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4)
                        .prop_map(serde_json::Value::from),
                    proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn garbage_is_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let body = Bytes::from(bytes);
                if let Ok(head) = RequestHead::parse(&body) {
                    let _ = head.model_name();
                    let _ = head.wants_stream_usage();
                    let _ = rewrite_body(&body, &head, "m", true);
                }
            }

            /// Objects whose known fields hold values of any type (a string `stream`, a
            /// number `messages`, a null `model`...): an error or a head, never a panic, and
            /// the routing input built from what parsed is an error or a conversation.
            #[test]
            fn wrong_field_types_are_errors_never_panics(
                fields in proptest::collection::btree_map(
                    prop_oneof![
                        Just("model"), Just("stream"), Just("stream_options"), Just("messages"),
                        Just("tools"), Just("prompt"), Just("suffix"), Just("system"),
                        Just("input"), Just("instructions"),
                    ],
                    value(),
                    0..8,
                ),
            ) {
                let obj: serde_json::Map<String, serde_json::Value> =
                    fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                let body = Bytes::from(serde_json::to_vec(&obj).unwrap());
                if let Ok(head) = RequestHead::parse(&body) {
                    let _ = head.model_name();
                    let _ = head.wants_stream_usage();
                    let out = rewrite_body(&body, &head, "m", true);
                    prop_assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
                    if let Some(m) = head.messages {
                        let _ = crate::routing::Conversation::from_openai(m, head.tools);
                        let _ = crate::routing::Conversation::from_anthropic(head.system, m, head.tools);
                    }
                    if let Some(i) = head.input {
                        let _ = crate::routing::Conversation::from_responses(head.instructions, i, head.tools);
                    }
                }
            }

            /// Any object: the rewrite is valid JSON with the new model, usage asked for when
            /// forced, and every other field as it was.
            #[test]
            fn rewrite_keeps_every_other_field(
                fields in proptest::collection::btree_map("[a-z_]{1,8}", value(), 0..6),
                model in proptest::option::of("[ -~]{0,12}"),
                stream_options in proptest::option::of(value()),
                force in any::<bool>(),
                new_model in "[ -~]{0,12}",
            ) {
                let mut obj: serde_json::Map<String, serde_json::Value> = fields.into_iter().collect();
                if let Some(m) = model { obj.insert("model".into(), m.into()); }
                if let Some(o) = stream_options { obj.insert("stream_options".into(), o); }
                let body = Bytes::from(serde_json::to_vec(&obj).unwrap());
                let head = RequestHead::parse(&body).unwrap();
                let out = rewrite_body(&body, &head, &new_model, force);
                let got: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&out).unwrap();
                prop_assert_eq!(&got["model"], &serde_json::Value::from(new_model));
                if force {
                    prop_assert_eq!(&got["stream_options"]["include_usage"], &serde_json::Value::Bool(true));
                }
                for (k, v) in &obj {
                    if k != "model" && !(force && k == "stream_options") {
                        prop_assert_eq!(&got[k], v);
                    }
                }
            }

            /// Any cut of a valid body is refused as an error, not a panic.
            #[test]
            fn truncated_bodies_are_errors(cut in 0usize..60) {
                let body = br#"{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
                let cut = cut.min(body.len() - 1);
                prop_assert!(RequestHead::parse(&body[..cut]).is_err());
            }
        }
    }
}
