//! Active health checks of the upstreams that ask for them (`health:` in the policy), and
//! publishing of upstream state (health, circuit) to metrics and logs.
//!
//! One task per gateway: it follows the current policy (so a reload adds or drops checks),
//! checks each upstream every `interval` with `GET {base_url}{path}`, and holds only weak
//! references to the policy and the metrics it is handed, so it ends with the gateway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::time::Instant;

use arc_swap::ArcSwap;

use super::Runtime;
use super::state::Transition;
use crate::metrics::Metrics;

/// Sets `tiergate_upstream_up` (enabled, healthy, circuit not open) and
/// `tiergate_circuit_state` from the policy and upstream state of `rt`.
pub fn publish(rt: &Runtime, metrics: &Metrics) {
    for (u, run) in rt.policy.upstreams.iter().zip(&rt.upstreams) {
        let up = u.is_enabled() && run.state.is_up();
        metrics
            .upstream_up
            .with_label_values(&[&u.name])
            .set(if up { 1.0 } else { 0.0 });
        metrics
            .circuit_state
            .with_label_values(&[&u.name])
            .set(run.state.circuit().gauge());
    }
}

/// Starts the checker when called inside a tokio runtime (else there is nothing to check).
pub fn spawn(runtime: &Arc<ArcSwap<Runtime>>, metrics: &Arc<Metrics>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (weak_rt, weak_m) = (Arc::downgrade(runtime), Arc::downgrade(metrics));
    handle.spawn(async move {
        let mut due: HashMap<String, Instant> = HashMap::new();
        loop {
            let (Some(runtime), Some(app)) = (weak_rt.upgrade(), weak_m.upgrade()) else {
                return;
            };
            let rt = runtime.load_full();
            let now = Instant::now();
            let mut wait = Duration::from_millis(500);
            for (i, up) in rt.policy.upstreams.iter().enumerate() {
                let Some(h) = &up.health else { continue };
                if !up.is_enabled() {
                    continue;
                }
                let next = due.entry(up.name.clone()).or_insert(now);
                if *next <= now {
                    *next = now + h.interval;
                    tokio::spawn(check(app.clone(), runtime.clone(), rt.clone(), i));
                }
                wait = wait.min(next.saturating_duration_since(now));
            }
            drop((app, rt, runtime));
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    });
}

async fn check(metrics: Arc<Metrics>, current: Arc<ArcSwap<Runtime>>, rt: Arc<Runtime>, u: usize) {
    let up = &rt.policy.upstreams[u];
    let run = &rt.upstreams[u];
    let Some(h) = &up.health else { return };
    let url = format!("{}{}", up.base_url, h.path);
    let Ok(mut req) = Request::get(url).body(Full::new(Bytes::new())) else {
        return;
    };
    if let Some((name, value)) = &run.auth {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    let ok = matches!(
        tokio::time::timeout(h.timeout, run.client.request(req)).await,
        Ok(Ok(resp)) if resp.status().is_success()
    );
    metrics
        .health_checks
        .with_label_values(&[up.name.as_str(), if ok { "up" } else { "down" }])
        .inc();
    if let Some(now) = run.state.health_checked(ok, h.unhealthy_after) {
        if now {
            tracing::info!(upstream = %up.name, "health check passes again: routing to it");
        } else {
            tracing::warn!(upstream = %up.name, "health check failing: routing skips it");
        }
        publish(&current.load(), &metrics);
    }
}

/// Counts and logs a circuit change, and republishes the upstream gauges of `rt`.
pub fn note(metrics: &Metrics, rt: &Runtime, upstream: &str, t: Option<Transition>) {
    let Some(t) = t else { return };
    metrics
        .circuit_transitions
        .with_label_values(&[upstream, t.from.label(), t.to.label()])
        .inc();
    tracing::warn!(
        upstream,
        from = t.from.label(),
        to = t.to.label(),
        "circuit breaker"
    );
    publish(rt, metrics);
}
