//! Everything that happens at one upstream for one request: spill-over, a concurrency slot,
//! attempts and retries (the steps 1-4 of `forward`).

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{Failure, Forwarded, Outgoing};
use crate::app::App;
use crate::config::Upstream;
use crate::error::UpstreamFailure;
use crate::http::Body;
use crate::metrics::InFlight;
use crate::proxy::deadline::{Deadline, StreamFault};
use crate::proxy::describe;
use crate::upstream::breaker::Admit;
use crate::upstream::ttfb::Kind;
use crate::upstream::{Runtime, UpstreamRuntime};

/// Counts and logs a circuit change.
fn note(app: &App, upstream: &str, t: Option<crate::upstream::state::Transition>) {
    crate::upstream::health::note(&app.metrics, &app.runtime.load(), upstream, t);
}

/// What every attempt of one request shares.
pub struct Ctx<'a, P> {
    pub app: &'a App,
    pub rt: &'a Runtime,
    pub request_id: &'a str,
    pub kind: Kind,
    /// When the first attempt was sent (for the answer's total timeout and duration).
    pub first_sent: &'a OnceLock<std::time::Instant>,
    pub prepare: &'a P,
}

/// This attempt's first-byte deadline at `up` (see `AdaptiveFirstByte`).
pub fn first_byte(up: &Upstream, run: &UpstreamRuntime, kind: Kind) -> Duration {
    up.first_byte_adaptive
        .deadline(up.timeouts.first_byte, run.state.ttfb.p99(kind))
}

/// How long an attempt at `up` may go without a first byte before the next upstream is
/// asked too; None: `up` does not hedge.
pub fn hedge_delay(up: &Upstream, run: &UpstreamRuntime, kind: Kind) -> Option<Duration> {
    if kind == Kind::Whole && !up.hedge_whole {
        return None;
    }
    let after = up.hedge_after?;
    let delay = run.state.ttfb.p95(kind).map_or(after, |p| p.max(after));
    Some(delay.min(first_byte(up, run, kind)))
}

fn fail(app: &App, up: &Upstream, kind: UpstreamFailure, detail: String) -> Failure {
    app.metrics
        .upstream_errors
        .with_label_values(&[up.name.as_str(), kind.label()])
        .inc();
    (kind, detail)
}

/// Takes a concurrency slot: at once, or (for the last upstream) after queueing.
async fn slot(
    app: &App,
    up: &Upstream,
    run: &UpstreamRuntime,
    is_last: bool,
) -> Result<OwnedSemaphorePermit, Failure> {
    let saturated = |why: &str| {
        fail(
            app,
            up,
            UpstreamFailure::Saturated,
            format!("{} is at its max_concurrency{why}", up.name),
        )
    };
    match run.permits.clone().try_acquire_owned() {
        Ok(p) => return Ok(p),
        Err(_) if !is_last => return Err(saturated("")),
        Err(_) => {}
    }
    let Some(_place) = QueuePlace::take(&run.state.queued, up.max_queue) else {
        return Err(saturated(" and its queue is full"));
    };
    match tokio::time::timeout(up.timeouts.first_byte, run.permits.clone().acquire_owned()).await {
        Ok(Ok(p)) => Ok(p),
        _ => Err(saturated(" (queued too long)")),
    }
}

/// A place in an upstream's queue, given back on drop: also when the waiting request is
/// cancelled because its client hung up.
struct QueuePlace<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn take(queued: &'a std::sync::atomic::AtomicUsize, max: usize) -> Option<Self> {
        use std::sync::atomic::Ordering;
        if queued.fetch_add(1, Ordering::Relaxed) >= max {
            queued.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(QueuePlace(queued))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Everything that happens at upstream `u`: spill-over, slot, attempts and retries.
/// `prepared` is its first attempt's request when the caller built it already.
pub async fn attempt_upstream<P: Fn(&Upstream, &UpstreamRuntime) -> Outgoing>(
    cx: &Ctx<'_, P>,
    u: usize,
    is_last: bool,
    mut prepared: Option<Outgoing>,
) -> Result<Forwarded, Failure> {
    let (app, rt, request_id) = (cx.app, cx.rt, cx.request_id);
    let up = &rt.policy.upstreams[u];
    let run = &rt.upstreams[u];
    let m = &app.metrics;
    if !is_last && up.latency_target.is_some_and(|t| run.state.is_slow(t)) {
        return Err(fail(
            app,
            up,
            UpstreamFailure::Saturated,
            format!("{} is slower than its latency_target", up.name),
        ));
    }
    let permit = slot(app, up, run, is_last).await?;
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        let (admit, t) = run.state.admit(&up.breaker);
        note(app, &up.name, t);
        if admit == Admit::No {
            let why = if run.state.is_healthy() {
                "its circuit is open"
            } else {
                "its health check fails"
            };
            return Err(fail(
                app,
                up,
                UpstreamFailure::Unavailable,
                format!("{} skipped: {why}", up.name),
            ));
        }
        let probe = admit == Admit::Probe;
        if attempt == 0 {
            run.state.count_request();
        }
        let out = prepared.take().unwrap_or_else(|| (cx.prepare)(up, run));
        let mut req = Request::post(out.uri)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header("x-request-id", request_id)
            .body(Full::new(out.body))
            .map_err(|e| (UpstreamFailure::Connect, e.to_string()))?;
        for (name, value) in out.headers {
            req.headers_mut().insert(name, value);
        }
        if let Some((name, value)) = &run.auth {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        let in_flight = InFlight::new(m.upstream_in_flight.with_label_values(&[&up.name]));
        let sent = Instant::now();
        let first = *cx.first_sent.get_or_init(std::time::Instant::now);
        match send(up, run, req, sent, cx.kind).await {
            Ok((response, ttfb)) => {
                note(app, &up.name, run.state.record(&up.breaker, true, probe));
                run.state.observe_latency(ttfb);
                run.state.ttfb.record(cx.kind, ttfb);
                return Ok(Forwarded {
                    upstream: u,
                    response,
                    permit,
                    in_flight: Some(in_flight),
                    first_sent: first,
                });
            }
            Err((kind, detail, retry_after)) => {
                drop(in_flight);
                // A 429 says the upstream is alive: only a probe counts it against the circuit.
                if kind != UpstreamFailure::RateLimited || probe {
                    note(app, &up.name, run.state.record(&up.breaker, false, probe));
                }
                tracing::warn!(request_id, upstream = %up.name, kind = kind.label(), attempt, "upstream attempt failed: {detail}");
                let failure = fail(app, up, kind, detail);
                let Some(wait) = retry_wait(&up.retry, attempt, kind, retry_after) else {
                    return Err(failure);
                };
                if run.state.circuit() == crate::upstream::breaker::State::Open
                    || started.elapsed() + wait >= up.timeouts.total
                {
                    return Err(failure);
                }
                if !run.state.try_retry(&rt.policy.retry_budget) {
                    m.retries_denied.with_label_values(&[&up.name]).inc();
                    return Err(failure);
                }
                m.retries
                    .with_label_values(&[up.name.as_str(), kind.label()])
                    .inc();
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

type SendError = (UpstreamFailure, String, Option<Duration>);

/// How often a waiting attempt looks at its deadline again.
const RECHECK: Duration = Duration::from_millis(500);

/// `fut`, unless the first-byte deadline (counted from `sent`) passes first: then Err with
/// the deadline. The deadline is looked at again while waiting, so that an attempt sent
/// before the upstream's first answers were known (its deadline then the ceiling) ends as
/// soon as they show it hung, not at the ceiling.
async fn by_first_byte<F: std::future::Future>(
    up: &Upstream,
    run: &UpstreamRuntime,
    kind: Kind,
    sent: Instant,
    fut: F,
) -> Result<F::Output, Duration> {
    let mut fut = std::pin::pin!(fut);
    loop {
        let fb = first_byte(up, run, kind);
        let at = sent + fb;
        match tokio::time::timeout_at(at.min(Instant::now() + RECHECK), &mut fut).await {
            Ok(v) => return Ok(v),
            Err(_) if Instant::now() >= at => return Err(fb),
            Err(_) => {}
        }
    }
}

/// One attempt: the response head and, for a stream, its first event; a whole answer is
/// read to its end here, so that one broken off can still go elsewhere. Also gives the
/// time to first byte (head, or first event).
async fn send(
    up: &Upstream,
    run: &UpstreamRuntime,
    req: Request<Full<Bytes>>,
    sent: Instant,
    kind: Kind,
) -> Result<(Response<Body>, Duration), SendError> {
    let resp = match by_first_byte(up, run, kind, sent, run.client.request(req)).await {
        Err(fb) => {
            let d = format!("{} sent no response within {fb:?}", up.name);
            return Err((UpstreamFailure::Timeout, d, None));
        }
        Ok(Err(e)) => {
            let d = format!("{}: {}", up.name, describe(&e));
            return Err((UpstreamFailure::Connect, d, None));
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status.as_u16() == 429 {
        let d = format!("{} answered 429", up.name);
        return Err((UpstreamFailure::RateLimited, d, retry_after(resp.headers())));
    }
    if status.is_server_error() {
        let d = format!("{} answered {}", up.name, status.as_u16());
        return Err((UpstreamFailure::ServerError, d, None));
    }
    let sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let (parts, body) = resp.into_parts();
    let mut body = Deadline::new(
        body,
        sse.then_some(up.timeouts.idle),
        up.timeouts.total,
        sent,
    );
    let head = sent.elapsed();
    if !sse {
        return match body.collect().await {
            Ok(c) => Ok((
                Response::from_parts(
                    parts,
                    Full::new(c.to_bytes())
                        .map_err(|e| match e {})
                        .boxed_unsync(),
                ),
                head,
            )),
            Err(e) => {
                let kind = match e.downcast_ref::<StreamFault>() {
                    Some(StreamFault::Total(_)) => UpstreamFailure::Timeout,
                    _ => UpstreamFailure::Broken,
                };
                Err((kind, format!("{}: {e}", up.name), None))
            }
        };
    }
    if status.is_success() {
        let broken = |d: String| Err((UpstreamFailure::Broken, d, None));
        match by_first_byte(up, run, kind, sent, body.first_event()).await {
            Err(fb) => {
                let d = format!("{} sent no event within {fb:?}", up.name);
                return Err((UpstreamFailure::Timeout, d, None));
            }
            Ok(Err(f @ (StreamFault::Idle(_) | StreamFault::Total(_)))) => {
                return Err((UpstreamFailure::Timeout, format!("{}: {f}", up.name), None));
            }
            Ok(Err(f)) => return broken(format!("{}: {f}", up.name)),
            Ok(Ok(false)) => {
                return broken(format!(
                    "{} ended its stream before the first event",
                    up.name
                ));
            }
            Ok(Ok(true)) => {}
        }
    }
    Ok((
        Response::from_parts(parts, body.boxed_unsync()),
        sent.elapsed(),
    ))
}

/// How long to wait before retrying after `attempt` (0-based) failed, or None: do not.
fn retry_wait(
    cfg: &crate::config::resilience::RetryConfig,
    attempt: u32,
    kind: UpstreamFailure,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    if attempt >= cfg.attempts
        || matches!(
            kind,
            UpstreamFailure::Saturated | UpstreamFailure::Unavailable
        )
    {
        return None;
    }
    let cap = cfg
        .max_backoff
        .min(cfg.backoff.saturating_mul(1u32 << attempt.min(16)));
    let jittered = cap.mul_f64(fastrand::f64());
    match retry_after {
        Some(ra) if ra > cfg.max_retry_after => None,
        Some(ra) => Some(ra.max(jittered)),
        None => Some(jittered),
    }
}

/// A 429's wait: `retry-after-ms` (OpenAI), else `retry-after` in seconds.
fn retry_after(h: &http::HeaderMap) -> Option<Duration> {
    let num = |name: &str| {
        h.get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    num("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| num("retry-after").map(Duration::from_secs_f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resilience::RetryConfig;

    #[test]
    fn backoff_is_jittered_capped_and_bounded_by_attempts() {
        let cfg = RetryConfig {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(2),
        };
        for _ in 0..200 {
            let w = retry_wait(&cfg, 0, UpstreamFailure::ServerError, None).unwrap();
            assert!(w <= Duration::from_millis(100));
            let w = retry_wait(&cfg, 2, UpstreamFailure::Connect, None).unwrap();
            assert!(w <= Duration::from_millis(300), "capped: {w:?}");
        }
        assert_eq!(retry_wait(&cfg, 3, UpstreamFailure::Connect, None), None);
        assert_eq!(retry_wait(&cfg, 0, UpstreamFailure::Saturated, None), None);
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_bound() {
        let cfg = RetryConfig {
            attempts: 1,
            ..RetryConfig::default()
        };
        let one = Duration::from_secs(1);
        let w = retry_wait(&cfg, 0, UpstreamFailure::RateLimited, Some(one)).unwrap();
        assert!(w >= one);
        assert_eq!(
            retry_wait(
                &cfg,
                0,
                UpstreamFailure::RateLimited,
                Some(Duration::from_secs(60))
            ),
            None
        );
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        h.insert("retry-after-ms", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }

    #[test]
    fn queue_places_come_back_when_dropped_and_the_queue_is_bounded() {
        let q = std::sync::atomic::AtomicUsize::new(0);
        let a = QueuePlace::take(&q, 2).unwrap();
        let b = QueuePlace::take(&q, 2).unwrap();
        assert!(QueuePlace::take(&q, 2).is_none());
        assert_eq!(q.load(std::sync::atomic::Ordering::Relaxed), 2);
        drop(a);
        drop(b);
        assert_eq!(q.load(std::sync::atomic::Ordering::Relaxed), 0);
    }
}
