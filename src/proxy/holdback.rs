//! Hold-back: a tier's opt-in `hold_back` buffers a streamed chat answer, before its first
//! byte goes to the client, up to a bound in bytes and in time. A stream that ends within
//! the bound is checked; when it fails one of the tier's `escalate_on` checks, the route's
//! next upstream is asked and its stream goes to the client instead (`x-tiergate-escalated`).
//! Otherwise, or once past the bound, what was held is sent as it came, then the rest of
//! the stream: nothing is lost, only delayed by at most the bound.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::forward::{self, Forwarded};
use super::quality::{Asked, Route, bill_usage, rest_of};
use crate::app::App;
use crate::config::Upstream;
use crate::error::GatewayError;
use crate::http::{Body, BoxError, is_sse};
use crate::protocol::openai::{Usage, usage_of_chunk};
use crate::protocol::sse::{SseSplitter, data_of};
use crate::quality::checks::{self, Answer, Check};
use crate::upstream::{Runtime, UpstreamRuntime};

/// How a held stream ended, for `tiergate_hold_backs_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Complete within the bound and no `escalate_on` check failed: sent as it came.
    Passed,
    /// Failed a check; the next upstream's stream was sent instead.
    Escalated,
    /// Failed a check, but no next upstream answered: sent as it came.
    Unescalated,
    /// Past `max_bytes` before its end: released as it is.
    OverBytes,
    /// Past `max_wait` before its end: released as it is.
    OverTime,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Passed,
        Outcome::Escalated,
        Outcome::Unescalated,
        Outcome::OverBytes,
        Outcome::OverTime,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Escalated => "escalated",
            Outcome::Unescalated => "unescalated",
            Outcome::OverBytes => "over_bytes",
            Outcome::OverTime => "over_time",
        }
    }
}

/// The held frames, then the rest of the stream (or the error it broke with).
struct Replay {
    held: VecDeque<Bytes>,
    rest: Option<Body>,
    error: Option<BoxError>,
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(b) = self.held.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if let Some(e) = self.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_empty()
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// What holding a stream found.
enum Held {
    /// It ended (cleanly, or broken with this error) within the bound.
    Complete(Option<BoxError>),
    Over(Outcome),
}

/// Reads `body` until its end or the bound.
async fn hold(
    body: &mut Body,
    frames: &mut VecDeque<Bytes>,
    max_bytes: usize,
    until: Instant,
) -> Held {
    let mut size = 0;
    loop {
        match tokio::time::timeout_at(until, body.frame()).await {
            Err(_) => return Held::Over(Outcome::OverTime),
            Ok(None) => return Held::Complete(None),
            Ok(Some(Err(e))) => return Held::Complete(Some(e)),
            Ok(Some(Ok(f))) => {
                // Trailers: a chat stream has none worth keeping.
                if let Ok(d) = f.into_data() {
                    size += d.len();
                    frames.push_back(d);
                    if size > max_bytes {
                        return Held::Over(Outcome::OverBytes);
                    }
                }
            }
        }
    }
}

/// The usage a chat stream reported, if any.
fn usage_of(stream: &[u8]) -> Option<Usage> {
    let mut events = Vec::new();
    SseSplitter::new().push(Bytes::copy_from_slice(stream), &mut events);
    let mut usage = None;
    for event in events {
        if let Some(data) = data_of(&event)
            && let Some((u, _)) = usage_of_chunk(&data)
        {
            usage = Some(u);
        }
    }
    usage
}

fn count(app: &App, tier: &str, up: &str, outcome: Outcome) {
    app.metrics
        .quality
        .hold_backs
        .with_label_values(&[tier, up, outcome.label()])
        .inc();
}

/// Holds a streamed chat answer of a tier with `hold_back` and escalates it when it fails
/// one of `escalate_on` within the bound (Some: the upstream that failed). Anything else is
/// handed on unchanged in content.
pub async fn escalate(
    app: &Arc<App>,
    rt: &Runtime,
    route: Route<'_>,
    asked: &Asked,
    fwd: Forwarded,
    prepare: impl Fn(&Upstream, &UpstreamRuntime) -> forward::Outgoing,
) -> Result<(Forwarded, Option<String>), GatewayError> {
    let policy = &rt.policy;
    let quality = &policy.tiers[route.tier].quality;
    let escalate_on: &[Check] = &quality.escalate_on;
    let rest = rest_of(route.order, fwd.upstream);
    let Some(bound) = quality.hold_back else {
        return Ok((fwd, None));
    };
    if escalate_on.is_empty()
        || rest.is_empty()
        || !fwd.response.status().is_success()
        || !is_sse(fwd.response.headers())
    {
        return Ok((fwd, None));
    }
    let up = &policy.upstreams[fwd.upstream];
    let tier = policy.tiers[route.tier].name.as_str();
    let (parts, mut body) = fwd.response.into_parts();
    let left = up.timeouts.total.saturating_sub(fwd.first_sent.elapsed());
    let until = Instant::now() + bound.max_wait.min(left);
    let mut frames = VecDeque::new();
    let held = hold(&mut body, &mut frames, bound.max_bytes, until).await;
    let replay = |frames, rest, error| Replay {
        held: frames,
        rest,
        error,
    };
    let error = match held {
        Held::Over(outcome) => {
            count(app, tier, &up.name, outcome);
            let response =
                Response::from_parts(parts, replay(frames, Some(body), None).boxed_unsync());
            return Ok((Forwarded { response, ..fwd }, None));
        }
        Held::Complete(error) => error,
    };
    let bytes: Vec<u8> = frames.iter().flat_map(|b| b.iter().copied()).collect();
    let report = checks::run(&asked.checks(), &Answer::from_chat_sse(&bytes));
    let first = |frames, error| Forwarded {
        response: Response::from_parts(parts, replay(frames, None, error).boxed_unsync()),
        ..fwd
    };
    let Some(check) = report.first_failed_of(escalate_on) else {
        count(app, tier, &up.name, Outcome::Passed);
        return Ok((first(frames, error), None));
    };
    match forward::forward_to(app, rt, route.tier, &rest, route.request_id, prepare).await {
        Ok(next) => {
            let to = &policy.upstreams[next.upstream];
            report.count(&app.metrics, tier, &up.name);
            if let Some(u) = usage_of(&bytes) {
                bill_usage(app, tier, up, &u);
            }
            count(app, tier, &up.name, Outcome::Escalated);
            app.metrics
                .escalations
                .with_label_values(&[&up.name, &to.name, check.name()])
                .inc();
            tracing::info!(request_id = route.request_id, from = %up.name, to = %to.name, check = check.name(), "held stream failed a check; escalated");
            Ok((next, Some(up.name.clone())))
        }
        Err(e) => {
            count(app, tier, &up.name, Outcome::Unescalated);
            tracing::warn!(request_id = route.request_id, from = %up.name, check = check.name(), "held stream failed a check; not escalated: {e}");
            Ok((first(frames, error), None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_yields_what_was_held_then_the_rest() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let rest = http_body_util::Full::new(Bytes::from_static(b"c"))
                .map_err(|e| match e {})
                .boxed_unsync();
            let held = VecDeque::from([Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
            let r = Replay {
                held: held.clone(),
                rest: Some(rest),
                error: None,
            };
            let all = r.collect().await.unwrap().to_bytes();
            assert_eq!(&all[..], b"abc");
            let r = Replay {
                held,
                rest: None,
                error: Some("cut".into()),
            };
            let mut r = r.boxed_unsync();
            assert_eq!(r.frame().await.unwrap().unwrap().into_data().unwrap(), "a");
            assert_eq!(r.frame().await.unwrap().unwrap().into_data().unwrap(), "b");
            assert!(r.frame().await.unwrap().is_err());
        });
    }

    #[test]
    fn usage_is_read_off_a_chat_stream() {
        let s = b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n";
        let u = usage_of(s).unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (3, 4));
        assert!(usage_of(b"data: [DONE]\n\n").is_none());
    }
}
