//! Shadow comparison: a sampled share of a tier's chat requests is also sent to the
//! frontier once the client's whole answer has been sent (the response body's end starts
//! it; a client that leaves early starts nothing), both answers go through the checks, and
//! a judge (sampled, capped) says whether the tier's answer is as good; the judge's verdicts
//! feed the quality gate, which sends a segment (client, kind of task) to the frontier while
//! it is under the gate.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::quality::Asked;
use crate::app::App;
use crate::http::{Body as BoxBody, BoxError};
use crate::quality::checks::{self, Answer};
use crate::quality::probe::ask;
use crate::quality::shadow::{judge_prompt, kind_of, verdict};
use crate::upstream::Runtime;

/// A body that runs `then` once it has yielded its last byte (never when dropped early):
/// at the end of a body of known size, else at its final poll.
pub struct OnEnd {
    inner: BoxBody,
    /// Bytes still to come, when the size is known.
    left: Option<u64>,
    then: Option<Box<dyn FnOnce() + Send>>,
}

impl OnEnd {
    fn fire(&mut self) {
        if let Some(f) = self.then.take() {
            f();
        }
    }
}

impl Body for OnEnd {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => self.fire(),
            Poll::Ready(Some(Ok(f))) => {
                let n = f.data_ref().map_or(0, |d| d.len() as u64);
                if let Some(left) = self.left.as_mut() {
                    *left = left.saturating_sub(n);
                    if *left == 0 {
                        self.fire();
                    }
                }
            }
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        // Never claims the end before `then` ran, so that the poll that runs it happens.
        self.then.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a shadow call needs, taken from the request.
pub struct Job {
    app: Arc<App>,
    rt: Arc<Runtime>,
    tier: usize,
    shadow: usize,
    client: &'static str,
    body: Bytes,
    asked: Arc<Asked>,
    /// Whether the judge may see this request's task.
    judge: bool,
}

/// Where a request's data may go besides where it was answered.
pub struct Reach<'a> {
    /// Pinned to local upstreams (a secret, a `local_only` key): never shadowed.
    pub pinned: bool,
    /// Whether the client's key may use an upstream.
    pub may_use: &'a dyn Fn(usize) -> bool,
}

/// A shadow job for this request, when its tier shadows, it is sampled, the day's cap is
/// not spent, and there is a shadow upstream other than the one that answered which the
/// request's data may reach.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    app: &Arc<App>,
    rt: &Arc<Runtime>,
    tier: usize,
    sent: &[usize],
    answered: usize,
    client: &'static str,
    body: &Bytes,
    asked: &Arc<Asked>,
    reach: Reach<'_>,
) -> Option<Job> {
    let cfg = rt.policy.tiers[tier].quality.shadow.as_ref()?;
    if reach.pinned
        || fastrand::f64() >= cfg.rate
        || !app.shadow.shadow_spend.allows(cfg.daily_usd_cap)
    {
        return None;
    }
    let shadow = cfg.upstream.or_else(|| {
        let at = sent.iter().position(|&u| u == answered)?;
        sent.get(at + 1).copied()
    })?;
    if shadow == answered || !rt.policy.upstreams[shadow].is_enabled() || !(reach.may_use)(shadow) {
        return None;
    }
    let judge = cfg
        .judge
        .as_ref()
        .is_some_and(|j| (reach.may_use)(j.upstream));
    Some(Job {
        app: app.clone(),
        rt: rt.clone(),
        tier,
        shadow,
        client,
        body: body.clone(),
        asked: asked.clone(),
        judge,
    })
}

/// The response body, wrapped to start `job` after its last byte.
pub fn after(body: BoxBody, job: Job) -> BoxBody {
    use http_body_util::BodyExt;
    let then: Box<dyn FnOnce() + Send> = Box::new(move || {
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(run(job));
        }
    });
    OnEnd {
        left: body.size_hint().exact().filter(|&n| n > 0),
        inner: body,
        then: Some(then),
    }
    .boxed_unsync()
}

/// The judge answers in one word.
const JUDGE_TOKENS: u64 = 8;

fn cost(up: &crate::config::Upstream, r: &ask::Reply) -> f64 {
    super::record::cost_usd(&up.price, &r.usage)
}

/// A call's cost before it is made: its prompt's bytes in tokens, and all the output
/// tokens it may use (what the daily cap reserves).
fn estimate_usd(
    up: &crate::config::Upstream,
    prompt_bytes: usize,
    chat: &serde_json::Value,
) -> f64 {
    let out = chat
        .get("max_tokens")
        .or_else(|| chat.get("max_completion_tokens"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(up.default_max_tokens);
    let usage = crate::protocol::openai::Usage {
        prompt_tokens: super::record::estimate_tokens(prompt_bytes),
        completion_tokens: out,
        prompt_tokens_details: None,
    };
    super::record::cost_usd(&up.price, &usage)
}

fn ratio(
    g: &prometheus::GaugeVec,
    tally: &crate::quality::shadow::Tally,
    tier: &str,
    client: &'static str,
    hit: bool,
) {
    if let Ok(mut m) = tally.lock() {
        let e = m.entry((tier.to_string(), client)).or_insert((0, 0));
        e.0 += u64::from(hit);
        e.1 += 1;
        g.with_label_values(&[tier, client])
            .set(e.0 as f64 / e.1 as f64);
    }
}

async fn run(job: Job) {
    let (app, p) = (&job.app, &job.rt.policy);
    let Some(cfg) = p.tiers[job.tier].quality.shadow.as_ref() else {
        return;
    };
    let tier = p.tiers[job.tier].name.as_str();
    // The tier's own answer, as its checks saw it (they run off the path too).
    let mut local = None;
    for _ in 0..250 {
        local = job.asked.outcome.lock().ok().and_then(|o| o.clone());
        if local.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Some((local, local_pass)) = local else {
        return;
    };
    let Ok(chat) = serde_json::from_slice::<serde_json::Value>(&job.body) else {
        return;
    };
    let up = &p.upstreams[job.shadow];
    let estimate = estimate_usd(up, job.body.len(), &chat);
    if !app.shadow.shadow_spend.reserve(cfg.daily_usd_cap, estimate) {
        return;
    }
    let reply = match ask::send(up, &job.rt.upstreams[job.shadow], chat).await {
        Ok(r) => r,
        Err(e) => {
            app.shadow.shadow_spend.settle(estimate, 0.0);
            tracing::info!(upstream = %up.name, "shadow call failed: {e}");
            return;
        }
    };
    let spent = cost(up, &reply);
    app.shadow.shadow_spend.settle(estimate, spent);
    app.metrics
        .shadow_cost_usd
        .with_label_values(&[tier, &up.name])
        .inc_by(spent);
    let Some(theirs) = Answer::from_chat_json(&reply.body) else {
        return;
    };
    let asked = job.asked.checks();
    let shadow_pass = checks::run(&asked, &theirs).failed().next().is_none();
    let agree = local_pass == shadow_pass;
    app.metrics
        .shadow_comparisons
        .with_label_values(&[tier, job.client, if agree { "agree" } else { "disagree" }])
        .inc();
    ratio(
        &app.metrics.shadow_agreement,
        &app.shadow.agreement,
        tier,
        job.client,
        agree,
    );

    let Some(judge) = cfg.judge.as_ref().filter(|_| job.judge) else {
        return;
    };
    let jup = &p.upstreams[judge.upstream];
    let prompt = judge_prompt(asked.task, &local.text, &theirs.text);
    let estimate = estimate_usd(
        jup,
        prompt.len(),
        &serde_json::json!({ "max_tokens": JUDGE_TOKENS }),
    );
    if fastrand::f64() >= judge.rate
        || !app
            .shadow
            .judge_spend
            .reserve(judge.daily_usd_cap, estimate)
    {
        return;
    }
    let reply = match ask::ask(
        jup,
        &job.rt.upstreams[judge.upstream],
        &prompt,
        JUDGE_TOKENS,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            app.shadow.judge_spend.settle(estimate, 0.0);
            tracing::info!(upstream = %jup.name, "judge call failed: {e}");
            return;
        }
    };
    let spent = cost(jup, &reply);
    app.shadow.judge_spend.settle(estimate, spent);
    app.metrics
        .judge_cost_usd
        .with_label_values(&[&jup.name])
        .inc_by(spent);
    let Some(win) = Answer::from_chat_json(&reply.body).and_then(|a| verdict(&a.text)) else {
        return;
    };
    app.metrics
        .judge_verdicts
        .with_label_values(&[tier, job.client, if win { "win" } else { "loss" }])
        .inc();
    ratio(
        &app.metrics.judge_win,
        &app.shadow.judge_tally,
        tier,
        job.client,
        win,
    );
    app.shadow
        .gate
        .record(tier, job.client, kind_of(asked.task), win);
}

/// The quality gate: a segment under it is answered by the route's next upstream first,
/// except one request in `shadow::EXPLORE`, which the tier keeps so that it can recover.
pub fn gate(
    app: &App,
    rt: &Runtime,
    tier: usize,
    client: &'static str,
    task: &str,
    sent: &mut [usize],
) {
    let t = &rt.policy.tiers[tier];
    let Some(g) = t.quality.quality_gate else {
        return;
    };
    if sent.len() < 2
        || !app.shadow.gate.turn_away(
            &t.name,
            client,
            kind_of(task),
            g.min_win_rate,
            g.min_samples,
        )
    {
        return;
    }
    let first = sent[0];
    sent.rotate_left(1);
    let names = &rt.policy.upstreams;
    app.metrics
        .fallbacks
        .with_label_values(&[&names[first].name, &names[sent[0]].name, "quality_gate"])
        .inc();
}
