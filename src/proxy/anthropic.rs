//! The Anthropic side of the proxy: which adapter serves which upstream kind.
//!
//! - Chat completions to an `anthropic` upstream: the body is translated
//!   (`translate::chat_via_anthropic`), sent to `/v1/messages` with `anthropic-version` and
//!   the allowed `anthropic-beta` values, and the answer translated back.
//! - `POST /v1/messages`: passed to an `anthropic` upstream as is (only `model` rewritten;
//!   the client's `anthropic-version` and `anthropic-beta` go along), translated for
//!   `openai` upstreams (`translate::messages_via_openai`) and back.
//! - `POST /v1/messages/count_tokens`: passed to the Anthropic upstream when the route's
//!   first upstream is one; otherwise (or when it fails) `translate::count_tokens`'s estimate.
//!
//! A request that cannot be translated for one kind of upstream skips the upstreams of that
//! kind when its route has another kind to offer, and is refused (400) when it has not.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::forward::{self, Outgoing};
use super::record::{Ledger, Origin, Progress};
use super::translated::{self, Adapter};
use super::{header_tier, read_body, tag};
use crate::app::{App, Body, Runtime, json};
use crate::config::{Upstream, UpstreamKind};
use crate::error::{GatewayError, Refused};
use crate::protocol::anthropic::{API_VERSION, MessagesRequest, MessagesResponse};
use crate::protocol::openai::{RequestHead, rewrite_body};
use crate::protocol::openai_chat::{ChatCompletion, ChatRequest};
use crate::routing::{Conversation, Decision, decide};
use crate::translate::anthropic_passthrough::AnthropicPassthrough;
use crate::translate::chat_via_anthropic::{
    self, request::allowed_betas, stream::ChatFromAnthropic,
};
use crate::translate::errors::{self};
use crate::translate::messages_via_openai::{self, stream::MessagesFromOpenAi};
use crate::translate::{StreamTranslator, count_tokens};
use crate::ui::Note;

const VERSION: HeaderName = HeaderName::from_static("anthropic-version");
const BETA: HeaderName = HeaderName::from_static("anthropic-beta");

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn kind_in_route(rt: &Runtime, d: &Decision, kind: UpstreamKind) -> bool {
    forward::candidates(rt, d)
        .iter()
        .any(|&u| rt.policy.upstreams[u].kind == kind)
}

/// The body with its `model` set (bodies translated here are written with an empty one).
fn with_model(body: &Bytes, model: &str) -> Bytes {
    match RequestHead::parse(body) {
        Ok(head) => rewrite_body(body, &head, model, false),
        Err(_) => body.clone(),
    }
}

fn header(name: HeaderName, value: &str) -> Option<(HeaderName, HeaderValue)> {
    HeaderValue::from_str(value).ok().map(|v| (name, v))
}

// ---- chat completions served by Anthropic ----

/// The client's `anthropic-beta` values that chat clients may pass on.
pub fn client_betas(headers: &HeaderMap) -> Option<String> {
    allowed_betas(headers.get_all(BETA).iter().filter_map(|v| v.to_str().ok()))
}

/// The Messages request for a chat request, when its route holds an Anthropic upstream.
/// `Ok(None)`: nothing to translate, or untranslatable but another kind of upstream can
/// serve it.
pub fn chat_translation(
    rt: &Runtime,
    d: &Decision,
    body: &[u8],
) -> Result<Option<MessagesRequest>, GatewayError> {
    if !kind_in_route(rt, d, UpstreamKind::Anthropic) {
        return Ok(None);
    }
    let req: ChatRequest =
        serde_json::from_slice(body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    match chat_via_anthropic::request::translate(req) {
        Ok(r) => Ok(Some(r)),
        Err(_) if kind_in_route(rt, d, UpstreamKind::Openai) => Ok(None),
        Err(refused) => Err(refused.into()),
    }
}

/// One attempt at an Anthropic upstream for a translated chat request.
pub fn chat_outgoing(
    req: &MessagesRequest,
    betas: Option<&str>,
    up: &Upstream,
    run: &crate::upstream::UpstreamRuntime,
) -> Outgoing {
    let mut req = req.clone();
    req.model = up.model.clone();
    req.max_tokens.get_or_insert(up.default_max_tokens);
    let mut headers = vec![(VERSION, HeaderValue::from_static(API_VERSION))];
    headers.extend(betas.and_then(|b| header(BETA, b)));
    Outgoing {
        uri: run.messages_uri.clone(),
        body: Bytes::from(serde_json::to_vec(&req).unwrap_or_default()),
        headers,
    }
}

pub fn chat_adapter(include_usage: bool) -> Adapter {
    Adapter {
        stream: Some(Box::new(ChatFromAnthropic::new(now_secs(), include_usage))),
        whole: Box::new(|b| {
            let resp: MessagesResponse = serde_json::from_slice(b).map_err(|e| e.to_string())?;
            let usage = resp.usage.to_openai();
            let out = chat_via_anthropic::response::translate(resp, now_secs());
            Ok((
                serde_json::to_vec(&out).map_err(|e| e.to_string())?,
                Some(usage),
            ))
        }),
        error: errors::anthropic_to_openai,
    }
}

// ---- /v1/messages ----

/// The fields of a Messages request that routing reads, borrowed.
#[derive(Deserialize)]
struct MessagesHead<'a> {
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
}

/// What `/v1/messages` and `count_tokens` share: the parsed request and its decision.
struct Parsed {
    passthrough_headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    decision: Decision,
    stream: bool,
}

async fn parse(rt: &Runtime, req: Request<Incoming>) -> Result<Parsed, GatewayError> {
    let headers = req.headers();
    let header_tier = header_tier(headers);
    // Passed through to Anthropic as the client sent them.
    let version = headers
        .get(VERSION)
        .cloned()
        .unwrap_or(HeaderValue::from_static(API_VERSION));
    let mut passthrough_headers = vec![(VERSION, version)];
    passthrough_headers.extend(headers.get(BETA).map(|v| (BETA, v.clone())));
    let body = read_body(req.into_body(), &rt.policy.server).await?;
    let head = RequestHead::parse(&body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let extra: MessagesHead<'_> =
        serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let model = head
        .model_name()
        .ok_or(GatewayError::MissingField("model"))?;
    let messages = head
        .messages
        .ok_or(GatewayError::MissingField("messages"))?;
    let (target, reason) = decide::target(&rt.policy, &model, header_tier.as_deref())?;
    let decision = decide::decide(&rt.policy, target, reason, || {
        Conversation::from_anthropic(extra.system, messages, head.tools).map_err(|e| {
            GatewayError::InvalidField {
                param: "messages",
                message: e.to_string(),
            }
        })
    })?;
    let stream = head.is_stream();
    Ok(Parsed {
        passthrough_headers,
        body,
        decision,
        stream,
    })
}

/// Serves `POST /v1/messages`; an error before an upstream answered is recorded by
/// `Origin::conclude`.
pub async fn messages(
    app: &Arc<App>,
    req: Request<Incoming>,
    request_id: &str,
) -> Result<Response<Body>, Refused> {
    Origin::run(app, req, request_id, "messages", serve_messages).await
}

async fn serve_messages(
    origin: &Origin,
    req: Request<Incoming>,
    progress: &mut Progress,
) -> Result<Response<Body>, GatewayError> {
    let (app, rt, request_id) = (&origin.app, &origin.rt, origin.request_id.as_str());
    let Parsed {
        passthrough_headers,
        body,
        decision,
        stream,
    } = parse(rt, req).await?;
    let tier_name = progress.routed(origin, &decision);

    // The chat translation, only when an OpenAI-compatible upstream may be tried.
    let chat: Option<Bytes> = if kind_in_route(rt, &decision, UpstreamKind::Openai) {
        let req: MessagesRequest =
            serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
        match messages_via_openai::request::translate(req) {
            Ok(chat) => Some(Bytes::from(
                serde_json::to_vec(&chat).map_err(|e| GatewayError::BodyRead(e.to_string()))?,
            )),
            Err(_) if kind_in_route(rt, &decision, UpstreamKind::Anthropic) => None,
            Err(refused) => return Err(refused.into()),
        }
    } else {
        None
    };
    let head = RequestHead::parse(&body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let before_upstream = origin.started.elapsed();
    let fwd = forward::forward(
        app,
        rt,
        &decision,
        request_id,
        |up| up.kind == UpstreamKind::Anthropic || chat.is_some(),
        |up, run| match (up.kind, &chat) {
            (UpstreamKind::Openai, Some(chat)) => Outgoing {
                uri: run.chat_uri.clone(),
                body: with_model(chat, &up.model),
                headers: Vec::new(),
            },
            _ => Outgoing {
                uri: run.messages_uri.clone(),
                body: rewrite_body(&body, &head, &up.model, false),
                headers: passthrough_headers.clone(),
            },
        },
    )
    .await?;
    let up = &rt.policy.upstreams[fwd.upstream];
    let mut fwd = fwd;
    let ledger = Ledger {
        stream,
        overhead: before_upstream,
        prompt_bytes: body.len(),
        in_flight: progress.in_flight.take(),
        note: Note::of(&rt.policy, &decision, || {
            let extra: MessagesHead<'_> = serde_json::from_slice(&body).ok()?;
            Conversation::from_anthropic(extra.system, head.messages?, head.tools).ok()
        }),
        ..Ledger::open(origin, &decision, &mut fwd)
    };
    progress.recorded = true;
    let adapter = match up.kind {
        UpstreamKind::Anthropic => passthrough_adapter(),
        UpstreamKind::Openai => via_openai_adapter(),
    };
    let resp = translated::respond(fwd, up, tier_name, ledger, adapter).await?;
    Ok(tag(resp, tier_name, &up.name, decision.reason))
}

fn passthrough_adapter() -> Adapter {
    Adapter {
        stream: Some(Box::new(AnthropicPassthrough::new()) as Box<dyn StreamTranslator>),
        whole: Box::new(|b| {
            let usage = serde_json::from_slice::<MessagesResponse>(b)
                .ok()
                .map(|r| r.usage.to_openai());
            Ok((b.to_vec(), usage))
        }),
        error: errors::unchanged,
    }
}

fn via_openai_adapter() -> Adapter {
    Adapter {
        stream: Some(Box::new(MessagesFromOpenAi::new())),
        whole: Box::new(|b| {
            let resp: ChatCompletion = serde_json::from_slice(b).map_err(|e| e.to_string())?;
            let usage = resp.usage.map(|u| crate::protocol::openai::Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                prompt_tokens_details: Some(crate::protocol::openai::PromptDetails {
                    cached_tokens: Some(u.cached()),
                }),
            });
            let out = messages_via_openai::response::translate(resp);
            Ok((serde_json::to_vec(&out).map_err(|e| e.to_string())?, usage))
        }),
        error: errors::openai_to_anthropic,
    }
}

// ---- /v1/messages/count_tokens ----

pub async fn count_tokens(
    app: &Arc<App>,
    req: Request<Incoming>,
    request_id: &str,
) -> Result<Response<Body>, GatewayError> {
    let rt = app.runtime.load_full();
    let Parsed {
        passthrough_headers,
        body,
        decision,
        ..
    } = parse(&rt, req).await?;
    let first_is_anthropic = forward::candidates(&rt, &decision)
        .first()
        .is_some_and(|&u| rt.policy.upstreams[u].kind == UpstreamKind::Anthropic);
    if first_is_anthropic {
        let head =
            RequestHead::parse(&body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
        let fwd = forward::forward(
            app,
            &rt,
            &decision,
            request_id,
            |up| up.kind == UpstreamKind::Anthropic,
            |up, run| Outgoing {
                uri: run.count_tokens_uri.clone(),
                body: rewrite_body(&body, &head, &up.model, false),
                headers: passthrough_headers.clone(),
            },
        )
        .await;
        if let Ok(fwd) = fwd {
            let up = &rt.policy.upstreams[fwd.upstream];
            let status = fwd.response.status();
            if let Ok(Ok(c)) =
                tokio::time::timeout(up.timeouts.total, fwd.response.into_body().collect()).await
            {
                let resp = json(status, c.to_bytes());
                let tier = rt.policy.tiers[decision.tier].name.as_str();
                return Ok(tag(resp, tier, &up.name, decision.reason));
            }
        }
        tracing::debug!(
            request_id,
            "count_tokens: the Anthropic upstream did not answer; estimating"
        );
    }
    let req: MessagesRequest =
        serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let n = count_tokens::estimate(&req);
    let mut resp = json(
        StatusCode::OK,
        serde_json::json!({ "input_tokens": n }).to_string(),
    );
    resp.headers_mut()
        .insert("x-tiergate-estimate", HeaderValue::from_static("true"));
    let tier = rt.policy.tiers[decision.tier].name.as_str();
    Ok(tag(resp, tier, "estimate", decision.reason))
}
