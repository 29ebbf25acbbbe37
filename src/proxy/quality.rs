//! The quality steps of the lifecycle: what the answer checks need of the request (`Asked`),
//! escalation of a whole answer that fails a tier's `escalate_on` checks to the route's next
//! upstream, the checks on every chat-shaped answer off the hot path (`check_later`), and
//! who answered, for feedback and for the retry and override signals (`served`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Response, header};

/// Marks a response as escalated from `from`.
pub fn mark_escalated(resp: &mut Response<crate::http::Body>, from: &str) {
    if let Ok(v) = HeaderValue::from_str(from) {
        resp.headers_mut().insert(HEADER_ESCALATED, v);
    }
}

use super::forward::{self, Forwarded};
use crate::app::App;
use crate::config::Upstream;
use crate::error::GatewayError;
use crate::http::{full, is_sse};
use crate::local::ToolOffer;
use crate::protocol::Format;
use crate::protocol::openai::Usage;
use crate::provider::Way;
use crate::quality::checks::{self, Answer, Check};
use crate::quality::feedback::{Served, conversation_key};
use crate::routing::input::Conversation;
use crate::routing::{Decision, task};
use crate::upstream::{Runtime, UpstreamRuntime};

/// The header of an answer that replaced one that failed a check: the failed upstream.
pub const HEADER_ESCALATED: &str = "x-tiergate-escalated";

/// What the answer checks and feedback need of the request, taken once.
#[derive(Debug, Default)]
pub struct Asked {
    /// `feedback::conversation_key` of the conversation.
    pub conversation: Option<u64>,
    /// What the checks read; None when this request's answer is not checked (`to_check`).
    pub inputs: Option<Inputs>,
    /// The answer once checked, and whether every check passed (for shadow comparison).
    pub outcome: std::sync::Mutex<Option<(Answer, bool)>>,
}

#[derive(Debug, Default)]
pub struct Inputs {
    pub task: String,
    pub offer: Option<ToolOffer>,
}

impl Asked {
    /// `checked`: whether the answer will be checked; only then are the task and the
    /// offered tools taken out of the request.
    pub fn of(
        conv: Option<&Conversation<'_>>,
        chat_request: Option<&Bytes>,
        checked: bool,
    ) -> Asked {
        Asked {
            conversation: conv.map(conversation_key),
            inputs: checked.then(|| Inputs {
                task: task_of(conv),
                offer: chat_request.and_then(|b| ToolOffer::from_request(b)),
            }),
            outcome: Default::default(),
        }
    }

    pub fn checks(&self) -> checks::Asked<'_> {
        self.inputs
            .as_ref()
            .map_or_else(checks::Asked::default, |i| checks::Asked {
                task: &i.task,
                tools: i.offer.as_ref(),
            })
    }
}

/// Whether the answer of a request to `tier` that takes `way` is checked: one the checks
/// can read, within the tier's budget (every one where the verdict decides something).
/// One over the budget is counted.
pub fn to_check(app: &App, rt: &Runtime, tier: usize, format: Format, way: Way) -> bool {
    if !checked(format, way) {
        return false;
    }
    if rt.policy.tiers[tier].quality.checks_all() || rt.check_budgets[tier].take() {
        return true;
    }
    unchecked(app, &rt.policy.tiers[tier].name, "budget");
    false
}

/// Counts an answer the checks did not read, and why (`quality::metrics::UNCHECKED`).
pub fn unchecked(app: &App, tier: &str, reason: &str) {
    app.metrics
        .quality
        .answers_unchecked
        .with_label_values(&[tier, reason])
        .inc();
}

/// The user's task in the request (empty when its conversation cannot be read).
pub fn task_of(conv: Option<&Conversation<'_>>) -> String {
    conv.map(|c| task::extract(c).text.into_owned())
        .unwrap_or_default()
}

/// Whether the answers of a request that takes `way` are checked: those in a wire format
/// the checks read (chat, completions, Messages), whatever the client's.
pub fn checked(format: Format, way: Way) -> bool {
    let answered_in = match way {
        Way::ViaChat => Format::Chat,
        Way::ViaMessages => Format::Messages,
        Way::Native => format,
        Way::Estimate | Way::Unserved => return false,
    };
    matches!(
        answered_in,
        Format::Chat | Format::Completions | Format::Messages
    )
}

/// A whole answer as the checks read it, in the upstream's wire format.
pub fn whole_answer(upstream: Format, body: &[u8]) -> Option<Answer> {
    match upstream {
        Format::Chat | Format::Completions => Answer::from_chat_json(body),
        Format::Messages => Answer::from_messages_json(body),
        Format::CountTokens | Format::Responses => None,
    }
}

/// A streamed answer as the checks read it, from the upstream's bytes.
pub fn streamed_answer(upstream: Format, stream: &[u8]) -> Option<Answer> {
    match upstream {
        Format::Chat | Format::Completions => Some(Answer::from_chat_sse(stream)),
        Format::Messages => Some(Answer::from_messages_sse(stream)),
        Format::CountTokens | Format::Responses => None,
    }
}

/// A bounded copy of a stream's upstream bytes, checked once the stream has ended.
pub struct Capture {
    asked: Arc<Asked>,
    bytes: Vec<u8>,
    upstream: Format,
    /// `tiergate_answers_unchecked_total{reason="too_long"}` of the tier.
    too_long: prometheus::IntCounter,
}

/// Streams longer than this are not checked: the copy is bounded.
const CAPTURE_LIMIT: usize = 1024 * 1024;

impl Capture {
    /// A capture for a stream whose ledger asks for checks, in the upstream's format.
    pub fn of(ledger: &super::record::Ledger, upstream: Format) -> Option<Capture> {
        let tier = &ledger.rt.policy.tiers[ledger.tier].name;
        ledger.checks.clone().map(|asked| Capture {
            asked,
            bytes: Vec::new(),
            upstream,
            too_long: ledger
                .app
                .metrics
                .quality
                .answers_unchecked
                .with_label_values(&[tier, "too_long"]),
        })
    }

    /// Copies `data`; false once the stream is over the bound (drop the capture then: it
    /// is counted as unchecked).
    pub fn push(&mut self, data: &[u8]) -> bool {
        if self.bytes.len() + data.len() > CAPTURE_LIMIT {
            self.too_long.inc();
            return false;
        }
        self.bytes.extend_from_slice(data);
        true
    }

    /// Checks the stream off its path, unless the client left (no verdict on the answer).
    pub fn check(self, ledger: &super::record::Ledger, end: super::record::End) {
        if end == super::record::End::ClientGone {
            return;
        }
        let p = &ledger.rt.policy;
        let (tier, up) = (
            &p.tiers[ledger.tier].name,
            &p.upstreams[ledger.upstream].name,
        );
        let (bytes, upstream) = (self.bytes, self.upstream);
        check_later(&ledger.app, tier, up, self.asked, move || {
            streamed_answer(upstream, &bytes)
        });
    }
}

/// Runs the checks on an answer on a blocking thread and counts them: never on the path of
/// a byte to the client.
pub fn check_later(
    app: &Arc<App>,
    tier: &str,
    upstream: &str,
    asked: Arc<Asked>,
    answer: impl FnOnce() -> Option<Answer> + Send + 'static,
) {
    let (app, tier, upstream) = (app.clone(), tier.to_string(), upstream.to_string());
    // Outside a runtime (unit tests of the meters) there is nothing to spawn on.
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::task::spawn_blocking(move || {
        if let Some(a) = answer() {
            let report = checks::run(&asked.checks(), &a);
            report.count(&app.metrics, &tier, &upstream);
            if let Ok(mut o) = asked.outcome.lock() {
                *o = Some((a, report.failed().next().is_none()));
            }
        }
    });
}

/// Whether the local tier answered: the primitive tier's first upstream.
fn is_local(rt: &Runtime, upstream: usize) -> bool {
    let p = &rt.policy;
    p.tiers[p.primitive_tier].upstreams.first() == Some(&upstream)
}

/// Notes who answered `request_id` (for `POST /v1/feedback`) and counts the signal this
/// request gives about the answer before it to the same conversation.
pub fn served(
    app: &App,
    rt: &Runtime,
    request_id: &str,
    decision: &Decision,
    upstream: usize,
    asked: &Asked,
) {
    let p = &rt.policy;
    let s = Served {
        tier: p.tiers[decision.tier].name.clone(),
        upstream: p.upstreams[upstream].name.clone(),
        local: is_local(rt, upstream),
        at: Instant::now(),
    };
    if let Some(k) = asked.conversation {
        let explicit = matches!(decision.reason, "header" | "model_tier" | "model_upstream");
        app.feedback.observe(k, s.clone(), explicit, &app.metrics);
    }
    app.feedback.record(request_id, s);
}

/// The route's upstreams after `upstream`.
pub(super) fn rest_of(order: &[usize], upstream: usize) -> Vec<usize> {
    order
        .iter()
        .position(|&u| u == upstream)
        .map_or_else(Vec::new, |i| order[i + 1..].to_vec())
}

/// Counts the tokens and cost of an answer that was paid for and then thrown away.
fn bill_discarded(app: &App, tier: &str, up: &Upstream, body: &[u8]) {
    let usage = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("usage").cloned())
        .and_then(|u| serde_json::from_value::<Usage>(u).ok());
    if let Some(u) = usage {
        bill_usage(app, tier, up, &u);
    }
}

/// Counts `u` at `up`'s prices, for an answer the client did not get.
pub(super) fn bill_usage(app: &App, tier: &str, up: &Upstream, u: &Usage) {
    let m = &app.metrics;
    m.input_tokens
        .with_label_values(&[tier, &up.name, "reported"])
        .inc_by(u.prompt_tokens);
    m.output_tokens
        .with_label_values(&[tier, &up.name, "reported"])
        .inc_by(u.completion_tokens);
    m.cost_usd
        .with_label_values(&[tier, &up.name])
        .inc_by(super::record::cost_usd(&up.price, u));
}

/// Where an escalation may go.
pub struct Route<'a> {
    pub tier: usize,
    pub order: &'a [usize],
    pub request_id: &'a str,
}

/// A whole chat answer that fails one of the tier's `escalate_on` checks is asked again of
/// the route's next upstream; the client gets the next answer when there is one (Some: the
/// upstream that failed, for `x-tiergate-escalated`), else the first as it was. Both are
/// paid for: the first is billed here, the second by the ledger.
pub async fn escalate(
    app: &Arc<App>,
    rt: &Runtime,
    route: Route<'_>,
    asked: &Asked,
    fwd: Forwarded,
    prepare: impl Fn(&Upstream, &UpstreamRuntime) -> forward::Outgoing,
) -> Result<(Forwarded, Option<String>), GatewayError> {
    let policy = &rt.policy;
    let escalate_on: &[Check] = &policy.tiers[route.tier].quality.escalate_on;
    let rest = rest_of(route.order, fwd.upstream);
    if escalate_on.is_empty()
        || rest.is_empty()
        || !fwd.response.status().is_success()
        || is_sse(fwd.response.headers())
    {
        return Ok((fwd, None));
    }
    let up = &policy.upstreams[fwd.upstream];
    let tier = policy.tiers[route.tier].name.as_str();
    let (mut parts, body) = fwd.response.into_parts();
    let bytes = super::respond::collect(body, up, fwd.first_sent, tier).await?;
    let failed = Answer::from_chat_json(&bytes).and_then(|a| {
        let report = checks::run(&asked.checks(), &a);
        report.first_failed_of(escalate_on).map(|c| (c, report))
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    let first = Forwarded {
        response: Response::from_parts(parts, full(bytes.clone())),
        ..fwd
    };
    let Some((check, report)) = failed else {
        return Ok((first, None));
    };
    match forward::forward_to(app, rt, route.tier, &rest, route.request_id, prepare).await {
        Ok(next) => {
            let to = &policy.upstreams[next.upstream];
            report.count(&app.metrics, tier, &up.name);
            bill_discarded(app, tier, up, &bytes);
            app.metrics
                .escalations
                .with_label_values(&[&up.name, &to.name, check.name()])
                .inc();
            tracing::info!(request_id = route.request_id, from = %up.name, to = %to.name, check = check.name(), "answer failed a check; escalated");
            Ok((next, Some(up.name.clone())))
        }
        Err(e) => {
            tracing::warn!(request_id = route.request_id, from = %up.name, check = check.name(), "answer failed a check; not escalated: {e}");
            Ok((first, None))
        }
    }
}

/// `POST /v1/feedback`: 204 when counted; 400 for a bad body, 404 for an unknown or expired
/// request id (OpenAI's error body).
pub async fn feedback(
    app: &Arc<App>,
    req: http::Request<hyper::body::Incoming>,
) -> Response<crate::http::Body> {
    let rt = app.runtime.load();
    let body = match super::parse::read_body(req.into_body(), &rt.policy.server).await {
        Ok(b) => b,
        Err(e) => return e.response(crate::protocol::Format::Chat),
    };
    match crate::quality::feedback::feedback(&app.feedback, &app.metrics, &body) {
        Ok(()) => {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = http::StatusCode::NO_CONTENT;
            r
        }
        Err(e) => {
            tracing::debug!(code = e.code(), "feedback refused: {e}");
            e.response(crate::protocol::Format::Chat)
        }
    }
}

/// The policy's probe floor: while the primitive tier's first upstream scores under it, its
/// requests go to the next upstream first (the local one stays last, so nothing is lost).
pub fn probe_floor(app: &App, rt: &Runtime, tier: usize, sent: &mut [usize]) {
    let p = &rt.policy;
    if tier != p.primitive_tier || sent.len() < 2 {
        return;
    }
    let first = sent[0];
    if p.tiers[tier].upstreams.first() != Some(&first) || !app.probe_scores.under_floor(p, first) {
        return;
    }
    sent.rotate_left(1);
    app.metrics
        .fallbacks
        .with_label_values(&[
            &p.upstreams[first].name,
            &p.upstreams[sent[0]].name,
            "probe_floor",
        ])
        .inc();
}
