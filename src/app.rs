//! The application: shared state and the way a request takes, in order.
//!
//! listener (server.rs) -> `App::handle`: request id, in-flight gauge, routing by path ->
//! `proxy::*` (parse, classify, decide, forward with fallback, wrap the body) -> response with
//! the tiergate headers. Errors become OpenAI-shaped responses in one place: `error_response`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;

use crate::config::Policy;
use crate::error::{GatewayError, Refused};
use crate::metrics::Metrics;
use crate::proxy;
use crate::upstream::{self, UpstreamRuntime};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub const HEADER_TIER: &str = "x-tiergate-tier";
pub const HEADER_UPSTREAM: &str = "x-tiergate-upstream";
pub const HEADER_REQUEST_ID: &str = "x-tiergate-request-id";
pub const HEADER_REASON: &str = "x-tiergate-reason";

/// A compiled policy with the clients of its upstreams: swapped as one on reload, so a
/// request keeps the snapshot it started with.
pub struct Runtime {
    pub policy: Policy,
    pub upstreams: Vec<UpstreamRuntime>,
}

impl Runtime {
    pub fn new(policy: Policy) -> Result<Self, String> {
        let upstreams = policy
            .upstreams
            .iter()
            .map(upstream::build)
            .collect::<Result<_, _>>()?;
        Ok(Runtime { policy, upstreams })
    }

    /// Takes over the run-time state of `old`'s upstreams that keep their name.
    pub fn inherit(&mut self, old: &Runtime) {
        upstream::inherit(
            &mut self.upstreams,
            &self.policy.upstreams,
            &old.upstreams,
            &old.policy.upstreams,
        );
    }
}

pub struct App {
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Metrics,
    /// The latest routing decisions, for the live page.
    pub recent: crate::ui::Recent,
    ready: AtomicBool,
}

impl App {
    pub fn new(runtime: Runtime) -> Arc<Self> {
        let app = App {
            runtime: ArcSwap::from_pointee(runtime),
            metrics: Metrics::new(),
            recent: crate::ui::Recent::default(),
            ready: AtomicBool::new(true),
        };
        app.metrics.preset(&app.runtime.load().policy);
        app.publish_upstream_state();
        let app = Arc::new(app);
        upstream::health::spawn(&app);
        app
    }

    /// Sets `tiergate_upstream_up` (enabled, healthy, circuit not open) and
    /// `tiergate_circuit_state` from the current policy and upstream state.
    pub fn publish_upstream_state(&self) {
        let rt = self.runtime.load();
        for (u, run) in rt.policy.upstreams.iter().zip(&rt.upstreams) {
            let up = u.is_enabled() && run.state.is_up();
            self.metrics
                .upstream_up
                .with_label_values(&[&u.name])
                .set(if up { 1.0 } else { 0.0 });
            self.metrics
                .circuit_state
                .with_label_values(&[&u.name])
                .set(run.state.circuit().gauge());
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Every request enters here.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let request_id = request_id(req.headers());
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let result: Result<Response<Body>, Refused> = match (&method, path.as_str()) {
            (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
                proxy::openai(&self, req, proxy::Endpoint::Chat, &request_id).await
            }
            (&Method::POST, "/v1/completions" | "/completions") => {
                proxy::openai(&self, req, proxy::Endpoint::Completions, &request_id).await
            }
            (&Method::POST, "/v1/responses" | "/responses") => {
                proxy::responses::responses(&self, req, &request_id).await
            }
            (&Method::POST, "/v1/messages") => {
                proxy::anthropic::messages(&self, req, &request_id).await
            }
            (&Method::POST, "/v1/messages/count_tokens") => {
                proxy::anthropic::count_tokens(&self, req, &request_id)
                    .await
                    .map_err(Refused::from)
            }
            // Claude Code's preflight.
            (&Method::HEAD | &Method::GET, "/api/hello") => {
                Ok(text(StatusCode::OK, "text/plain", Bytes::new()))
            }
            (&Method::GET, "/v1/models" | "/models") => Ok(self.models()),
            (&Method::GET, "/healthz") => Ok(text(
                StatusCode::OK,
                "text/plain",
                Bytes::from_static(b"ok\n"),
            )),
            (&Method::GET, "/readyz") => Ok(self.readyz()),
            (&Method::GET, "/" | "/index.html") => Ok(crate::ui::page()),
            (&Method::GET, crate::ui::STATS_PATH) => Ok(crate::ui::stats(&self)),
            (&Method::GET, "/metrics") => Ok(text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                Bytes::from(self.metrics.render()),
            )),
            (
                _,
                "/v1/chat/completions"
                | "/v1/completions"
                | "/v1/responses"
                | "/v1/models"
                | "/healthz"
                | "/readyz"
                | "/metrics",
            ) => Err(GatewayError::MethodNotAllowed(method.to_string()).into()),
            _ => Err(GatewayError::NotFound(format!("{method} {path}")).into()),
        };
        let mut resp = match result {
            Ok(r) => r,
            Err(Refused { error: e, tier }) => {
                if e.status().is_client_error() && !matches!(e, GatewayError::NotFound(_)) {
                    tracing::debug!(request_id = %request_id, code = e.code(), "rejected: {e}");
                }
                let mut resp = if path.starts_with("/v1/messages") {
                    anthropic_error_response(&e)
                } else {
                    error_response(&e)
                };
                if let Some(v) = tier.and_then(|t| HeaderValue::from_str(&t).ok()) {
                    resp.headers_mut().insert(HEADER_TIER, v);
                }
                resp
            }
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(HEADER_REQUEST_ID, v);
        }
        resp
    }

    fn models(&self) -> Response<Body> {
        let rt = self.runtime.load();
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
        let body = serde_json::json!({ "object": "list", "data": data });
        json(StatusCode::OK, body.to_string())
    }

    fn readyz(&self) -> Response<Body> {
        let rt = self.runtime.load();
        let p = &rt.policy;
        let tiers: serde_json::Map<String, serde_json::Value> = p
            .tiers
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let names: Vec<&str> = p.route(i).map(|u| p.upstreams[u].name.as_str()).collect();
                (t.name.clone(), serde_json::json!(names))
            })
            .collect();
        let upstreams: serde_json::Map<String, serde_json::Value> = p
            .upstreams
            .iter()
            .zip(&rt.upstreams)
            .map(|(u, run)| {
                let state = match &u.disabled {
                    None => serde_json::json!({
                        "enabled": true,
                        "up": run.state.is_up(),
                        "healthy": run.state.is_healthy(),
                        "circuit": run.state.circuit().label(),
                        "latency_ms": run.state.latency().map(|d| d.as_secs_f64() * 1000.0),
                        "queued": run.state.queued.load(std::sync::atomic::Ordering::Relaxed),
                    }),
                    Some(why) => serde_json::json!({"enabled": false, "why": why}),
                };
                (u.name.clone(), state)
            })
            .collect();
        let ready = self.is_ready();
        let body = serde_json::json!({"ready": ready, "policy": p.source, "tiers": tiers, "upstreams": upstreams});
        json(
            if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            body.to_string(),
        )
    }
}

fn model_entry(id: &str, owner: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": owner})
}

/// The client's `x-request-id` when it is short and plain (so traces join), else a new one.
fn request_id(headers: &http::HeaderMap) -> String {
    if let Some(v) = headers.get("x-request-id").and_then(|v| v.to_str().ok())
        && !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return v.to_string();
    }
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn text(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    text(status, "application/json", body.into())
}

/// The same error in Anthropic's shape, for Anthropic-native clients (`/v1/messages`).
pub fn anthropic_error_response(e: &GatewayError) -> Response<Body> {
    let t = crate::translate::errors::openai_to_anthropic(e.status().as_u16(), &e.body());
    json(e.status(), t.body)
}

/// The one place where an error becomes a response.
pub fn error_response(e: &GatewayError) -> Response<Body> {
    json(e.status(), e.body())
}
