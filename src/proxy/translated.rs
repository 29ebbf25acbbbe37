//! Responses whose format changes on the way (Anthropic <-> OpenAI) or whose usage is read
//! from Anthropic events: a stream body driven by a `translate::StreamTranslator`, and
//! `respond`, which turns an upstream answer into the client's, whole or streamed, with its
//! accounting. The translation itself lives in `translate/`; this file only moves bytes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::app::Body as UpstreamBody;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;

use super::forward::Forwarded;
use super::record::{End, Ledger};
use crate::app::{Body, BoxError, full};
use crate::config::Upstream;
use crate::error::{GatewayError, UpstreamFailure};
use crate::protocol::openai::Usage;
use crate::protocol::sse::SseSplitter;
use crate::translate::StreamTranslator;
use crate::translate::errors::TranslatedError;

/// Reads a whole successful upstream body: the client's body and the usage it reports.
/// Boxed so that a translation may carry request state (the Responses envelope).
pub type WholeFn = Box<dyn FnOnce(&[u8]) -> Result<(Vec<u8>, Option<Usage>), String> + Send>;

/// How to turn one upstream answer into the client's.
pub struct Adapter {
    /// For a streamed success: the translator of its events.
    pub stream: Option<Box<dyn StreamTranslator>>,
    /// For a whole success: the client's body and the usage it reports.
    pub whole: WholeFn,
    /// For an error status: the client's status, body and whether to retry.
    pub error: fn(u16, &[u8]) -> TranslatedError,
}

/// Reads or streams the forwarded answer through `adapter`, recording it in `ledger`.
pub async fn respond(
    fwd: Forwarded,
    up: &Upstream,
    tier: &str,
    mut ledger: Ledger,
    adapter: Adapter,
) -> Result<Response<Body>, GatewayError> {
    let (parts, upstream_body) = fwd.response.into_parts();
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let status = parts.status;
    if status.is_success()
        && is_sse
        && let Some(translator) = adapter.stream
    {
        let body = TranslatedStream::new(upstream_body, translator, ledger, fwd.permit);
        let mut resp = Response::new(BodyExt::boxed_unsync(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return Ok(resp);
    }
    let left = up.timeouts.total.saturating_sub(fwd.first_sent.elapsed());
    let failed = |kind, detail: String| GatewayError::UpstreamFailed {
        tier: tier.to_string(),
        detail,
        kind,
    };
    let bytes = match tokio::time::timeout(left, upstream_body.collect()).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) => {
            ledger.finish(None, 0, None, End::Broken);
            return Err(failed(
                UpstreamFailure::Connect,
                format!("{} broke off its response: {e}", up.name),
            ));
        }
        Err(_) => {
            ledger.finish(None, 0, None, End::Broken);
            return Err(failed(
                UpstreamFailure::Timeout,
                format!("{} did not finish within {:?}", up.name, up.timeouts.total),
            ));
        }
    };
    drop(fwd.permit);
    let done = Instant::now();
    let (status, out, usage, retry) = if status.is_success() {
        match (adapter.whole)(&bytes) {
            Ok((out, usage)) => (status, out, usage, None),
            Err(e) => {
                ledger.finish(None, bytes.len(), None, End::Broken);
                return Err(failed(
                    UpstreamFailure::ServerError,
                    format!("{} sent a response tiergate cannot read: {e}", up.name),
                ));
            }
        }
    } else {
        let t = (adapter.error)(status.as_u16(), &bytes);
        let status = StatusCode::from_u16(t.status).unwrap_or(StatusCode::BAD_GATEWAY);
        (status, t.body, None, Some(t.retryable))
    };
    ledger.overhead += done.elapsed();
    ledger.finish(usage, bytes.len(), None, End::Complete);
    let mut resp = Response::new(full(out));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(retry) = retry {
        h.insert(
            "x-should-retry",
            HeaderValue::from_static(if retry { "true" } else { "false" }),
        );
    }
    if let Some(v) = parts.headers.get(header::RETRY_AFTER) {
        h.insert(header::RETRY_AFTER, v.clone());
    }
    Ok(resp)
}

/// Accounting state of a translated stream; records once, on end, break or drop.
struct Meter {
    ledger: Option<Ledger>,
    translator: Box<dyn StreamTranslator>,
    ttft: Option<Duration>,
    last_chunk: Option<Instant>,
    output_bytes: usize,
    _permit: OwnedSemaphorePermit,
}

impl Meter {
    fn finish(&mut self, end: End) {
        if let Some(ledger) = self.ledger.take() {
            ledger.finish(self.translator.usage(), self.output_bytes, self.ttft, end);
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.finish(End::ClientGone);
    }
}

pin_project! {
    pub struct TranslatedStream {
        #[pin]
        inner: UpstreamBody,
        splitter: SseSplitter,
        meter: Meter,
        pending: Option<Bytes>,
        done: bool,
    }
}

impl TranslatedStream {
    pub fn new(
        inner: UpstreamBody,
        translator: Box<dyn StreamTranslator>,
        ledger: Ledger,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        TranslatedStream {
            inner,
            splitter: SseSplitter::new(),
            meter: Meter {
                ledger: Some(ledger),
                translator,
                ttft: None,
                last_chunk: None,
                output_bytes: 0,
                _permit: permit,
            },
            pending: None,
            done: false,
        }
    }
}

impl http_body::Body for TranslatedStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(b) = this.pending.take() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            let mut out = Vec::new();
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    *this.done = true;
                    this.meter.translator.finish(&mut out);
                    this.meter.finish(End::Complete);
                }
                Poll::Ready(Some(Err(e))) => {
                    // The client gets a well-formed error event instead of a cut stream.
                    *this.done = true;
                    if let Some(l) = &this.meter.ledger {
                        let p = &l.rt.policy;
                        let (up, run) = (&p.upstreams[l.upstream], &l.rt.upstreams[l.upstream]);
                        let reason = super::deadline::reason_of(&*e);
                        l.app
                            .metrics
                            .stream_errors
                            .with_label_values(&[p.tiers[l.tier].name.as_str(), &up.name, reason])
                            .inc();
                        tracing::warn!(request_id = %l.request_id, upstream = %up.name, reason, "upstream stream broke: {e}");
                        let t = run.state.record(&up.breaker, false, false);
                        crate::upstream::health::note(&l.app, &up.name, t);
                    }
                    this.meter.translator.finish(&mut out);
                    this.meter.finish(End::Broken);
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let now = Instant::now();
                    let m = &mut *this.meter;
                    if let Some(ledger) = &m.ledger {
                        if m.ttft.is_none() {
                            m.ttft = Some(now - ledger.started);
                        } else if let Some(prev) = m.last_chunk {
                            let p = &ledger.rt.policy;
                            let labels = [
                                p.tiers[ledger.tier].name.as_str(),
                                p.upstreams[ledger.upstream].name.as_str(),
                            ];
                            ledger
                                .app
                                .metrics
                                .chunk_gap
                                .with_label_values(&labels)
                                .observe((now - prev).as_secs_f64());
                        }
                    }
                    m.last_chunk = Some(now);
                    m.output_bytes += data.len();
                    let mut events = Vec::new();
                    this.splitter.push(data, &mut events);
                    for e in &events {
                        m.translator.event(e, &mut out);
                    }
                }
            }
            if !out.is_empty() {
                *this.pending = Some(Bytes::from(out));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
