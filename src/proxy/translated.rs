//! The body of a streamed answer whose events a `translate::StreamTranslator` rewrites (or
//! only reads, for Anthropic and Responses passthrough): whole upstream events in, the
//! client's events out, with the accounting recorded once, on end, break or drop. The
//! translation itself lives in `translate/`; this file only moves bytes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;

use super::quality::Capture;
use super::record::{End, Ledger};
use crate::http::{Body as UpstreamBody, BoxError};
use crate::protocol::Format;
use crate::protocol::scan::event_text_len;
use crate::protocol::sse::SseSplitter;
use crate::translate::StreamTranslator;

/// Accounting state of a translated stream; records once, on end, break or drop.
struct Meter {
    ledger: Option<Ledger>,
    translator: Box<dyn StreamTranslator>,
    /// The upstream's wire format, which says where its events carry text.
    upstream: Format,
    ttft: Option<Duration>,
    last_chunk: Option<Instant>,
    output_text: usize,
    /// A copy of the upstream's stream for the answer checks at its end.
    capture: Option<Capture>,
    _permit: OwnedSemaphorePermit,
}

impl Meter {
    fn finish(&mut self, end: End) {
        if let Some(mut ledger) = self.ledger.take() {
            if let Some(capture) = self.capture.take() {
                capture.check(&ledger, end);
            }
            ledger.checks = None;
            ledger.finish(self.translator.usage(), self.output_text, self.ttft, end);
        }
    }

    /// Times and measures one upstream event, then translates it.
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        let now = Instant::now();
        if let Some(c) = &mut self.capture
            && !c.push(event)
        {
            self.capture = None;
        }
        if let Some(ledger) = &self.ledger {
            if let Some(prev) = self.last_chunk {
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
            let text = event_text_len(self.upstream, event);
            if text > 0 && self.ttft.is_none() {
                self.ttft = Some(now - ledger.started);
            }
            self.output_text += text;
        }
        self.last_chunk = Some(now);
        self.translator.event(event, out);
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
        upstream: Format,
        ledger: Ledger,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        let capture = Capture::of(&ledger, upstream);
        TranslatedStream {
            inner,
            splitter: SseSplitter::new(),
            meter: Meter {
                capture,
                ledger: Some(ledger),
                translator,
                upstream,
                ttft: None,
                last_chunk: None,
                output_text: 0,
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
                    // A stream that ends short gets the translator's own error event.
                    let whole = this.meter.translator.finish(&mut out);
                    if whole {
                        this.meter.finish(End::Complete);
                    } else {
                        if let Some(l) = &this.meter.ledger {
                            l.broken(&super::deadline::StreamFault::Truncated);
                        }
                        this.meter.finish(End::Broken);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    // The client gets a well-formed error event in its format, not a cut
                    // stream; the unfinished event is dropped.
                    *this.done = true;
                    let _ = this.splitter.take_rest();
                    let (code, message) = match &this.meter.ledger {
                        Some(l) => l.broken(&*e),
                        None => ("upstream_stream_broken", e.to_string()),
                    };
                    this.meter.translator.fail(code, &message, &mut out);
                    this.meter.finish(End::Broken);
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let mut events = Vec::new();
                    this.splitter.push(data, &mut events);
                    for e in &events {
                        this.meter.event(e, &mut out);
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
