//! OpenAI's shape for what real local servers (llama.cpp, llama-cpp-python, Ollama) send.
//!
//! Choices made here:
//! - `model` is the name the policy configured for the upstream: local servers ignore the
//!   requested model and report an alias or a file path, which says nothing to the client.
//! - Extra fields (`timings`, `system_fingerprint`, llama.cpp's error details) are kept:
//!   the SDKs ignore unknown fields and they are useful to whoever reads the raw answer.
//! - A stream's role delta carries `content: ""` (OpenAI's), never `null`; other null-valued
//!   delta fields (`"tool_calls": null`, ...) are dropped, as OpenAI never sends them;
//!   `"refusal": null` is OpenAI's own and stays (dropping it cost a parse of every answer).
//! - Errors become `{"error":{"message","type","param","code"}}` with a string or null code.

use serde_json::{Map, Value, json};

use crate::protocol::scan;

use super::toolcall::ToolCall;

/// `json` with its top-level `model` set to `model` and every other byte as it came: the cheap
/// path for answers that need nothing else. None when it is not an object with a `model`.
pub fn with_model(json: &[u8], model: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(json.len() + model.len() + 2);
    splice_model(json, &quoted(model), &mut out).then_some(out)
}

/// `model` as a JSON string, for `splice_model`.
pub fn quoted(model: &str) -> Vec<u8> {
    serde_json::to_vec(model).unwrap_or_else(|_| b"\"\"".to_vec())
}

/// Appends `json` to `out` with its top-level `model` replaced by `quoted_model` (a JSON
/// string); false, and `out` untouched, when `json` is not an object with a `model`.
pub fn splice_model(json: &[u8], quoted_model: &[u8], out: &mut Vec<u8>) -> bool {
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return false;
    }
    // Chat and completions answers have `model` only at the top level.
    let Some(span) = scan::string_values(json, &scan::MODEL).next() else {
        return false;
    };
    out.extend_from_slice(&json[..span.start - 1]);
    out.extend_from_slice(quoted_model);
    out.extend_from_slice(&json[span.end + 1..]);
    true
}

/// Whether a success body or chunk holds anything `response`/`chunk` change besides the
/// model: a null-valued field they drop or replace, or an error. Found without parsing.
pub fn needs_fix(json: &[u8]) -> bool {
    const NULLABLE: [&[u8]; 4] = [
        b"\"content\"",
        b"\"role\"",
        b"\"tool_calls\"",
        b"\"function_call\"",
    ];
    scan::contains(json, &scan::ERROR) || scan::has_null(json, &NULLABLE)
}

/// A whole chat or completions response.
pub fn response(v: &mut Value, model: &str) {
    set_model(v, model);
    for choice in choices(v) {
        if let Some(Value::Object(m)) = choice.get_mut("message") {
            drop_nulls(m, &["tool_calls", "function_call"]);
        }
    }
}

/// One stream chunk.
pub fn chunk(v: &mut Value, model: &str) {
    set_model(v, model);
    for choice in choices(v) {
        let Some(Value::Object(d)) = choice.get_mut("delta") else {
            continue;
        };
        drop_nulls(d, &["role", "tool_calls", "function_call"]);
        if d.get("content") == Some(&Value::Null) {
            if d.contains_key("role") && !d.contains_key("tool_calls") {
                d.insert("content".into(), Value::String(String::new()));
            } else if !d.contains_key("tool_calls") {
                d.remove("content");
            }
        }
    }
}

/// The `message` of choice `index` of a whole response, for the tool-call repair.
pub fn content_of(v: &Value, index: usize) -> Option<&str> {
    let m = v.get("choices")?.get(index)?.get("message")?;
    if m.get("tool_calls").is_some_and(|t| !t.is_null()) {
        return None;
    }
    m.get("content")?.as_str()
}

/// Turns choice `index` into a tool-call message.
pub fn set_tool_calls(v: &mut Value, index: usize, calls: &[ToolCall], id_seed: &str) {
    let Some(choice) = v.get_mut("choices").and_then(|c| c.get_mut(index)) else {
        return;
    };
    if let Some(Value::Object(m)) = choice.get_mut("message") {
        m.insert("content".into(), Value::Null);
        m.insert(
            "tool_calls".into(),
            Value::Array(tool_calls_json(calls, id_seed, false)),
        );
    }
    if let Value::Object(c) = choice {
        c.insert("finish_reason".into(), Value::String("tool_calls".into()));
    }
}

/// OpenAI's `tool_calls` array; `indexed` adds the `index` that stream deltas carry.
pub fn tool_calls_json(calls: &[ToolCall], id_seed: &str, indexed: bool) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut v = json!({
                "id": call_id(id_seed, i),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            });
            if indexed && let Value::Object(m) = &mut v {
                m.insert("index".into(), json!(i));
            }
            v
        })
        .collect()
}

/// A call id derived from the response id: stable for one response, unique across them
/// as far as the upstream's ids are.
fn call_id(seed: &str, i: usize) -> String {
    let tail: String = seed
        .rsplit('-')
        .next()
        .unwrap_or(seed)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect();
    format!("call_{tail}{i}")
}

/// An error body in OpenAI's shape, whatever the upstream sent (JSON with a numeric code,
/// a bare string error, or plain text).
pub fn error_body(status: u16, body: &[u8]) -> Vec<u8> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let mut err = match parsed {
        Some(Value::Object(mut top)) => match top.remove("error") {
            Some(Value::Object(e)) => e,
            Some(Value::String(s)) => Map::from_iter([("message".to_string(), Value::String(s))]),
            _ => Map::from_iter([(
                "message".to_string(),
                top.remove("message")
                    .unwrap_or_else(|| Value::String(snippet(body))),
            )]),
        },
        _ => Map::from_iter([("message".to_string(), Value::String(snippet(body)))]),
    };
    let given_type = err.get("type").and_then(Value::as_str).map(str::to_owned);
    let (kind, mapped_code) = error_type(status, given_type.as_deref());
    let code = match err.get("code") {
        Some(Value::String(s)) => Value::String(s.clone()),
        _ => mapped_code.map_or(Value::Null, |c| Value::String(c.into())),
    };
    if !err.get("message").is_some_and(Value::is_string) {
        let m = err.get("message").map(Value::to_string).unwrap_or_default();
        err.insert("message".into(), Value::String(m));
    }
    err.insert("type".into(), Value::String(kind.into()));
    err.insert("code".into(), code);
    if !err.get("param").is_some_and(Value::is_string) {
        err.insert("param".into(), Value::Null);
    }
    serde_json::to_vec(&json!({ "error": err })).unwrap_or_default()
}

/// OpenAI's error type for an upstream's type (llama.cpp's names included) or status, and
/// the code to use when the upstream gave none usable.
fn error_type(status: u16, given: Option<&str>) -> (&'static str, Option<&'static str>) {
    match given {
        Some("exceed_context_size_error") => {
            ("invalid_request_error", Some("context_length_exceeded"))
        }
        Some("not_supported_error") => ("invalid_request_error", Some("unsupported_parameter")),
        Some("unavailable_error") => ("server_error", Some("upstream_unavailable")),
        Some("invalid_request_error") => ("invalid_request_error", Some("invalid_request")),
        Some("authentication_error") => ("authentication_error", Some("invalid_api_key")),
        Some("permission_error") => ("permission_error", Some("permission_denied")),
        Some("not_found_error") => ("not_found_error", Some("not_found")),
        Some("rate_limit_error") => ("rate_limit_error", Some("rate_limit_exceeded")),
        Some("server_error") => ("server_error", Some("upstream_error")),
        _ => match status {
            401 => ("authentication_error", Some("invalid_api_key")),
            403 => ("permission_error", Some("permission_denied")),
            404 => ("not_found_error", Some("not_found")),
            429 => ("rate_limit_error", Some("rate_limit_exceeded")),
            s if s >= 500 => ("server_error", Some("upstream_error")),
            _ => ("invalid_request_error", Some("invalid_request")),
        },
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    match s.char_indices().nth(500) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None if s.is_empty() => "the local upstream answered with an empty error".into(),
        None => s.to_string(),
    }
}

fn set_model(v: &mut Value, model: &str) {
    if let Value::Object(m) = v
        && m.contains_key("model")
    {
        m.insert("model".into(), Value::String(model.to_string()));
    }
}

fn choices(v: &mut Value) -> impl Iterator<Item = &mut Value> {
    v.get_mut("choices")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn drop_nulls(m: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if m.get(*k) == Some(&Value::Null) {
            m.remove(*k);
        }
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    #[test]
    fn with_model_changes_only_the_model() {
        let body = br#"{"id":"x","model":"qwen-0.5b.gguf","choices":[{"message":{"content":"\"model\": 1"}}],"timings":{}}"#;
        let out = with_model(body, "qwen2.5-coder").unwrap();
        let want = String::from_utf8_lossy(body).replace("\"qwen-0.5b.gguf\"", "\"qwen2.5-coder\"");
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert!(with_model(b"[1]", "m").is_none());
    }

    #[test]
    fn needs_fix_sees_nulls_and_errors_only() {
        assert!(!needs_fix(
            br#"{"choices":[{"delta":{"content":"hi"},"finish_reason":null}]}"#
        ));
        assert!(needs_fix(
            br#"{"choices":[{"delta":{"role":"assistant","content":null}}]}"#
        ));
        assert!(needs_fix(
            br#"{"choices":[{"message":{"tool_calls": null}}]}"#
        ));
        assert!(needs_fix(br#"{"error":{"code":400}}"#));
    }
}
