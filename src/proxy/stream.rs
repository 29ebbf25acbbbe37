//! The body of a streamed response: upstream frames go to the client as they arrive, while
//! usage, time to first token and chunk gaps are read off the events. The accounting happens
//! once, when the stream ends, breaks, or is dropped because the client hung up (and dropping
//! the upstream body closes the upstream connection: nobody pays for tokens nobody reads).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prometheus::Histogram;
use tokio::sync::OwnedSemaphorePermit;

use super::deadline;
use super::quality::Capture;
use super::record::{End, Ledger};
use crate::http::{Body as UpstreamBody, BoxError};
use crate::protocol::Format;
use crate::protocol::openai::{Usage, usage_of_chunk};
use crate::protocol::scan;
use crate::protocol::sse::{SseSplitter, data_of};

pin_project! {
    pub struct MeteredStream {
        #[pin]
        inner: UpstreamBody,
        splitter: SseSplitter,
        // Set when tiergate itself asked for usage: the usage-only chunk is not the client's.
        strip_usage: bool,
        batch: Batch,
        // Polls in a row that brought nothing new while a batch waits.
        idle_polls: u8,
        meter: Meter,
        done: bool,
    }
}

/// The accounting state; records on `finish` or, failing that, on drop.
struct Meter {
    ledger: Option<Ledger>,
    chunk_gap: Histogram,
    usage: Option<Usage>,
    ttft: Option<Duration>,
    last_chunk: Option<Instant>,
    /// Bytes of generated text seen so far, for an estimate when no usage arrives.
    output_text: usize,
    /// Whether `data: [DONE]` came: a stream that ends without it was cut short.
    saw_done: bool,
    /// A copy of the stream for the answer checks at its end (dropped past its bound).
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
            ledger.finish(self.usage, self.output_text, self.ttft, end);
        }
    }
}

impl Meter {
    /// Records a stream that broke after its first byte; returns the client's error event
    /// (chat and completions share OpenAI's error chunk).
    fn broken(&mut self, e: &(dyn std::error::Error + 'static)) -> Bytes {
        let (code, message) = match &self.ledger {
            Some(l) => l.broken(e),
            None => ("upstream_stream_broken", e.to_string()),
        };
        self.finish(End::Broken);
        Bytes::from(Format::Chat.stream_error(code, &message))
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.finish(End::ClientGone);
    }
}

impl MeteredStream {
    pub fn new(
        inner: UpstreamBody,
        ledger: Ledger,
        permit: OwnedSemaphorePermit,
        strip_usage: bool,
    ) -> Self {
        let labels = [
            ledger.rt.policy.tiers[ledger.tier].name.as_str(),
            ledger.rt.policy.upstreams[ledger.upstream].name.as_str(),
        ];
        let chunk_gap = ledger.app.metrics.chunk_gap.with_label_values(&labels);
        // Chat and completion streams: the chat reader reads both.
        let capture = Capture::of(&ledger, Format::Chat);
        MeteredStream {
            inner,
            splitter: SseSplitter::new(),
            strip_usage,
            batch: Batch::default(),
            idle_polls: 0,
            meter: Meter {
                ledger: Some(ledger),
                chunk_gap,
                usage: None,
                ttft: None,
                last_chunk: None,
                output_text: 0,
                saw_done: false,
                capture,
                _permit: permit,
            },
            done: false,
        }
    }
}

impl Meter {
    /// Reads timing, text and usage off one upstream chunk; returns what the client gets.
    fn observe(
        &mut self,
        data: Bytes,
        splitter: &mut SseSplitter,
        strip_usage: bool,
        out: &mut Batch,
    ) {
        let now = Instant::now();
        if let Some(c) = &mut self.capture
            && !c.push(&data)
        {
            self.capture = None;
        }
        let mut events = Vec::new();
        // Only whole events go to the client, so a stream that breaks can end with a clean
        // error event instead of half an event.
        let complete = splitter.push_complete(data, &mut events);
        for event in events {
            // Gaps are between events: those that came in one read came together.
            if let Some(prev) = self.last_chunk.replace(now) {
                self.chunk_gap.observe((now - prev).as_secs_f64());
            }
            let payload = data_of(&event);
            if payload.as_deref() == Some(b"[DONE]") {
                self.saw_done = true;
            }
            let text = payload.as_deref().map_or(0, scan::output_text_len);
            if text > 0 && self.ttft.is_none() {
                self.ttft = self.ledger.as_ref().map(|l| now - l.started);
            }
            self.output_text += text;
            let usage_only = match payload {
                Some(d) if scan::has_object(&d, &scan::USAGE) => match usage_of_chunk(&d) {
                    Some((u, only)) => {
                        self.usage = Some(u);
                        only
                    }
                    None => false,
                },
                _ => false,
            };
            // Stripping sends whole events only (slices of the upstream's bytes, not copies).
            if strip_usage && !usage_only {
                out.push(event);
            }
        }
        if !strip_usage {
            // The upstream's bytes as they came (whole events).
            out.push(complete);
        }
    }
}

/// Above this many bytes a batch goes out without waiting for more.
const BATCH_LIMIT: usize = 64 * 1024;
/// How many empty polls a waiting batch allows before it goes out.
const IDLE_POLLS: u8 = 2;

impl Body for MeteredStream {
    type Data = Bytes;
    type Error = BoxError;

    /// Sends on what the upstream has delivered as one frame. The upstream connection hands
    /// over one chunk per poll, so after a chunk this yields once to let it hand over what it
    /// already has: a burst of small events then costs one write to the client, not one per
    /// event (loopback or not, each write is a syscall and a wake-up). Nothing waits on the
    /// network for it: a poll that brings nothing new sends the batch.
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let mut progressed = false;
        while !*this.done && this.batch.len() < BATCH_LIMIT {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => {
                    *this.done = true;
                    if let Some(rest) = this.splitter.take_rest() {
                        this.meter.saw_done |= data_of(&rest).as_deref() == Some(b"[DONE]");
                        this.batch.push(rest);
                    }
                    if this.meter.saw_done {
                        this.meter.finish(End::Complete);
                    } else {
                        let e = deadline::StreamFault::Truncated;
                        this.batch.push(this.meter.broken(&e));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    // Never a cut stream: drop the unfinished event, end with an error event.
                    *this.done = true;
                    let _ = this.splitter.take_rest();
                    this.batch.push(this.meter.broken(&*e));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    progressed = true;
                    // SSE has no trailers; only data frames carry anything.
                    if let Ok(data) = frame.into_data() {
                        this.meter
                            .observe(data, this.splitter, *this.strip_usage, this.batch);
                    }
                }
            }
        }
        if !*this.done && this.batch.len() < BATCH_LIMIT && !this.batch.is_empty() {
            if progressed {
                *this.idle_polls = 0;
            }
            if *this.idle_polls < IDLE_POLLS {
                *this.idle_polls += 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        *this.idle_polls = 0;
        match this.batch.take() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None if *this.done => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.batch.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Bytes gathered for one frame; copies only when there is more than one piece.
#[derive(Default)]
pub(super) struct Batch {
    first: Option<Bytes>,
    more: Option<BytesMut>,
}

impl Batch {
    pub(super) fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        match (&mut self.first, &mut self.more) {
            (None, _) => self.first = Some(b),
            (Some(_), Some(m)) => m.extend_from_slice(&b),
            (Some(f), None) => {
                let mut m = BytesMut::with_capacity((f.len() + b.len()) * 8);
                m.extend_from_slice(f);
                m.extend_from_slice(&b);
                self.more = Some(m);
            }
        }
    }

    fn len(&self) -> usize {
        self.more
            .as_ref()
            .map_or_else(|| self.first.as_ref().map_or(0, Bytes::len), BytesMut::len)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub(super) fn take(&mut self) -> Option<Bytes> {
        let first = self.first.take();
        self.more.take().map(BytesMut::freeze).or(first)
    }
}
