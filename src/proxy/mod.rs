//! The leaf of the request's way for OpenAI-format endpoints: read and parse the body,
//! decide the tier, forward with fallback, and hand back the response with its accounting.

pub mod anthropic;
mod deadline;
mod forward;
mod local;
pub mod record;
pub mod responses;
mod stream;
mod translated;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::app::{App, Body, HEADER_REASON, HEADER_TIER, HEADER_UPSTREAM, full};
use crate::config::{Upstream, UpstreamKind};
use crate::error::{GatewayError, Refused, UpstreamFailure};
use crate::protocol::openai::{RequestHead, rewrite_body, usage_of_body};
use crate::routing::{Conversation, decide};
use crate::ui::Note;
use crate::upstream::UpstreamRuntime;
use record::{End, Ledger, Origin, Progress};
use stream::MeteredStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
}

impl Endpoint {
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat_completions",
            Endpoint::Completions => "completions",
        }
    }

    fn uri(self, up: &UpstreamRuntime) -> &http::Uri {
        match self {
            Endpoint::Chat => &up.chat_uri,
            Endpoint::Completions => &up.completions_uri,
        }
    }
}

/// Reads the whole request body, refusing more than `max_body_bytes` and a client slower
/// than `limits.body_read_timeout`.
pub async fn read_body(
    body: Incoming,
    server: &crate::config::schema::ServerConfig,
) -> Result<Bytes, GatewayError> {
    let (limit, within) = (server.max_body_bytes, server.limits.body_read_timeout);
    let Ok(read) = tokio::time::timeout(within, Limited::new(body, limit).collect()).await else {
        return Err(GatewayError::RequestTimeout(within));
    };
    match read {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::BodyTooLarge(limit))
        }
        Err(e) => Err(GatewayError::BodyRead(e.to_string())),
    }
}

/// The conversation the classifier sees, for `auto` only.
fn conversation<'a>(
    head: &RequestHead<'a>,
    endpoint: Endpoint,
) -> Result<Conversation<'a>, GatewayError> {
    match endpoint {
        Endpoint::Chat => {
            let messages = head
                .messages
                .ok_or(GatewayError::MissingField("messages"))?;
            Conversation::from_openai(messages, head.tools).map_err(|e| {
                GatewayError::InvalidField {
                    param: "messages",
                    message: e.to_string(),
                }
            })
        }
        Endpoint::Completions => {
            let prompt = head
                .prompt
                .map(|p| serde_json::from_str::<std::borrow::Cow<'a, str>>(p.get()));
            let prompt = match prompt {
                Some(Ok(p)) => p,
                // An array of prompts or token ids: classify on its raw text.
                Some(Err(_)) => head.prompt.map_or("".into(), |p| p.get().into()),
                None => "".into(),
            };
            let fim = head.suffix.is_some_and(|s| s.get() != "null");
            Ok(Conversation::from_prompt(prompt, fim))
        }
    }
}

/// Serves one OpenAI-format request; a request that ends in the gateway's own error is
/// counted and logged by `Origin::conclude` (one that reached an upstream by its `Ledger`).
pub async fn openai(
    app: &Arc<App>,
    req: Request<Incoming>,
    endpoint: Endpoint,
    request_id: &str,
) -> Result<Response<Body>, Refused> {
    let serve = async |origin: &Origin, req, progress: &mut Progress| {
        serve(origin, req, endpoint, progress).await
    };
    Origin::run(app, req, request_id, endpoint.label(), serve).await
}

async fn serve(
    origin: &Origin,
    req: Request<Incoming>,
    endpoint: Endpoint,
    progress: &mut Progress,
) -> Result<Response<Body>, GatewayError> {
    let (app, rt, request_id) = (&origin.app, &origin.rt, origin.request_id.as_str());
    let betas = anthropic::client_betas(req.headers());
    let header_tier = header_tier(req.headers());
    let body = read_body(req.into_body(), &rt.policy.server).await?;
    let head = RequestHead::parse(&body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let model = head
        .model_name()
        .ok_or(GatewayError::MissingField("model"))?;
    match endpoint {
        Endpoint::Chat if head.messages.is_none() => {
            return Err(GatewayError::MissingField("messages"));
        }
        Endpoint::Completions if head.prompt.is_none() => {
            return Err(GatewayError::MissingField("prompt"));
        }
        _ => {}
    }
    let (target, reason) = decide::target(&rt.policy, &model, header_tier.as_deref())?;
    let decision = decide::decide(&rt.policy, target, reason, || conversation(&head, endpoint))?;
    let tier_name = progress.routed(origin, &decision);

    // Anthropic upstreams get a translated body (chat only; legacy completions skip them).
    let to_anthropic = match endpoint {
        Endpoint::Chat => anthropic::chat_translation(rt, &decision, &body)?,
        Endpoint::Completions => None,
    };
    let stream = head.is_stream();
    // Ask for usage in every stream; what the client did not ask for is stripped again.
    let force_usage = stream && !head.wants_stream_usage();
    let before_upstream = origin.started.elapsed();
    let prepare = |up: &Upstream, run: &UpstreamRuntime| match (up.kind, &to_anthropic) {
        (UpstreamKind::Anthropic, Some(req)) => {
            anthropic::chat_outgoing(req, betas.as_deref(), up, run)
        }
        _ => forward::Outgoing {
            uri: endpoint.uri(run).clone(),
            body: rewrite_body(&body, &head, &up.model, force_usage),
            headers: Vec::new(),
        },
    };
    let serves = |up: &Upstream| up.kind == UpstreamKind::Openai || to_anthropic.is_some();
    let fwd = forward::forward(app, rt, &decision, request_id, serves, &prepare).await?;
    // Real local servers: OpenAI's shape, tool calls repaired (or escalated).
    let fwd = local::settle(
        app, rt, &decision, endpoint, request_id, &body, fwd, &prepare,
    )
    .await?;
    let mut fwd = fwd;
    let head_received = Instant::now();
    let up = &rt.policy.upstreams[fwd.upstream];
    let mut ledger = Ledger {
        stream,
        overhead: before_upstream,
        prompt_bytes: record::prompt_len(&head),
        in_flight: progress.in_flight.take(),
        note: Note::of(&rt.policy, &decision, || conversation(&head, endpoint).ok()),
        ..Ledger::open(origin, &decision, &mut fwd)
    };
    // From here on the ledger records the request, whatever happens.
    progress.recorded = true;
    if up.kind == UpstreamKind::Anthropic {
        let adapter = anthropic::chat_adapter(head.wants_stream_usage());
        let resp = translated::respond(fwd, up, tier_name, ledger, adapter).await?;
        return Ok(tag(resp, tier_name, &up.name, decision.reason));
    }
    let (parts, upstream_body) = fwd.response.into_parts();

    let mut resp = Response::builder().status(parts.status);
    for (name, value) in parts.headers.iter() {
        if passes_through(name) {
            resp = resp.header(name, value);
        }
    }
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let out_body = if stream && is_sse {
        ledger.overhead += head_received.elapsed();
        full_stream(MeteredStream::new(
            upstream_body,
            ledger,
            fwd.permit,
            force_usage,
        ))
    } else {
        let left = up.timeouts.total.saturating_sub(fwd.first_sent.elapsed());
        let bytes = match tokio::time::timeout(left, upstream_body.collect()).await {
            Ok(Ok(c)) => c.to_bytes(),
            Ok(Err(e)) => {
                ledger.finish(None, 0, None, End::Broken);
                return Err(upstream_failed(
                    tier_name,
                    UpstreamFailure::Connect,
                    format!("{} broke off its response: {e}", up.name),
                ));
            }
            Err(_) => {
                ledger.finish(None, 0, None, End::Broken);
                return Err(upstream_failed(
                    tier_name,
                    UpstreamFailure::Timeout,
                    format!("{} did not finish within {:?}", up.name, up.timeouts.total),
                ));
            }
        };
        drop(fwd.permit);
        let upstream_done = Instant::now();
        let usage = if parts.status.is_success() {
            usage_of_body(&bytes)
        } else {
            None
        };
        let text = if usage.is_none() {
            record::output_text_len(&bytes)
        } else {
            0
        };
        ledger.overhead += upstream_done.elapsed();
        ledger.finish(usage, text, None, End::Complete);
        full(bytes)
    };
    let resp = resp
        .body(out_body)
        .map_err(|e| GatewayError::BodyRead(e.to_string()))?;
    Ok(tag(resp, tier_name, &up.name, decision.reason))
}

/// An error's chain of causes, on one line (never headers, so never a key).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// The tier the client names in `x-tiergate-tier`, if any.
fn header_tier(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(HEADER_TIER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Adds the headers every proxied response carries (`App::handle` adds the request id).
fn tag(
    mut resp: Response<Body>,
    tier: &str,
    upstream: &str,
    reason: &'static str,
) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(HEADER_TIER, header_value(tier));
    h.insert(HEADER_UPSTREAM, header_value(upstream));
    h.insert(HEADER_REASON, HeaderValue::from_static(reason));
    resp
}

fn full_stream(s: MeteredStream) -> Body {
    BodyExt::boxed_unsync(s)
}

fn upstream_failed(tier: &str, kind: UpstreamFailure, detail: String) -> GatewayError {
    GatewayError::UpstreamFailed {
        tier: tier.to_string(),
        detail,
        kind,
    }
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Upstream response headers the client gets: the content type and the provider's own
/// informative headers; never hop-by-hop or length headers (the body may be re-framed).
fn passes_through(name: &header::HeaderName) -> bool {
    let n = name.as_str();
    n == "content-type"
        || n == "cache-control"
        || n == "retry-after"
        || n.starts_with("x-ratelimit-")
        || n.starts_with("openai-")
        || n.starts_with("anthropic-")
}
