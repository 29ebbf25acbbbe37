//! HTTP helpers every layer shares: the body type, small response builders and the headers
//! tiergate adds. No state and no policy here.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
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
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
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
    let h = resp.headers_mut();
    h.insert(HEADER_TIER, header_value(tier));
    h.insert(HEADER_UPSTREAM, header_value(upstream));
    h.insert(HEADER_REASON, HeaderValue::from_static(reason));
    resp
}
