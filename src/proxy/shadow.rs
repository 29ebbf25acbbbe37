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

/// A body that runs `then` once it has yielded its last frame (never when dropped early).
pub struct OnEnd {
    inner: BoxBody,
    then: Option<Box<dyn FnOnce() + Send>>,
}

impl Body for OnEnd {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = r
            && let Some(f) = self.then.take()
        {
            f();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        // Never claims the end ahead of time, so that the last poll (and `then`) happens.
        false
    }

    /// No exact size: with one, hyper stops after the last byte without the final poll
    /// that marks the end (the answer is then sent chunked).
    fn size_hint(&self) -> SizeHint {
        let mut h = SizeHint::new();
        h.set_lower(self.inner.size_hint().lower());
        h
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
}

/// A shadow job for this request, when its tier shadows, it is sampled, the day's cap is
/// not spent, and there is a shadow upstream other than the one that answered.
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
) -> Option<Job> {
    let cfg = rt.policy.tiers[tier].quality.shadow.as_ref()?;
    if fastrand::f64() >= cfg.rate || !app.shadow.shadow_spend.allows(cfg.daily_usd_cap) {
        return None;
    }
    let shadow = cfg.upstream.or_else(|| {
        let at = sent.iter().position(|&u| u == answered)?;
        sent.get(at + 1).copied()
    })?;
    if shadow == answered || !rt.policy.upstreams[shadow].is_enabled() {
        return None;
    }
    Some(Job {
        app: app.clone(),
        rt: rt.clone(),
        tier,
        shadow,
        client,
        body: body.clone(),
        asked: asked.clone(),
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
        inner: body,
        then: Some(then),
    }
    .boxed_unsync()
}

fn cost(up: &crate::config::Upstream, r: &ask::Reply) -> f64 {
    super::record::cost_usd(&up.price, &r.usage)
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
    let reply = match ask::send(up, &job.rt.upstreams[job.shadow], chat).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(upstream = %up.name, "shadow call failed: {e}");
            return;
        }
    };
    let spent = cost(up, &reply);
    app.shadow.shadow_spend.add(spent);
    app.metrics
        .shadow_cost_usd
        .with_label_values(&[tier, &up.name])
        .inc_by(spent);
    let Some(theirs) = Answer::from_chat_json(&reply.body) else {
        return;
    };
    let asked = checks::Asked {
        task: &job.asked.task,
        tools: job.asked.offer.as_ref(),
    };
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

    let Some(judge) = &cfg.judge else { return };
    if fastrand::f64() >= judge.rate || !app.shadow.judge_spend.allows(judge.daily_usd_cap) {
        return;
    }
    let jup = &p.upstreams[judge.upstream];
    let prompt = judge_prompt(&job.asked.task, &local.text, &theirs.text);
    let reply = match ask::ask(jup, &job.rt.upstreams[judge.upstream], &prompt, 8).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(upstream = %jup.name, "judge call failed: {e}");
            return;
        }
    };
    let spent = cost(jup, &reply);
    app.shadow.judge_spend.add(spent);
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
        .record(tier, job.client, kind_of(&job.asked.task), win);
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
