//! An upstream body under its timeouts: idle (longest silence between two frames) and total
//! (a deadline for the whole answer). A timeout or a broken connection ends the body with a
//! `StreamFault`, which the stream bodies turn into a well-formed SSE error event.
//!
//! The timer is reset lazily: a frame only notes the time; when the timer fires early (a
//! frame came since it was set) it is moved, so the per-frame cost is one clock read.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::describe;
use crate::http::BoxError;

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

    /// The `code` of the error event that ends the client's stream.
    pub fn code(&self) -> &'static str {
        match self {
            StreamFault::Idle(_) => "upstream_idle_timeout",
            StreamFault::Total(_) => "upstream_timeout",
            StreamFault::Broken(_) => "upstream_stream_broken",
            StreamFault::Truncated => "upstream_stream_truncated",
        }
    }
}

pin_project! {
    pub struct Deadline {
        #[pin]
        inner: Incoming,
        timer: Pin<Box<Sleep>>,
        // Bytes read ahead (a stream's first event and what came with it), given out first.
        ahead: Option<Bytes>,
        // An error met while reading ahead, given out after `ahead`.
        fault: Option<BoxError>,
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
            ahead: None,
            fault: None,
            idle,
            total,
            total_at,
            last: now,
            done: false,
        }
    }

    /// Reads ahead to the end of the first SSE event (within the timeouts): Ok(false) when
    /// the body ended before one. Then reads on through what has already arrived (see
    /// `read_ready`). What was read is given out first, as one frame.
    pub async fn first_event(&mut self) -> Result<bool, StreamFault> {
        use http_body_util::BodyExt;
        let mut buf = BytesMut::new();
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
                    buf.extend_from_slice(&data);
                    if has_event_end(&buf) {
                        break;
                    }
                }
            }
        }
        self.read_ready(&mut buf).await;
        self.ahead = Some(buf.freeze());
        Ok(true)
    }

    /// Appends the frames that come without waiting on the network. hyper's client hands
    /// over one chunk (one event, usually) at a time from its connection task, and its
    /// server writes the response head alone as soon as the body has nothing ready: reading
    /// on here, before the head exists, lets a fast upstream's stream reach the client in
    /// one write with its head. A yield lets the connection task decode the next chunk;
    /// the read stops at the second wait in a row, at READ_AHEAD bytes, or at the end.
    async fn read_ready(&mut self, buf: &mut BytesMut) {
        let mut waits = 0;
        while waits < 2 && buf.len() < READ_AHEAD && !self.done {
            let ready = std::future::poll_fn(|cx| {
                Poll::Ready(match Pin::new(&mut *self).poll_frame(cx) {
                    Poll::Ready(f) => Some(f),
                    Poll::Pending => None,
                })
            })
            .await;
            match ready {
                None => {
                    waits += 1;
                    tokio::task::yield_now().await;
                }
                Some(Some(Ok(f))) => {
                    waits = 0;
                    if let Ok(data) = f.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
                Some(Some(Err(e))) => self.fault = Some(e),
                Some(None) => {}
            }
        }
    }
}

/// How much of a stream `read_ready` may gather before the client sees any of it.
const READ_AHEAD: usize = 64 * 1024;

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
        if let Some(b) = this.ahead.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if let Some(e) = this.fault.take() {
            return Poll::Ready(Some(Err(e)));
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
        self.ahead.is_none() && self.fault.is_none() && (self.done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.ahead.is_some() {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

use std::future::Future;

/// Why a stream ended early: its metric label, the error event's `code`, and a message.
pub fn fault_of(e: &(dyn std::error::Error + 'static)) -> (&'static str, &'static str, String) {
    match e.downcast_ref::<StreamFault>() {
        Some(f) => (f.reason(), f.code(), f.to_string()),
        None => (
            "broken",
            "upstream_stream_broken",
            format!("the upstream broke off its response: {e}"),
        ),
    }
}
