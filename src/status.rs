//! What the gateway says about itself: `/v1/models`, `/healthz`, `/readyz`, `/metrics`, the
//! live page and its stats, and Claude Code's preflight.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::http::{Body, json, text};
use crate::upstream::Runtime;

/// The gateway's own pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Models,
    Health,
    Ready,
    Metrics,
    Live,
    Stats,
    /// Claude Code's preflight.
    Hello,
}

pub fn serve(app: &App, page: Page) -> Response<Body> {
    let rt = app.runtime.load();
    match page {
        Page::Models => models(&rt),
        Page::Ready => readyz(&rt, app.is_ready()),
        Page::Health => text(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        Page::Metrics => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(app.metrics.render()),
        ),
        Page::Live => crate::ui::page(),
        Page::Stats => crate::ui::stats(&rt, &app.metrics, &app.recent),
        Page::Hello => text(StatusCode::OK, "text/plain", Bytes::new()),
    }
}

fn model_entry(id: &str, owner: &str) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": owner})
}

fn models(rt: &Runtime) -> Response<Body> {
    let p = &rt.policy;
    let mut data = vec![model_entry("auto", "tiergate")];
    data.extend(
        p.tiers
            .iter()
            .map(|t| model_entry(&t.name, "tiergate-tier")),
    );
    data.extend(
        p.upstreams
            .iter()
            .filter(|u| u.is_enabled())
            .map(|u| model_entry(&u.name, "tiergate-upstream")),
    );
    json(
        StatusCode::OK,
        json!({ "object": "list", "data": data }).to_string(),
    )
}

fn readyz(rt: &Runtime, ready: bool) -> Response<Body> {
    let p = &rt.policy;
    let tiers: serde_json::Map<String, serde_json::Value> = p
        .tiers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let names: Vec<&str> = p.route(i).map(|u| p.upstreams[u].name.as_str()).collect();
            (t.name.clone(), json!(names))
        })
        .collect();
    let upstreams: serde_json::Map<String, serde_json::Value> = p
        .upstreams
        .iter()
        .zip(&rt.upstreams)
        .map(|(u, run)| {
            let state = match &u.disabled {
                None => json!({
                    "enabled": true,
                    "up": run.state.is_up(),
                    "healthy": run.state.is_healthy(),
                    "circuit": run.state.circuit().label(),
                    "latency_ms": run.state.latency().map(|d| d.as_secs_f64() * 1000.0),
                    "queued": run.state.queued.load(std::sync::atomic::Ordering::Relaxed),
                }),
                Some(why) => json!({"enabled": false, "why": why}),
            };
            (u.name.clone(), state)
        })
        .collect();
    let body = json!({"ready": ready, "policy": p.source, "tiers": tiers, "upstreams": upstreams});
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, body.to_string())
}
