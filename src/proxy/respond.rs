//! Rendering an upstream's answer in the client's format, whole or streamed, with its
//! accounting: one way for every endpoint. Streams go on chunk by chunk (`stream` for chat
//! and completions in their own format, `translated` for the rest); whole bodies are read
//! within the upstream's total timeout, adapted, and recorded.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;

use super::forward::Forwarded;
use super::record::{End, Ledger};
use super::stream::MeteredStream;
use super::translated::TranslatedStream;
use crate::config::Upstream;
use crate::error::{GatewayError, UpstreamFailure};
use crate::http::{Body, full, is_sse, passes_through};
use crate::protocol::Format;
use crate::protocol::scan::body_text_len;
use crate::provider::{Adapter, StreamWay};

/// Reads a whole upstream body within what is left of its total timeout.
pub async fn collect(
    body: Body,
    up: &Upstream,
    since: std::time::Instant,
    tier: &str,
) -> Result<Bytes, GatewayError> {
    let left = up.timeouts.total.saturating_sub(since.elapsed());
    let failed = |kind, detail: String| GatewayError::UpstreamFailed {
        tier: tier.to_string(),
        detail,
        kind,
    };
    match tokio::time::timeout(left, body.collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) => Err(failed(
            UpstreamFailure::Broken,
            format!("{} broke off its response: {e}", up.name),
        )),
        Err(_) => Err(failed(
            UpstreamFailure::Timeout,
            format!("{} did not finish within {:?}", up.name, up.timeouts.total),
        )),
    }
}

/// Turns the forwarded answer into the client's through `adapter`; `upstream` is the wire
/// format the upstream answered in. The ledger records it, whatever happens.
pub async fn respond(
    fwd: Forwarded,
    up: &Upstream,
    tier: &str,
    mut ledger: Ledger,
    adapter: Adapter,
    upstream: Format,
) -> Result<Response<Body>, GatewayError> {
    let head_received = Instant::now();
    let (parts, upstream_body) = fwd.response.into_parts();
    let status = parts.status;
    let mut resp = Response::builder().status(status);
    if adapter.native {
        for (name, value) in parts.headers.iter() {
            if passes_through(name) {
                resp = resp.header(name, value);
            }
        }
    }
    if status.is_success() && ledger.stream && is_sse(&parts.headers) {
        ledger.overhead += head_received.elapsed();
        let body = match adapter.stream {
            StreamWay::Chat { strip_usage } => {
                MeteredStream::new(upstream_body, ledger, fwd.permit, strip_usage).boxed_unsync()
            }
            StreamWay::Translated(t) => {
                TranslatedStream::new(upstream_body, t, upstream, ledger, fwd.permit).boxed_unsync()
            }
        };
        if !adapter.native {
            resp = resp
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache");
        }
        return resp
            .body(body)
            .map_err(|e| GatewayError::Internal(e.to_string()));
    }

    let bytes = match collect(upstream_body, up, fwd.first_sent, tier).await {
        Ok(b) => b,
        Err(e) => {
            ledger.finish(None, 0, None, End::Broken);
            return Err(e);
        }
    };
    drop(fwd.permit);
    if let Some(asked) = ledger.checks.take()
        && status.is_success()
    {
        let answer = bytes.clone();
        super::quality::check_later(&ledger.app, tier, &up.name, asked, move || {
            super::quality::whole_answer(upstream, &answer)
        });
    }
    let done = Instant::now();
    // The text is measured only for an estimate: when the upstream reports no usage.
    let raw = bytes.clone();
    let (out, usage) = if status.is_success() {
        match (adapter.whole)(bytes) {
            Ok(r) => r,
            Err(e) => {
                ledger.finish(None, body_text_len(upstream, &raw), None, End::Broken);
                return Err(GatewayError::UpstreamFailed {
                    tier: tier.to_string(),
                    detail: format!("{} sent a response tiergate cannot read: {e}", up.name),
                    kind: UpstreamFailure::ServerError,
                });
            }
        }
    } else if adapter.native {
        (bytes, None)
    } else {
        let t = (adapter.error)(status.as_u16(), &bytes);
        let s = StatusCode::from_u16(t.status).unwrap_or(StatusCode::BAD_GATEWAY);
        resp = resp.status(s).header(
            "x-should-retry",
            HeaderValue::from_static(if t.retryable { "true" } else { "false" }),
        );
        if let Some(v) = parts.headers.get(header::RETRY_AFTER) {
            resp = resp.header(header::RETRY_AFTER, v);
        }
        (Bytes::from(t.body), None)
    };
    if !adapter.native {
        resp = resp.header(header::CONTENT_TYPE, "application/json");
    }
    let text = if usage.is_none() {
        body_text_len(upstream, &raw)
    } else {
        0
    };
    drop(raw);
    ledger.overhead += done.elapsed();
    ledger.finish(usage, text, None, End::Complete);
    resp.body(full(out))
        .map_err(|e| GatewayError::Internal(e.to_string()))
}
