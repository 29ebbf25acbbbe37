//! The body of a streamed response: upstream frames go to the client as they arrive, while
//! usage, time to first token and chunk gaps are read off the events. The accounting happens
//! once, when the stream ends, breaks, or is dropped because the client hung up (and dropping
//! the upstream body closes the upstream connection: nobody pays for tokens nobody reads).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;

use super::record::{End, Ledger};
use crate::app::BoxError;
use crate::protocol::openai::{Usage, usage_of_chunk};
use crate::protocol::sse::{SseSplitter, data_of};

pin_project! {
    pub struct MeteredStream {
        #[pin]
        inner: Incoming,
        splitter: SseSplitter,
        // Set when tiergate itself asked for usage: the usage-only chunk is not the client's.
        strip_usage: bool,
        out: VecDeque<Bytes>,
        meter: Meter,
        done: bool,
    }
}

/// The accounting state; records on `finish` or, failing that, on drop.
struct Meter {
    ledger: Option<Ledger>,
    usage: Option<Usage>,
    ttft: Option<Duration>,
    last_chunk: Option<Instant>,
    output_bytes: usize,
    _permit: OwnedSemaphorePermit,
}

impl Meter {
    fn finish(&mut self, end: End) {
        if let Some(ledger) = self.ledger.take() {
            ledger.finish(self.usage, self.output_bytes, self.ttft, end);
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.finish(End::ClientGone);
    }
}

impl MeteredStream {
    pub fn new(inner: Incoming, ledger: Ledger, permit: OwnedSemaphorePermit, strip_usage: bool) -> Self {
        MeteredStream {
            inner,
            splitter: SseSplitter::new(),
            strip_usage,
            out: VecDeque::new(),
            meter: Meter { ledger: Some(ledger), usage: None, ttft: None, last_chunk: None, output_bytes: 0, _permit: permit },
            done: false,
        }
    }
}

/// Whether the event carries a usage object (not `"usage": null`), found without parsing JSON.
fn mentions_usage(data: &[u8]) -> bool {
    let key = b"\"usage\"";
    let mut rest = data;
    while let Some(i) = rest.windows(key.len()).position(|w| w == key) {
        let after = &rest[i + key.len()..];
        let value = after.iter().skip_while(|b| b.is_ascii_whitespace() || **b == b':').find(|b| !b.is_ascii_whitespace());
        if value == Some(&b'{') {
            return true;
        }
        rest = after;
    }
    false
}

impl Body for MeteredStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(b) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    *this.done = true;
                    if let Some(rest) = this.splitter.take_rest()
                        && *this.strip_usage {
                            this.out.push_back(rest);
                        }
                    this.meter.finish(End::Complete);
                }
                Poll::Ready(Some(Err(e))) => {
                    *this.done = true;
                    this.meter.finish(End::Broken);
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let data = match frame.into_data() {
                        Ok(d) => d,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    };
                    let now = Instant::now();
                    let meter = &mut *this.meter;
                    if let Some(ledger) = &meter.ledger {
                        if meter.ttft.is_none() {
                            meter.ttft = Some(now - ledger.started);
                        } else if let Some(prev) = meter.last_chunk {
                            let labels = [ledger.rt.policy.tiers[ledger.tier].name.as_str(), ledger.rt.policy.upstreams[ledger.upstream].name.as_str()];
                            ledger.app.metrics.chunk_gap.with_label_values(&labels).observe((now - prev).as_secs_f64());
                        }
                    }
                    meter.last_chunk = Some(now);
                    meter.output_bytes += data.len();
                    let mut events = Vec::new();
                    this.splitter.push(data.clone(), &mut events);
                    let mut kept = Vec::with_capacity(events.len());
                    for event in events {
                        let usage_only = match data_of(&event) {
                            Some(d) if mentions_usage(&d) => match usage_of_chunk(&d) {
                                Some((u, only)) => {
                                    meter.usage = Some(u);
                                    only
                                }
                                None => false,
                            },
                            _ => false,
                        };
                        if !(*this.strip_usage && usage_only) {
                            kept.push(event);
                        }
                    }
                    if *this.strip_usage {
                        // Whole events only (slices of the upstream's bytes, not copies).
                        this.out.extend(kept);
                    } else {
                        // Pass the upstream's bytes on exactly as they came.
                        this.out.push_back(data);
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::mentions_usage;

    #[test]
    fn usage_objects_are_told_from_nulls() {
        assert!(mentions_usage(br#"{"choices":[],"usage": {"prompt_tokens":1}}"#));
        assert!(!mentions_usage(br#"{"choices":[{"delta":{}}],"usage":null}"#));
        assert!(!mentions_usage(br#"{"choices":[{"delta":{"content":"usage"}}]}"#));
    }
}
