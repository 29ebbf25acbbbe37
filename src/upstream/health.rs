//! Active health checks of the upstreams that ask for them (`health:` in the policy), and
//! publishing of upstream state (health, circuit) to metrics and logs.
//!
//! One task per gateway: it follows the current policy (so a reload adds or drops checks),
//! checks each upstream every `interval` with `GET {base_url}{path}`, and holds only a weak
//! reference to the app, so it ends with it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::time::Instant;

use super::state::Transition;
use crate::app::{App, Runtime};

/// Starts the checker when called inside a tokio runtime (else there is nothing to check).
pub fn spawn(app: &Arc<App>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = Arc::downgrade(app);
    handle.spawn(async move {
        let mut due: HashMap<String, Instant> = HashMap::new();
        loop {
            let Some(app) = weak.upgrade() else { return };
            let rt = app.runtime.load_full();
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
                    tokio::spawn(check(app.clone(), rt.clone(), i));
                }
                wait = wait.min(next.saturating_duration_since(now));
            }
            drop((app, rt));
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    });
}

async fn check(app: Arc<App>, rt: Arc<Runtime>, u: usize) {
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
    app.metrics
        .health_checks
        .with_label_values(&[up.name.as_str(), if ok { "up" } else { "down" }])
        .inc();
    if let Some(now) = run.state.health_checked(ok, h.unhealthy_after) {
        if now {
            tracing::info!(upstream = %up.name, "health check passes again: routing to it");
        } else {
            tracing::warn!(upstream = %up.name, "health check failing: routing skips it");
        }
        app.publish_upstream_state();
    }
}

/// Counts and logs a circuit change, and republishes the upstream gauges.
pub fn note(app: &App, upstream: &str, t: Option<Transition>) {
    let Some(t) = t else { return };
    app.metrics
        .circuit_transitions
        .with_label_values(&[upstream, t.from.label(), t.to.label()])
        .inc();
    tracing::warn!(
        upstream,
        from = t.from.label(),
        to = t.to.label(),
        "circuit breaker"
    );
    app.publish_upstream_state();
}
