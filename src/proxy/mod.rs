//! The one lifecycle every model request goes through, whatever its wire format (chat,
//! completions, Messages, count_tokens, Responses), in this order:
//!
//! 1. **snapshot**: `Origin` takes the policy the whole request will use, its id, the client.
//! 2. **read and parse** in the client's format (`parse`): body limits, the fields routing
//!    needs, the conversation the classifier reads.
//! 3. **decide** the tier (`routing::decide`): header, model name, or the classifier; an
//!    uncertain score may ask an upstream for a second opinion (`second_opinion`).
//! 4. **plan** the upstreams (`plan`): the route's upstreams in order, how each serves the
//!    format (`provider::Way`), the translations they need, made once.
//! 5. **forward** (`forward`): breaker and health skip, spill-over, retries, fallback; then
//!    `local` repairs a local server's chat-shaped answer, or escalates it.
//! 6. **meter**: the `Ledger` opens; from here the request is recorded whatever happens.
//! 7. **render** (`respond`): the provider's adapter turns the answer into the client's
//!    format, whole or streamed chunk by chunk (`stream`, `translated`); chat-shaped answers
//!    are checked off the path once complete (`quality`), a whole one that fails the tier's
//!    `escalate_on` having been asked again of the next upstream first (a stream too, when
//!    the tier holds streams back: `holdback`).
//! 8. **shadow** (`shadow`): a sampled share is also asked of the frontier after the
//!    client's answer is out, compared, and judged.
//!
//! An error at any step becomes a response in the client's format in one place
//! (`GatewayError::response`), counted by `Origin::conclude` when no ledger recorded it.

mod deadline;
mod forward;
mod guard;
pub mod holdback;
mod local;
mod parse;
mod plan;
pub mod quality;
pub mod record;
mod respond;
mod second_opinion;
mod shadow;
mod stream;
mod translated;

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::App;
use crate::config::Upstream;
use crate::error::GatewayError;
use crate::http::{Body, json, tag};
use crate::protocol::Format;
use crate::protocol::anthropic::MessagesRequest;
use crate::provider::{self, ClientRequest, Outgoing, Reply, Way};
use crate::routing::{Decision, decide};
use crate::translate::count_tokens;
use crate::translate::responses::response::Envelope;
use crate::ui::Note;
use crate::upstream::UpstreamRuntime;
use parse::{ClientHeaders, Parsed, read_body};
use plan::Plan;
use record::{Ledger, Origin, Progress};

/// Serves one model request in `format`; never fails: an error is a response too.
pub async fn serve(
    app: &Arc<App>,
    req: Request<Incoming>,
    format: Format,
    request_id: &str,
) -> Response<Body> {
    let origin = Origin::new(app, req.headers(), request_id, format);
    let mut progress = Progress::new(app);
    let result = lifecycle(&origin, req, &mut progress).await;
    match origin.conclude(result, &progress) {
        Ok(resp) => resp,
        Err(reply) => {
            if reply.error.status().is_client_error() {
                tracing::debug!(
                    request_id,
                    code = reply.error.code(),
                    "rejected: {}",
                    reply.error
                );
            }
            reply.response(format)
        }
    }
}

async fn lifecycle(
    origin: &Origin,
    req: Request<Incoming>,
    progress: &mut Progress,
) -> Result<Response<Body>, GatewayError> {
    let (app, rt, format) = (&origin.app, &origin.rt, origin.format);
    let request_id = origin.request_id.as_str();

    // 1. Client key and its rates (`guard`).
    let caller = guard::admit(origin, req.headers()).await?;
    progress.caller = caller.clone();

    // 2. Read and parse; a secret pins the request to local upstreams (or refuses it).
    let client = ClientHeaders::of(format, req.headers());
    let body = read_body(req.into_body(), &rt.policy.server).await?;
    let pin = guard::scan(origin, &caller, &body)?;
    let parsed = Parsed::parse(format, &body)?;

    // 3. Decide, within what the key may use and where the data may go.
    let (target, reason) = decide::target(&rt.policy, &parsed.model, client.tier.as_deref())?;
    // Read once: the classifier, the answer checks and feedback share it.
    let conversation = parsed.conversation();
    let mut decision = decide::decide(&rt.policy, target, reason, || match &conversation {
        Ok(c) => Ok(c),
        Err(e) => Err(e.again()),
    })?;
    app.metrics
        .classifier
        .observe(&rt.policy.tiers[decision.tier].name, &decision);
    // The first opinion is counted above; inside the band a second one may change the tier.
    if format != Format::CountTokens {
        let conv = conversation.as_ref().ok();
        second_opinion::consult(origin, &caller, pin.as_ref(), conv, &mut decision).await;
    }
    guard::restrict(origin, &caller, pin.as_ref(), &mut decision)?;

    // 4. Plan, and reserve the budget (an exhausted one may downgrade the plan).
    let mut plan = Plan::new(rt, &decision, format, &body)?;
    guard::filter(origin, &caller, pin.as_ref(), &decision, &mut plan)?;
    let reservation =
        match guard::reserve(origin, &caller, &plan.sent(), parsed.prompt_bytes()).await? {
            guard::Budget::Go(r) => r,
            guard::Budget::Downgrade => {
                guard::downgrade(origin, &mut decision);
                plan = Plan::new(rt, &decision, format, &body)?;
                guard::filter(origin, &caller, pin.as_ref(), &decision, &mut plan)?;
                guard::free_only(origin, &mut plan)?;
                None
            }
        };
    let settle = guard::Settle {
        caller,
        reservation,
    };
    let tier_name = progress.routed(origin, &decision);
    let mut sent = plan.sent();
    quality::probe_floor(app, rt, decision.tier, &mut sent);
    if rt.policy.tiers[decision.tier]
        .quality
        .quality_gate
        .is_some()
    {
        let task = quality::task_of(conversation.as_ref().ok());
        shadow::gate(app, rt, decision.tier, origin.client, &task, &mut sent);
    }
    if format == Format::CountTokens && sent.is_empty() {
        return estimate_tokens(origin, progress, &decision, &body);
    }
    let stream = parsed.stream();
    let request = ClientRequest {
        format,
        body: &body,
        head: &parsed.head,
        // Ask for usage in every chat stream; what the client did not ask for is stripped.
        force_usage: stream && !parsed.head.wants_stream_usage(),
        anthropic_headers: &client.anthropic,
        betas: client.betas.as_deref(),
    };
    let prepare = |up: &Upstream, run: &UpstreamRuntime| outgoing(up, run, &request, &plan);

    // 5. Forward.
    let before_upstream = origin.started.elapsed();
    let fwd = match forward::forward_to(app, rt, decision.tier, &sent, request_id, &prepare).await {
        Ok(fwd) => fwd,
        Err(e) if format == Format::CountTokens => {
            tracing::debug!(
                request_id,
                "count_tokens: no upstream counted ({e}); estimating"
            );
            settle.finish(app, rt, 0, 0.0, 0);
            return estimate_tokens(origin, progress, &decision, &body);
        }
        Err(e) => {
            // Nothing was spent: the reservation goes back.
            settle.finish(app, rt, 0, 0.0, 0);
            return Err(match &pin {
                Some(pin) => pin.unanswered(&e),
                None => e,
            });
        }
    };
    let way = provider::way(format, &rt.policy.upstreams[fwd.upstream]);
    let chat_request = match (way, format) {
        (Way::Native, Format::Chat) => Some(&body),
        (Way::ViaChat, _) => plan.translations.chat.as_ref(),
        _ => None,
    };
    let chat_shaped = way == Way::ViaChat
        || (way == Way::Native && matches!(format, Format::Chat | Format::Completions));
    let fwd = if chat_shaped {
        let route = local::Route {
            tier: decision.tier,
            order: &sent,
            request_id,
        };
        match local::settle(app, rt, route, chat_request, fwd, &prepare).await {
            Ok(fwd) => fwd,
            Err(e) => {
                settle.finish(app, rt, 0, 0.0, 0);
                return Err(match &pin {
                    Some(pin) => pin.unanswered(&e),
                    None => e,
                });
            }
        }
    } else {
        fwd
    };
    // 5b. Escalate a whole answer that fails the tier's `escalate_on` checks.
    let checked = quality::to_check(app, rt, decision.tier, format, way);
    let asked = Arc::new(quality::Asked::of(
        conversation.as_ref().ok(),
        chat_request,
        checked,
    ));
    // A streamed one only in the tier's opt-in hold-back, before its first byte goes out.
    let route = quality::Route {
        tier: decision.tier,
        order: &sent,
        request_id,
    };
    let (mut fwd, escalated) = match (chat_shaped, stream) {
        (true, false) => quality::escalate(app, rt, route, &asked, fwd, &prepare).await?,
        (true, true) => holdback::escalate(app, rt, route, &asked, fwd, &prepare).await?,
        (false, _) => (fwd, None),
    };
    let answered = fwd.upstream;

    // 6. Meter.
    let up = &rt.policy.upstreams[fwd.upstream];
    let way = provider::way(format, up);
    let reply = Reply {
        format,
        wants_usage: parsed.head.wants_stream_usage(),
        forced_usage: request.force_usage,
        envelope: (format == Format::Responses).then(|| {
            Envelope::new(
                fastrand::u64(..),
                provider::now_secs(),
                &up.model,
                plan.translations.namespaces.clone(),
            )
        }),
    };
    let adapter = provider::adapter(up, way, reply);
    let ledger = Ledger {
        stream,
        overhead: before_upstream,
        prompt_bytes: parsed.prompt_bytes(),
        in_flight: progress.in_flight.take(),
        bills: adapter.bills,
        note: Note::of(&rt.policy, &decision, || conversation.as_ref().ok()),
        settle: Some(settle),
        checks: (checked && quality::checked(format, way)).then(|| asked.clone()),
        ..Ledger::open(origin, &decision, &mut fwd)
    };
    progress.recorded = true;

    // 7. Render.
    let answered_in = match way {
        Way::ViaChat => Format::Chat,
        Way::ViaMessages => Format::Messages,
        Way::Native | Way::Estimate | Way::Unserved => format,
    };
    let resp = respond::respond(fwd, up, tier_name, ledger, adapter, answered_in).await?;
    quality::served(app, rt, request_id, &decision, answered, &asked);
    let mut resp = tag(resp, tier_name, &up.name, decision.reason);
    if let Some(from) = &escalated {
        quality::mark_escalated(&mut resp, from);
    }
    // 8. Shadow, once the client's whole answer is out; never for a pinned request.
    let caller = &progress.caller;
    let may_use = |u: usize| caller.may_use_upstream(&rt.policy.upstreams[u].name);
    let reach = shadow::Reach {
        pinned: pin.is_some(),
        may_use: &may_use,
    };
    if format == Format::Chat
        && let Some(job) = shadow::plan(
            app,
            rt,
            decision.tier,
            &sent,
            answered,
            origin.client,
            &body,
            &asked,
            reach,
        )
    {
        resp = resp.map(|b| shadow::after(b, job));
    }
    Ok(resp)
}

/// One attempt's request to `up` as the plan serves it.
fn outgoing(
    up: &Upstream,
    run: &UpstreamRuntime,
    request: &ClientRequest<'_>,
    plan: &Plan,
) -> Outgoing {
    let way = provider::way(request.format, up);
    provider::outgoing(up, &run.uris, way, request, &plan.translations).unwrap_or_else(|| {
        // Not reached: the plan sends only the upstreams whose way it can serve.
        Outgoing {
            uri: run.uris.native(request.format).clone(),
            body: request.body.clone(),
            headers: Vec::new(),
        }
    })
}

/// A token count tiergate answers itself, for routes whose upstreams cannot count.
fn estimate_tokens(
    origin: &Origin,
    progress: &mut Progress,
    decision: &Decision,
    body: &[u8],
) -> Result<Response<Body>, GatewayError> {
    let req: MessagesRequest =
        serde_json::from_slice(body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let n = count_tokens::estimate(&req);
    origin.answered_here(decision.tier, 200, "estimate", progress.caller.team());
    progress.recorded = true;
    let mut resp = json(
        StatusCode::OK,
        serde_json::json!({ "input_tokens": n }).to_string(),
    );
    resp.headers_mut()
        .insert("x-tiergate-estimate", HeaderValue::from_static("true"));
    let tier = origin.rt.policy.tiers[decision.tier].name.as_str();
    Ok(tag(resp, tier, "estimate", decision.reason))
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
