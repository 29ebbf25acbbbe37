//! The client's wire format: which API a request speaks, and so how its errors look, whole
//! and inside a stream. One place for every error body tiergate writes itself.

use crate::protocol::anthropic::ErrorBody as AnthropicError;
use crate::protocol::error::to_json;

/// The API a client speaks on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/completions` (legacy, FIM)
    Completions,
    /// `POST /v1/messages` (Anthropic)
    Messages,
    /// `POST /v1/messages/count_tokens` (Anthropic)
    CountTokens,
    /// `POST /v1/responses` (OpenAI Responses API)
    Responses,
}

impl Format {
    /// The `endpoint` label of the request metrics and the access log.
    pub fn label(self) -> &'static str {
        match self {
            Format::Chat => "chat_completions",
            Format::Completions => "completions",
            Format::Messages => "messages",
            Format::CountTokens => "count_tokens",
            Format::Responses => "responses",
        }
    }

    fn is_anthropic(self) -> bool {
        matches!(self, Format::Messages | Format::CountTokens)
    }

    /// A whole error body. `kind` and `code` are OpenAI's error type and code; Anthropic
    /// clients get the Anthropic type for `status` instead.
    pub fn error_body(
        self,
        status: u16,
        message: &str,
        kind: &str,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Vec<u8> {
        if self.is_anthropic() {
            AnthropicError::new(anthropic_type(status), message).to_json()
        } else {
            to_json(message, kind, param, code)
        }
    }

    /// The event that ends a stream the upstream broke, in this format: chat and completions
    /// an OpenAI error chunk, Messages an `event: error` (`overloaded_error` when the upstream
    /// went silent, else `api_error`), Responses an `event: error`.
    pub fn stream_error(self, code: &str, message: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(message.len() + 128);
        match self {
            Format::Chat | Format::Completions => {
                out.extend_from_slice(b"data: ");
                out.extend(to_json(message, "server_error", None, Some(code)));
            }
            Format::Messages | Format::CountTokens => {
                let kind = if code.contains("timeout") {
                    "overloaded_error"
                } else {
                    "api_error"
                };
                out.extend_from_slice(b"event: error\ndata: ");
                out.extend(AnthropicError::new(kind, message).to_json());
            }
            Format::Responses => {
                out.extend_from_slice(b"event: error\ndata: ");
                let event = serde_json::json!({
                    "type": "error", "code": code, "message": message, "param": null,
                });
                out.extend(serde_json::to_vec(&event).unwrap_or_default());
            }
        }
        out.extend_from_slice(b"\n\n");
        out
    }
}

/// Anthropic's error type for an HTTP status.
pub fn anthropic_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(event: &[u8]) -> serde_json::Value {
        let s = std::str::from_utf8(event).unwrap();
        let line = s.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn stream_errors_take_the_client_format() {
        let chat = Format::Chat.stream_error("upstream_stream_broken", "cut");
        assert_eq!(data(&chat)["error"]["code"], "upstream_stream_broken");
        let msg = Format::Messages.stream_error("upstream_idle_timeout", "silent");
        assert!(msg.starts_with(b"event: error\n"));
        assert_eq!(data(&msg)["error"]["type"], "overloaded_error");
        let resp = Format::Responses.stream_error("upstream_stream_broken", "cut");
        assert!(resp.starts_with(b"event: error\n"));
        assert_eq!(data(&resp)["type"], "error");
        assert!(resp.ends_with(b"\n\n"));
    }

    #[test]
    fn anthropic_clients_get_anthropic_bodies() {
        let b = Format::CountTokens.error_body(405, "no", "invalid_request_error", None, None);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let b = Format::Chat.error_body(405, "no", "invalid_request_error", None, Some("x"));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["code"], "x");
    }
}
