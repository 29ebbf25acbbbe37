//! Error bodies across the two formats.
//!
//! Anthropic -> OpenAI: `{"type":"error","error":{"type","message"}}` becomes OpenAI's
//! `{"error":{"message","type","param","code"}}`. The status is kept, except 529
//! (overloaded, Anthropic-only) which becomes 503 so OpenAI clients treat it as the
//! transient server error it is. OpenAI -> Anthropic goes the other way, by status.
//! `retryable` tells the proxy what to put in `x-should-retry`, which both official SDKs obey.

use serde::Deserialize;

use crate::protocol::anthropic::{ErrorBody, ErrorDetail};
use crate::protocol::error::to_json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslatedError {
    pub status: u16,
    pub body: Vec<u8>,
    pub retryable: bool,
}

/// 408, 409, 429 and every 5xx (529 included) are worth another try.
pub fn is_retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

/// An upstream error already in the client's format, passed on as it came.
pub fn unchanged(status: u16, body: &[u8]) -> TranslatedError {
    TranslatedError {
        status,
        body: body.to_vec(),
        retryable: is_retryable(status),
    }
}

/// OpenAI's `type` and `code` for an Anthropic error type.
fn openai_kind(anthropic_type: &str) -> (&'static str, Option<&'static str>) {
    match anthropic_type {
        "authentication_error" => ("authentication_error", Some("invalid_api_key")),
        "permission_error" => ("permission_error", None),
        "not_found_error" => ("not_found_error", Some("model_not_found")),
        "request_too_large" => ("invalid_request_error", Some("request_too_large")),
        "rate_limit_error" => ("rate_limit_error", Some("rate_limit_exceeded")),
        "overloaded_error" => ("server_error", Some("overloaded")),
        "api_error" | "timeout_error" => ("server_error", None),
        "billing_error" => ("invalid_request_error", Some("billing_error")),
        _ => ("invalid_request_error", None),
    }
}

/// The message of an upstream error body we could not parse: its text, shortened.
fn raw_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(300).collect();
    if s.trim().is_empty() {
        s = "the upstream answered with an error and no message".into();
    }
    s
}

pub fn anthropic_to_openai(status: u16, body: &[u8]) -> TranslatedError {
    let (kind, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (b.error.kind, b.error.message),
        Err(_) => (
            anthropic_type_for_status(status).to_string(),
            raw_message(body),
        ),
    };
    let (oa_kind, code) = openai_kind(&kind);
    let out_status = if status == 529 { 503 } else { status };
    TranslatedError {
        status: out_status,
        body: to_json(&message, oa_kind, None, code),
        retryable: is_retryable(status),
    }
}

/// An Anthropic stream `error` event as OpenAI's in-stream error chunk.
pub fn anthropic_stream_error_to_openai(e: &ErrorDetail) -> Vec<u8> {
    let (kind, code) = openai_kind(&e.kind);
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&to_json(&e.message, kind, None, code));
    out.extend_from_slice(b"\n\n");
    out
}

/// Anthropic's error `type` for an HTTP status.
pub use crate::protocol::format::anthropic_type as anthropic_type_for_status;

/// OpenAI's body (`{"error":{...}}`), or the flat `{"message":...}` of vLLM and llama.cpp.
#[derive(Deserialize)]
struct OpenAiError {
    #[serde(default)]
    error: Option<OpenAiDetail>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiDetail {
    #[serde(default)]
    message: Option<String>,
}

pub fn openai_message(body: &[u8]) -> String {
    match serde_json::from_slice::<OpenAiError>(body) {
        Ok(OpenAiError {
            error: Some(OpenAiDetail { message: Some(m) }),
            ..
        })
        | Ok(OpenAiError {
            message: Some(m), ..
        }) => m,
        _ => raw_message(body),
    }
}

pub fn openai_to_anthropic(status: u16, body: &[u8]) -> TranslatedError {
    let body = ErrorBody::new(anthropic_type_for_status(status), openai_message(body)).to_json();
    TranslatedError {
        status,
        body,
        retryable: is_retryable(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn v(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn overloaded_becomes_a_retryable_503() {
        let t = anthropic_to_openai(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!((t.status, t.retryable), (503, true));
        let b = v(&t.body);
        assert_eq!(b["error"]["type"], "server_error");
        assert_eq!(b["error"]["code"], "overloaded");
        assert_eq!(b["error"]["message"], "Overloaded");
    }

    #[test]
    fn invalid_request_keeps_its_status_and_is_final() {
        let t = anthropic_to_openai(400, br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: field required"}}"#);
        assert_eq!((t.status, t.retryable), (400, false));
        assert_eq!(v(&t.body)["error"]["type"], "invalid_request_error");
        let t = anthropic_to_openai(
            429,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#,
        );
        assert_eq!(
            (t.status, t.retryable, v(&t.body)["error"]["type"].as_str()),
            (429, true, Some("rate_limit_error"))
        );
    }

    #[test]
    fn unparseable_bodies_still_give_a_message() {
        let t = anthropic_to_openai(502, b"<html>bad gateway</html>");
        assert_eq!(v(&t.body)["error"]["message"], "<html>bad gateway</html>");
        assert_eq!(v(&t.body)["error"]["type"], "server_error");
    }

    #[test]
    fn openai_errors_become_anthropic_shaped() {
        let t = openai_to_anthropic(400, br#"{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}"#);
        assert_eq!(
            v(&t.body),
            serde_json::json!({"type":"error","error":{"type":"invalid_request_error","message":"bad"}})
        );
        let t = openai_to_anthropic(
            503,
            br#"{"object":"error","message":"busy","type":"x","code":503}"#,
        );
        assert_eq!(
            v(&t.body)["error"],
            serde_json::json!({"type":"overloaded_error","message":"busy"})
        );
        assert!(t.retryable);
    }
}
