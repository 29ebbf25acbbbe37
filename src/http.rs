//! HTTP helpers every layer shares: the body type, small response builders and the headers
//! tiergate adds. No state and no policy here.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub const HEADER_TIER: &str = "x-tiergate-tier";
pub const HEADER_UPSTREAM: &str = "x-tiergate-upstream";
pub const HEADER_REQUEST_ID: &str = "x-tiergate-request-id";
pub const HEADER_REASON: &str = "x-tiergate-reason";

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn text(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    text(status, "application/json", body.into())
}

/// Whether `headers` announce a server-sent event stream.
pub fn is_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// A header value from text that may hold characters a header cannot.
pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The tier the client names in `x-tiergate-tier`, if any.
pub fn header_tier(headers: &HeaderMap) -> Option<String> {
    headers
        .get(HEADER_TIER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The client's `x-request-id` when it is short and plain (so traces join), else a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get("x-request-id").and_then(|v| v.to_str().ok())
        && !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return v.to_string();
    }
    // 32 hex digits, written without `format!` (this runs on every request).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    let mut id = String::with_capacity(32);
    for word in [a, b] {
        for shift in (0..16).rev() {
            id.push(HEX[((word >> (shift * 4)) & 0xf) as usize] as char);
        }
    }
    id
}

/// Upstream response headers the client gets: the content type and the provider's own
/// informative headers; never hop-by-hop or length headers (the body may be re-framed).
pub fn passes_through(name: &header::HeaderName) -> bool {
    let n = name.as_str();
    n == "content-type"
        || n == "cache-control"
        || n == "retry-after"
        || n.starts_with("x-ratelimit-")
        || n.starts_with("openai-")
        || n.starts_with("anthropic-")
}

/// Adds the headers every proxied response carries (the router adds the request id).
pub fn tag(
    mut resp: Response<Body>,
    tier: &str,
    upstream: &str,
    reason: &'static str,
) -> Response<Body> {
    // Names made once, not parsed from text on every response.
    const TIER: HeaderName = HeaderName::from_static(HEADER_TIER);
    const UPSTREAM: HeaderName = HeaderName::from_static(HEADER_UPSTREAM);
    const REASON: HeaderName = HeaderName::from_static(HEADER_REASON);
    let h = resp.headers_mut();
    h.insert(TIER, header_value(tier));
    h.insert(UPSTREAM, header_value(upstream));
    h.insert(REASON, HeaderValue::from_static(reason));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_the_clients_when_plain_else_32_new_hex_digits() {
        let mut h = HeaderMap::new();
        let a = request_id(&h);
        let b = request_id(&h);
        for id in [&a, &b] {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
                "{id}"
            );
        }
        assert_ne!(a, b);
        h.insert("x-request-id", HeaderValue::from_static("trace-1_A"));
        assert_eq!(request_id(&h), "trace-1_A");
        h.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_eq!(request_id(&h).len(), 32);
    }
}
