//! An upstream body under its timeouts: idle (longest silence between two frames) and total
//! (a deadline for the whole answer). A timeout or a broken connection ends the body with a
//! `StreamFault`, which the stream bodies turn into a well-formed SSE error event.
//!
//! The timer is reset lazily: a frame only notes the time; when the timer fires early (a
//! frame came since it was set) it is moved, so the per-frame cost is one clock read.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::app::BoxError;

/// Why an upstream body ended early.
#[derive(Debug, thiserror::Error)]
pub enum StreamFault {
    #[error("the upstream sent nothing for {0:?}")]
    Idle(Duration),
    #[error("the upstream did not finish within {0:?}")]
    Total(Duration),
    #[error("the upstream broke off its response: {0}")]
    Broken(String),
    #[error("the upstream ended its stream without [DONE]")]
    Truncated,
}

impl StreamFault {
    /// The metric label and the error event's `code`.
    pub fn reason(&self) -> &'static str {
        match self {
            StreamFault::Idle(_) => "idle_timeout",
            StreamFault::Total(_) => "total_timeout",
            StreamFault::Broken(_) => "broken",
            StreamFault::Truncated => "truncated",
        }
    }
}

pin_project! {
    pub struct Deadline {
        #[pin]
        inner: Incoming,
        timer: Pin<Box<Sleep>>,
        // A frame read ahead (the first event of a stream), given out first.
        first: Option<Frame<Bytes>>,
        idle: Option<Duration>,
        total: Duration,
        total_at: Instant,
        last: Instant,
        done: bool,
    }
}

impl Deadline {
    /// `idle: None` for whole bodies, which may legitimately wait before their first byte.
    pub fn new(inner: Incoming, idle: Option<Duration>, total: Duration, started: Instant) -> Self {
        let now = Instant::now();
        let total_at = started + total;
        let first_due = idle.map_or(total_at, |i| (now + i).min(total_at));
        Deadline {
            inner,
            timer: Box::pin(tokio::time::sleep_until(first_due)),
            first: None,
            idle,
            total,
            total_at,
            last: now,
            done: false,
        }
    }

    /// Reads ahead to the end of the first SSE event (within the timeouts): Ok(false) when
    /// the body ended before one. What was read is given out first, as one frame.
    pub async fn first_event(&mut self) -> Result<bool, StreamFault> {
        use http_body_util::BodyExt;
        let mut buf: Option<bytes::BytesMut> = None;
        loop {
            match self.frame().await {
                None => return Ok(false),
                Some(Err(e)) => {
                    return Err(match e.downcast::<StreamFault>() {
                        Ok(f) => *f,
                        Err(e) => StreamFault::Broken(e.to_string()),
                    });
                }
                Some(Ok(f)) => {
                    let Ok(data) = f.into_data() else { continue };
                    let whole = match &mut buf {
                        // Usually the first frame holds a whole event: no copy.
                        None if has_event_end(&data) => {
                            self.first = Some(Frame::data(data));
                            return Ok(true);
                        }
                        None => buf.insert(bytes::BytesMut::from(&data[..])),
                        Some(b) => {
                            b.extend_from_slice(&data);
                            b
                        }
                    };
                    if has_event_end(whole) {
                        let data = whole.split().freeze();
                        self.first = Some(Frame::data(data));
                        return Ok(true);
                    }
                }
            }
        }
    }
}

/// Whether `data` holds the blank line that ends an SSE event.
fn has_event_end(data: &[u8]) -> bool {
    data.windows(2).any(|w| w == b"\n\n") || data.windows(4).any(|w| w == b"\r\n\r\n")
}

impl Body for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Some(f) = this.first.take() {
            return Poll::Ready(Some(Ok(f)));
        }
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                *this.last = Instant::now();
                return Poll::Ready(Some(Ok(f)));
            }
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                return Poll::Ready(Some(Err(Box::new(StreamFault::Broken(describe(&e))))));
            }
            Poll::Ready(None) => {
                *this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        loop {
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let fault = if now >= *this.total_at {
                Some(StreamFault::Total(*this.total))
            } else {
                this.idle
                    .filter(|i| now >= *this.last + *i)
                    .map(StreamFault::Idle)
            };
            if let Some(f) = fault {
                *this.done = true;
                return Poll::Ready(Some(Err(Box::new(f))));
            }
            let due = this
                .idle
                .map_or(*this.total_at, |i| (*this.last + i).min(*this.total_at));
            this.timer.as_mut().reset(due);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && (self.done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.first.is_some() {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

use std::future::Future;

fn describe(e: &hyper::Error) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// The SSE event that ends a broken stream, in OpenAI's error shape.
pub fn error_event(e: &(dyn std::error::Error + 'static)) -> Bytes {
    let (reason, message) = match e.downcast_ref::<StreamFault>() {
        Some(f) => (f.reason(), f.to_string()),
        None => (
            "broken",
            format!("the upstream broke off its response: {e}"),
        ),
    };
    let code = match reason {
        "idle_timeout" => "upstream_idle_timeout",
        "total_timeout" => "upstream_timeout",
        _ => "upstream_stream_broken",
    };
    let mut out = b"data: ".to_vec();
    out.extend(crate::protocol::error::to_json(
        &message,
        "server_error",
        None,
        Some(code),
    ));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The metric label of an error that ended a stream.
pub fn reason_of(e: &(dyn std::error::Error + 'static)) -> &'static str {
    e.downcast_ref::<StreamFault>()
        .map_or("broken", StreamFault::reason)
}
