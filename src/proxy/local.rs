//! Where the proxy applies `crate::local` to upstreams marked `repair: true`: answers are
//! normalised to OpenAI's shape and tool calls written as text become `tool_calls`, whole
//! bodies at once and streams event by event. With `escalate_unrepaired_tool_calls`, a
//! tool-offering request whose answer cannot be repaired goes to the tier's next upstream;
//! to decide that before the client sees a byte, such an answer is read whole first.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

use super::forward::{self, Forwarded};
use super::stream::Batch;
use crate::app::App;
use crate::config::Upstream;
use crate::error::GatewayError;
use crate::http::{Body, BoxError, full, is_sse};
use crate::local::{self, Outcome, StreamFix, ToolOffer};
use crate::protocol::sse::SseSplitter;
use crate::upstream::{Runtime, UpstreamRuntime};

const ESCALATION_REASON: &str = "unrepaired_tool_call";

/// Where `settle` may escalate to: the request's tier and the upstreams it was planned for.
pub struct Route<'a> {
    pub tier: usize,
    pub order: &'a [usize],
    pub request_id: &'a str,
}

/// Applies normalisation and repair to a chat-shaped answer in `fwd` when its upstream asks
/// for it, escalating an unrepairable tool call where the policy allows. Other answers pass
/// as they are. `chat_request` is the chat body the upstream got (None for legacy
/// completions, which offer no tools).
pub async fn settle(
    app: &Arc<App>,
    rt: &Runtime,
    route: Route<'_>,
    chat_request: Option<&Bytes>,
    fwd: Forwarded,
    prepare: impl Fn(&Upstream, &UpstreamRuntime) -> forward::Outgoing,
) -> Result<Forwarded, GatewayError> {
    let up = &rt.policy.upstreams[fwd.upstream];
    if !up.repair {
        return Ok(fwd);
    }
    let offer = chat_request.and_then(|r| ToolOffer::from_request(r));
    let rest = rest_of_route(route.order, fwd.upstream);
    let (decision_tier, request_id) = (route.tier, route.request_id);
    let judge_first = up.escalate_unrepaired_tool_calls
        && offer.is_some()
        && !rest.is_empty()
        && fwd.response.status().is_success();
    if !judge_first {
        return Ok(fix(app, up, offer, fwd).await);
    }
    let from = up.name.clone();
    let (fixed, outcome) = read_and_fix(up, offer.as_ref(), fwd).await;
    count(app, &from, outcome.as_ref());
    if !matches!(outcome, Some(Outcome::Failed(_))) {
        return Ok(fixed);
    }
    match forward::forward_to(app, rt, decision_tier, &rest, request_id, prepare).await {
        Ok(next) => {
            let to = &rt.policy.upstreams[next.upstream];
            app.metrics
                .escalations
                .with_label_values(&[&from, &to.name, ESCALATION_REASON])
                .inc();
            tracing::info!(request_id, from = %from, to = %to.name, "unrepaired tool call escalated");
            Ok(if to.repair {
                fix(app, to, offer, next).await
            } else {
                next
            })
        }
        // Nothing better to be had: the local answer, as it is.
        Err(e) => {
            tracing::warn!(request_id, from = %from, "unrepaired tool call not escalated: {e}");
            Ok(fixed)
        }
    }
}

/// The upstreams of the route that come after `upstream`.
fn rest_of_route(order: &[usize], upstream: usize) -> Vec<usize> {
    order
        .iter()
        .position(|&u| u == upstream)
        .map_or_else(Vec::new, |i| order[i + 1..].to_vec())
}

/// Wraps the answer's body in the fixes: streams event by event, whole bodies at once.
async fn fix(app: &Arc<App>, up: &Upstream, offer: Option<ToolOffer>, fwd: Forwarded) -> Forwarded {
    if is_sse(fwd.response.headers()) {
        let (parts, body) = fwd.response.into_parts();
        let fixing = FixingStream {
            inner: body,
            splitter: SseSplitter::new(),
            fix: StreamFix::new(&up.model, offer),
            out: Batch::default(),
            done: false,
            counter: Some((app.clone(), up.name.clone())),
        };
        return Forwarded {
            response: Response::from_parts(parts, fixing.boxed_unsync()),
            ..fwd
        };
    }
    let (fixed, outcome) = read_and_fix(up, offer.as_ref(), fwd).await;
    count(app, &up.name, outcome.as_ref());
    fixed
}

/// Reads the whole answer and fixes it; the outcome says whether a tool call was repaired.
/// A body that breaks off is handed on as broken, for the proxy to account.
async fn read_and_fix(
    up: &Upstream,
    offer: Option<&ToolOffer>,
    fwd: Forwarded,
) -> (Forwarded, Option<Outcome>) {
    let sse = is_sse(fwd.response.headers());
    let (mut parts, body) = fwd.response.into_parts();
    let bytes = match super::respond::collect(body, up, fwd.first_sent, "").await {
        Ok(b) => b,
        Err(e) => {
            return (
                Forwarded {
                    response: Response::from_parts(parts, broken(detail(e).into())),
                    ..fwd
                },
                None,
            );
        }
    };
    let (out, outcome) = if sse {
        let mut fix = StreamFix::new(&up.model, offer.cloned());
        let mut splitter = SseSplitter::new();
        let (mut events, mut out) = (Vec::new(), Vec::new());
        splitter.push(bytes, &mut events);
        events.extend(splitter.take_rest());
        for e in events {
            fix.push(e, &mut out);
        }
        fix.finish(&mut out);
        (out.concat(), fix.outcome().cloned())
    } else {
        let fixed = local::fix_body(parts.status.as_u16(), &bytes, &up.model, offer);
        if !parts.status.is_success() {
            parts.headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
        }
        (fixed.body, fixed.outcome)
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    (
        Forwarded {
            response: Response::from_parts(parts, full(out)),
            ..fwd
        },
        outcome,
    )
}

/// What went wrong with the upstream, without the tier-level framing.
fn detail(e: GatewayError) -> String {
    match e {
        GatewayError::UpstreamFailed { detail, .. } => detail,
        other => other.to_string(),
    }
}

fn broken(e: BoxError) -> Body {
    let once = futures_util::stream::once(async move { Err::<Frame<Bytes>, BoxError>(e) });
    http_body_util::StreamBody::new(once).boxed_unsync()
}

/// Counts a repair's outcome (plain answers are not counted).
fn count(app: &App, upstream: &str, outcome: Option<&Outcome>) {
    let label = match outcome {
        Some(Outcome::Repaired(_)) => "repaired",
        Some(Outcome::Failed(why)) => {
            tracing::info!(
                upstream,
                "tool call written as text could not be repaired: {why}"
            );
            "failed"
        }
        _ => return,
    };
    app.metrics
        .tool_call_repairs
        .with_label_values(&[upstream, label])
        .inc();
}

/// A streamed answer passed through `StreamFix`, event by event.
struct FixingStream {
    inner: Body,
    splitter: SseSplitter,
    fix: StreamFix,
    /// What an upstream frame became, sent on as one frame: fewer, larger writes.
    out: Batch,
    done: bool,
    /// Taken when the outcome is counted, at the end of the stream.
    counter: Option<(Arc<App>, String)>,
}

impl FixingStream {
    fn end(&mut self) {
        let mut out = Vec::new();
        if let Some(rest) = self.splitter.take_rest() {
            self.fix.push(rest, &mut out);
        }
        self.fix.finish(&mut out);
        out.into_iter().for_each(|b| self.out.push(b));
        if let Some((app, upstream)) = self.counter.take() {
            count(&app, &upstream, self.fix.outcome());
        }
    }
}

impl http_body::Body for FixingStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.out.take() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.done = true;
                    this.end();
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let mut events = Vec::new();
                    this.splitter.push(data, &mut events);
                    let mut out = Vec::new();
                    for e in events {
                        this.fix.push(e, &mut out);
                    }
                    out.into_iter().for_each(|b| this.out.push(b));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
