//! Sending a request to the upstreams of its route until one answers.
//!
//! For each upstream of the route, in order (`attempt`):
//! 1. Skip it when its circuit is open or its health check fails, or (not the last one)
//!    when it is slower than its `latency_target`: spill-over.
//! 2. Take a concurrency slot. A saturated upstream that is not the last passes the request
//!    on; the last one queues it, for at most its first-byte timeout and behind at most
//!    `max_queue` others (one more gets 503).
//! 3. Send. A connection error, no first byte within the attempt's deadline, a 429, a 5xx,
//!    a stream that ends or breaks before its first event, or a whole answer broken off is
//!    a failure; anything else (4xx included) is the answer. A stream's first event and a
//!    whole answer are read here, so that everything up to them can still go elsewhere: the
//!    client has seen no byte yet. The first-byte deadline adapts: a multiple of the
//!    upstream's recent p99 time to first byte, between a floor and `timeouts.first_byte`.
//! 4. On a failure, retry the same upstream when its policy allows (`retry.attempts`), the
//!    upstream's retry budget has a token, its circuit did not open, and the retry fits in
//!    its `total` timeout; wait a jittered exponential backoff first, or a 429's
//!    `retry-after` (a longer one than `max_retry_after` means: do not retry). Otherwise
//!    fall back to the next upstream. Retries are for the same upstream only; falling back
//!    costs no budget, since it sends the load elsewhere.
//!
//! Hedging (here): while an upstream that hedges has sent no first byte for its hedge delay,
//! the next upstream of the route is asked too, at most once per request. The first answer
//! wins; the other attempt is dropped, which closes its connection, and nothing of it is
//! metered (the client pays only for the answer it got). A hedge that fails leaves the
//! first attempt running; a first attempt that fails leaves the hedge running.
//!
//! Once an answer is returned nothing is retried: the client may have bytes of it. Its body
//! runs under the upstream's idle (streams only) and total timeouts (`deadline`).

mod attempt;

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::Response;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::app::App;
use crate::config::Upstream;
use crate::error::{GatewayError, UpstreamFailure};
use crate::http::Body;
use crate::metrics::InFlight;
pub use crate::provider::Outgoing;
use crate::upstream::ttfb::Kind;
use crate::upstream::{Runtime, UpstreamRuntime};
use attempt::{Ctx, attempt_upstream, hedge_delay};

/// A response head from an upstream, with the permit that holds its concurrency slot.
pub struct Forwarded {
    pub upstream: usize,
    pub response: Response<Body>,
    pub permit: OwnedSemaphorePermit,
    /// Holds the upstream's in-flight gauge up while its answer is being read; moves into
    /// the ledger.
    pub in_flight: Option<InFlight>,
    /// When the first attempt was sent.
    pub first_sent: std::time::Instant,
}

type Failure = (UpstreamFailure, String);

/// Whether a request body asks for a stream: `"stream":true` appears unescaped only as a
/// key and its value (inside a string its quotes would be escaped).
fn asks_for_stream(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"\"stream\":true").is_some()
        || memchr::memmem::find(body, b"\"stream\": true").is_some()
}

/// Tries the upstreams of `order`, in order, hedging where they do (`tier` names the route
/// in errors and metrics).
pub async fn forward_to(
    app: &App,
    rt: &Runtime,
    tier: usize,
    order: &[usize],
    request_id: &str,
    prepare: impl Fn(&Upstream, &UpstreamRuntime) -> Outgoing,
) -> Result<Forwarded, GatewayError> {
    let tier_name = &rt.policy.tiers[tier].name;
    let Some(&head) = order.first() else {
        return Err(GatewayError::NoUpstream(tier_name.clone()));
    };
    // The first request is built here: whether it streams picks the latency figures.
    let first = prepare(&rt.policy.upstreams[head], &rt.upstreams[head]);
    let kind = if asks_for_stream(&first.body) {
        Kind::Stream
    } else {
        Kind::Whole
    };
    let first_sent = OnceLock::new();
    let cx = Ctx {
        app,
        rt,
        request_id,
        kind,
        first_sent: &first_sent,
        prepare: &prepare,
    };
    let m = &app.metrics;
    let upstream = |i: usize| &rt.policy.upstreams[order[i]];
    let start = |i: usize, prepared: Option<Outgoing>| {
        let cx = &cx;
        async move {
            let r = attempt_upstream(cx, order[i], i + 1 == order.len(), prepared).await;
            (i, r)
        }
    };
    let mut prepared = Some(first);
    let mut running = FuturesUnordered::new();
    let mut next = 0;
    let mut last: Option<(usize, Failure)> = None;
    // The hedge, once started (its index in `order`), and when to start it until then.
    let mut hedge: Option<usize> = None;
    let mut hedge_at: Option<Instant> = None;
    // The attempt a hedge was started beside, while it runs, and when it was started.
    let mut started_at = Instant::now();
    let mut beside: Option<(usize, Instant)> = None;
    loop {
        if running.is_empty() {
            if next == order.len() {
                break;
            }
            if let Some((from, (why, _))) = &last {
                m.fallbacks
                    .with_label_values(&[&upstream(*from).name, &upstream(next).name, why.label()])
                    .inc();
            }
            running.push(start(next, prepared.take()));
            started_at = Instant::now();
            hedge_at = match hedge {
                None if next + 1 < order.len() => {
                    let run = &rt.upstreams[order[next]];
                    hedge_delay(upstream(next), run, kind).map(|d| Instant::now() + d)
                }
                _ => None,
            };
            next += 1;
        }
        let timer: Pin<Box<dyn Future<Output = ()> + Send>> = match hedge_at {
            Some(at) => Box::pin(tokio::time::sleep_until(at)),
            None => Box::pin(std::future::pending()),
        };
        tokio::select! {
            biased;
            Some((i, result)) = running.next() => match result {
                Ok(fwd) => {
                    if let Some(h) = hedge {
                        let outcome = if i == h { "won" } else { "lost" };
                        m.hedges
                            .with_label_values(&[tier_name, &upstream(h).name, outcome])
                            .inc();
                        tracing::debug!(request_id, upstream = %upstream(i).name, outcome, "hedged request answered");
                        // The loser's wait is a lower bound of its time to first byte: kept,
                        // or the quantiles would know only its fast answers and hedge on.
                        if let Some((p, at)) = beside.filter(|_| i == h) {
                            rt.upstreams[order[p]].state.ttfb.record(kind, at.elapsed());
                        }
                    }
                    // Dropping `running` cancels the other attempt, if any.
                    return Ok(fwd);
                }
                Err(failure) => {
                    if hedge == Some(i) {
                        m.hedges
                            .with_label_values(&[tier_name, &upstream(i).name, "failed"])
                            .inc();
                    }
                    hedge_at = None;
                    if beside.is_some_and(|(p, _)| p == i) {
                        beside = None;
                    }
                    last = Some((i, failure));
                }
            },
            () = timer => {
                hedge_at = None;
                if next < order.len() && hedge.is_none() {
                    tracing::debug!(request_id, from = %upstream(next - 1).name, to = %upstream(next).name, "no first byte yet: hedging");
                    hedge = Some(next);
                    beside = Some((next - 1, started_at));
                    running.push(start(next, None));
                    next += 1;
                }
            }
        }
    }
    let (kind, detail) = last
        .map(|(_, f)| f)
        .unwrap_or((UpstreamFailure::Connect, "no attempt was made".into()));
    Err(GatewayError::UpstreamFailed {
        tier: tier_name.clone(),
        detail,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::asks_for_stream;

    #[test]
    fn a_stream_is_asked_for_by_the_key_not_by_text() {
        assert!(asks_for_stream(br#"{"model":"m","stream":true}"#));
        assert!(asks_for_stream(br#"{"model": "m", "stream": true}"#));
        assert!(!asks_for_stream(br#"{"stream":false}"#));
        assert!(!asks_for_stream(
            br#"{"messages":[{"content":"set \"stream\":true here"}],"stream":false}"#
        ));
    }
}
