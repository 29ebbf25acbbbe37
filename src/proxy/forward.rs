//! Sending a request to the upstreams of its route, in order, until one answers: a connection
//! error, a timeout before the response head, a 429 or a 5xx moves it to the next upstream.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use super::Endpoint;
use crate::app::{App, Runtime};
use crate::config::Upstream;
use crate::error::{GatewayError, UpstreamFailure};
use crate::routing::Decision;

/// A response head from an upstream, with the permit that holds its concurrency slot.
pub struct Forwarded {
    pub upstream: usize,
    pub response: Response<Incoming>,
    pub permit: OwnedSemaphorePermit,
    /// When the first attempt was sent.
    pub first_sent: Instant,
}

/// The upstreams to try, in order.
pub fn candidates(rt: &Runtime, d: &Decision) -> Vec<usize> {
    match d.upstream {
        Some(u) if rt.policy.upstreams[u].is_enabled() => vec![u],
        Some(_) => Vec::new(),
        None => rt.policy.route(d.tier).collect(),
    }
}

pub async fn forward(
    app: &App,
    rt: &Runtime,
    decision: &Decision,
    endpoint: Endpoint,
    request_id: &str,
    body_for: impl Fn(&Upstream) -> Bytes,
) -> Result<Forwarded, GatewayError> {
    let tier_name = &rt.policy.tiers[decision.tier].name;
    let order = candidates(rt, decision);
    if order.is_empty() {
        return Err(GatewayError::NoUpstream(tier_name.clone()));
    }
    let m = &app.metrics;
    let mut first_sent = None;
    let mut last: Option<(UpstreamFailure, String)> = None;
    for (i, &u) in order.iter().enumerate() {
        let up = &rt.policy.upstreams[u];
        let run = &rt.upstreams[u];
        if let Some((why, _)) = &last {
            let from = &rt.policy.upstreams[order[i - 1]].name;
            m.fallbacks.with_label_values(&[from, &up.name, why.label()]).inc();
        }
        let is_last = i + 1 == order.len();
        // Spill-over: a saturated upstream passes the request on; the last one queues for
        // at most its first-byte timeout.
        let permit = match run.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) if !is_last => {
                m.upstream_errors.with_label_values(&[&up.name, "saturated"]).inc();
                last = Some((UpstreamFailure::Saturated, format!("{} is at its max_concurrency", up.name)));
                continue;
            }
            Err(_) => match tokio::time::timeout(up.timeouts.first_byte, run.permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => {
                    m.upstream_errors.with_label_values(&[&up.name, "saturated"]).inc();
                    last = Some((UpstreamFailure::Saturated, format!("{} is at its max_concurrency", up.name)));
                    continue;
                }
            },
        };
        let mut req = Request::post(endpoint.uri(run).clone())
            .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("x-request-id", request_id)
            .body(Full::new(body_for(up)))
            .map_err(|e| GatewayError::BodyRead(e.to_string()))?;
        if let Some((name, value)) = &run.auth {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        let sent = Instant::now();
        first_sent.get_or_insert(sent);
        let failure = match tokio::time::timeout(up.timeouts.first_byte, run.client.request(req)).await {
            Err(_) => (UpstreamFailure::Timeout, format!("{} sent no response within {:?}", up.name, up.timeouts.first_byte)),
            Ok(Err(e)) => (UpstreamFailure::Connect, format!("{}: {}", up.name, describe(&e))),
            Ok(Ok(resp)) => {
                let status = resp.status();
                if status.as_u16() == 429 {
                    (UpstreamFailure::RateLimited, format!("{} answered 429", up.name))
                } else if status.is_server_error() {
                    (UpstreamFailure::ServerError, format!("{} answered {}", up.name, status.as_u16()))
                } else {
                    return Ok(Forwarded { upstream: u, response: resp, permit, first_sent: first_sent.unwrap_or(sent) });
                }
            }
        };
        m.upstream_errors.with_label_values(&[&up.name, failure.0.label()]).inc();
        tracing::warn!(request_id, upstream = %up.name, kind = failure.0.label(), "upstream attempt failed: {}", failure.1);
        last = Some(failure);
    }
    let (kind, detail) = last.unwrap_or((UpstreamFailure::Connect, "no attempt was made".into()));
    Err(GatewayError::UpstreamFailed { tier: tier_name.clone(), detail, kind })
}

/// A connection error's chain of causes, on one line (never headers, so never a key).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
