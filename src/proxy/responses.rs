//! `POST /v1/responses`, the OpenAI Responses API (Codex CLI speaks nothing else): classified
//! like every request (`Conversation::from_responses`), then, per upstream of the route:
//! - an `openai` upstream with `responses_api` (api.openai.com by default): the body as sent,
//!   only `model` rewritten; the stream passes through and its usage is read;
//! - any other `openai` upstream (local servers): translated to chat completions
//!   (`translate::responses`) and the answer back to Responses events;
//! - an `anthropic` upstream: chained, Responses -> chat -> Messages, and back.
//!
//! A request that cannot be translated skips the upstreams that would need the translation
//! when its route has a passthrough upstream, and is refused (400) when it has not. Answers
//! of `repair: true` upstreams are repaired as chat answers (`proxy::local`) before they are
//! translated.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::forward::{self, Outgoing};
use super::record::{Ledger, Origin, Progress};
use super::translated::{self, Adapter};
use super::{Endpoint, anthropic, header_tier, local, read_body, tag};
use crate::app::{App, Body, Runtime};
use crate::config::{Upstream, UpstreamKind};
use crate::error::{GatewayError, Refused};
use crate::protocol::anthropic::{MessagesRequest, MessagesResponse};
use crate::protocol::openai::{RequestHead, rewrite_body};
use crate::protocol::openai_chat::ChatCompletion;
use crate::routing::{Conversation, Decision, decide};
use crate::translate::chat_via_anthropic::{self, stream::ChatFromAnthropic};
use crate::translate::errors::{self};
use crate::translate::responses::chain::Chain;
use crate::translate::responses::passthrough::{ResponsesPassthrough, usage_of_response};
use crate::translate::responses::request::{self, ResponsesRequest};
use crate::translate::responses::response::{self, Envelope};
use crate::translate::responses::stream::ResponsesFromChat;
use crate::ui::Note;
use crate::upstream::UpstreamRuntime;

const ENDPOINT: &str = "responses";

/// The fields of a Responses request that routing reads, borrowed.
#[derive(Deserialize)]
struct ResponsesHead<'a> {
    #[serde(borrow, default)]
    instructions: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How an upstream is served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    Passthrough,
    Chat,
    Anthropic,
}

fn way(up: &Upstream) -> Way {
    match up.kind {
        UpstreamKind::Openai if up.responses_api => Way::Passthrough,
        UpstreamKind::Openai => Way::Chat,
        UpstreamKind::Anthropic => Way::Anthropic,
    }
}

fn in_route(rt: &Runtime, d: &Decision, w: Way) -> bool {
    forward::candidates(rt, d)
        .iter()
        .any(|&u| way(&rt.policy.upstreams[u]) == w)
}

/// Serves one Responses request; an error before an upstream answered is recorded by
/// `Origin::conclude`.
pub async fn responses(
    app: &Arc<App>,
    req: Request<Incoming>,
    request_id: &str,
) -> Result<Response<Body>, Refused> {
    Origin::run(app, req, request_id, ENDPOINT, serve).await
}

/// The translations a route needs: the chat body (with the flattened namespaces) and the
/// Messages request.
struct Translations {
    chat: Option<(Bytes, Vec<String>)>,
    anthropic: Option<(MessagesRequest, Vec<String>)>,
}

fn translations(rt: &Runtime, d: &Decision, body: &[u8]) -> Result<Translations, GatewayError> {
    let passthrough = in_route(rt, d, Way::Passthrough);
    let wants_chat = in_route(rt, d, Way::Chat);
    let wants_anthropic = in_route(rt, d, Way::Anthropic);
    let mut out = Translations {
        chat: None,
        anthropic: None,
    };
    if !wants_chat && !wants_anthropic {
        return Ok(out);
    }
    let req: ResponsesRequest =
        serde_json::from_slice(body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let t = match request::translate(req) {
        Ok(t) => t,
        Err(_) if passthrough => return Ok(out),
        Err(refused) => return Err(refused.into()),
    };
    if wants_anthropic {
        match chat_via_anthropic::request::translate(t.chat.clone()) {
            Ok(m) => out.anthropic = Some((m, t.namespaces.clone())),
            Err(_) if passthrough || wants_chat => {}
            Err(refused) => return Err(refused.into()),
        }
    }
    if wants_chat {
        let bytes =
            serde_json::to_vec(&t.chat).map_err(|e| GatewayError::BodyRead(e.to_string()))?;
        out.chat = Some((Bytes::from(bytes), t.namespaces));
    }
    Ok(out)
}

async fn serve(
    origin: &Origin,
    req: Request<Incoming>,
    progress: &mut Progress,
) -> Result<Response<Body>, GatewayError> {
    let (app, rt, request_id) = (&origin.app, &origin.rt, origin.request_id.as_str());
    let header_tier = header_tier(req.headers());
    let body = read_body(req.into_body(), &rt.policy.server).await?;
    let head = RequestHead::parse(&body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let extra: ResponsesHead<'_> =
        serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let model = head
        .model_name()
        .ok_or(GatewayError::MissingField("model"))?;
    let input = extra.input.ok_or(GatewayError::MissingField("input"))?;
    let (target, reason) = decide::target(&rt.policy, &model, header_tier.as_deref())?;
    let decision = decide::decide(&rt.policy, target, reason, || {
        Conversation::from_responses(extra.instructions, input, extra.tools).map_err(|e| {
            GatewayError::InvalidField {
                param: "input",
                message: e.to_string(),
            }
        })
    })?;
    let tier_name = progress.routed(origin, &decision);

    let t = translations(rt, &decision, &body)?;
    let stream = head.is_stream();
    let before_upstream = origin.started.elapsed();
    let prepare = |up: &Upstream, run: &UpstreamRuntime| match (way(up), &t.chat, &t.anthropic) {
        (Way::Chat, Some((chat, _)), _) => Outgoing {
            uri: run.chat_uri.clone(),
            body: with_model(chat, &up.model),
            headers: Vec::new(),
        },
        (Way::Anthropic, _, Some((m, _))) => anthropic::chat_outgoing(m, None, up, run),
        _ => Outgoing {
            uri: run.responses_uri.clone(),
            body: rewrite_body(&body, &head, &up.model, false),
            headers: Vec::new(),
        },
    };
    let serves = |up: &Upstream| match way(up) {
        Way::Passthrough => true,
        Way::Chat => t.chat.is_some(),
        Way::Anthropic => t.anthropic.is_some(),
    };
    let fwd = forward::forward(app, rt, &decision, request_id, serves, &prepare).await?;
    // A local server's chat answer is repaired before it becomes Responses events, so a
    // tool call it wrote as text reaches Codex as a function call.
    let fwd = match (way(&rt.policy.upstreams[fwd.upstream]), &t.chat) {
        (Way::Chat, Some((chat, _))) => {
            local::settle(
                app,
                rt,
                &decision,
                Endpoint::Chat,
                request_id,
                chat,
                fwd,
                &prepare,
            )
            .await?
        }
        _ => fwd,
    };
    let mut fwd = fwd;
    let up = &rt.policy.upstreams[fwd.upstream];
    let ledger = Ledger {
        stream,
        overhead: before_upstream,
        prompt_bytes: body.len(),
        in_flight: progress.in_flight.take(),
        note: Note::of(&rt.policy, &decision, || {
            Conversation::from_responses(extra.instructions, input, extra.tools).ok()
        }),
        ..Ledger::open(origin, &decision, &mut fwd)
    };
    progress.recorded = true;
    let namespaces = match way(up) {
        Way::Chat => t.chat.map(|c| c.1),
        Way::Anthropic => t.anthropic.map(|a| a.1),
        Way::Passthrough => None,
    };
    let env = Envelope::new(
        fastrand::u64(..),
        now_secs(),
        &up.model,
        namespaces.unwrap_or_default(),
    );
    let adapter = match way(up) {
        Way::Passthrough => passthrough_adapter(),
        Way::Chat => chat_adapter(env),
        Way::Anthropic => anthropic_adapter(env),
    };
    let resp = translated::respond(fwd, up, tier_name, ledger, adapter).await?;
    Ok(tag(resp, tier_name, &up.name, decision.reason))
}

/// A translated body (written with the client's model) with the upstream's model.
fn with_model(body: &Bytes, model: &str) -> Bytes {
    match RequestHead::parse(body) {
        Ok(head) => rewrite_body(body, &head, model, false),
        Err(_) => body.clone(),
    }
}

fn passthrough_adapter() -> Adapter {
    Adapter {
        stream: Some(Box::new(ResponsesPassthrough::new())),
        whole: Box::new(|b| Ok((b.to_vec(), usage_of_response(b)))),
        error: errors::unchanged,
    }
}

fn chat_adapter(env: Envelope) -> Adapter {
    Adapter {
        stream: Some(Box::new(ResponsesFromChat::new(env.clone()))),
        whole: Box::new(move |b| {
            let resp: ChatCompletion = serde_json::from_slice(b).map_err(|e| e.to_string())?;
            let (out, usage) = response::translate(resp, &env);
            Ok((serde_json::to_vec(&out).map_err(|e| e.to_string())?, usage))
        }),
        error: errors::unchanged,
    }
}

fn anthropic_adapter(env: Envelope) -> Adapter {
    Adapter {
        stream: Some(Box::new(Chain::new(
            Box::new(ChatFromAnthropic::new(env.created_at, true)),
            Box::new(ResponsesFromChat::new(env.clone())),
        ))),
        whole: Box::new(move |b| {
            let resp: MessagesResponse = serde_json::from_slice(b).map_err(|e| e.to_string())?;
            let usage = resp.usage.to_openai();
            let chat = chat_via_anthropic::response::translate(resp, env.created_at);
            let (out, _) = response::translate(chat, &env);
            Ok((
                serde_json::to_vec(&out).map_err(|e| e.to_string())?,
                Some(usage),
            ))
        }),
        error: errors::anthropic_to_openai,
    }
}
