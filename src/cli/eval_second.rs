//! `tiergate eval --second-opinion`: what `classifier.second_opinion` would change on
//! labelled rows. The first opinion is the leave-one-source-out fold model's (or, with
//! `--shipped`, the shipped model's), bare; each row inside the band is sent, one at a time,
//! to the policy's second-opinion upstream with the prompt the gateway sends, and waited for
//! to the end, so that the figures say both what the deadline keeps and what it cuts off.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::config;
use crate::quality::checks::Answer;
use crate::quality::probe::ask;
use crate::routing::second_opinion::{self, SecondOpinion};
use crate::routing::train::TrainParams;
use crate::routing::train::eval::{self, Row};
use crate::routing::train::wrap::{Wrapping, wrap};
use crate::routing::{CompiledClassifier, Decision, classifier, task};

/// One row inside the band.
struct Asked {
    /// The row's index.
    at: usize,
    id: String,
    truth: bool,
    first: bool,
    /// The answer's verdict, however long it took; None: no readable answer.
    second: Option<bool>,
    latency: Duration,
}

/// Accuracy and architecture recall of (truth, predicted) pairs.
fn figures(pairs: impl Iterator<Item = (bool, bool)>) -> (f64, f64, usize) {
    let (mut n, mut right, mut arch, mut arch_hit) = (0usize, 0usize, 0usize, 0usize);
    for (truth, pred) in pairs {
        n += 1;
        right += usize::from(truth == pred);
        arch += usize::from(truth);
        arch_hit += usize::from(truth && pred);
    }
    let div = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    (div(right, n), div(arch_hit, arch), n)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn run(data: &[PathBuf], policy: Option<&Path>, shipped: bool, errors: bool) -> ExitCode {
    let mut err = std::io::stderr();
    let fail = |e: &dyn std::fmt::Display| {
        let _ = writeln!(std::io::stderr(), "{e}");
        ExitCode::FAILURE
    };
    let policy = match config::load(policy) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let Some(so) = policy.classifier.second_opinion.clone() else {
        return fail(&"the policy has no classifier.second_opinion");
    };
    let up = &policy.upstreams[so.upstream];
    if let Some(why) = &up.disabled {
        return fail(&format!("upstream {} is disabled: {why}", up.name));
    }
    let rows = match super::eval::read_rows(data) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let cc = &policy.classifier;
    let folds = if shipped {
        None
    } else {
        match eval::fold_classifiers(&rows, cc, cc.model.features, TrainParams::default()) {
            Ok(f) => Some(f),
            Err(e) => return fail(&format!("evaluation failed: {e}")),
        }
    };
    let runtime = match crate::upstream::build(up) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    // First opinions of every row; the in-band ones asked in order.
    let mut first = Vec::with_capacity(rows.len());
    let mut asked = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let fc: &CompiledClassifier = match &folds {
            None => cc,
            Some(f) => f.get(&r.source).unwrap_or(cc),
        };
        let conv = wrap(&r.prompt, Wrapping::Bare, i);
        let c = classifier::classify(&conv, fc);
        let arch = c.score >= fc.threshold;
        first.push(arch);
        let d = Decision {
            tier: 0,
            upstream: None,
            score: Some(c.score),
            uncertain: false,
            reason: c.code,
            reasons: Vec::new(),
        };
        if !second_opinion::wanted(&so, &d) {
            continue;
        }
        let body = second_opinion::request(&task::extract(&conv).text, so.max_tokens);
        let (second, latency) = rt.block_on(async {
            match ask::send(up, &runtime, body).await {
                Ok(reply) => (
                    Answer::from_chat_json(&reply.body)
                        .and_then(|a| second_opinion::parse(&a.text)),
                    reply.latency,
                ),
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "{}: {e}", r.id);
                    (None, Duration::ZERO)
                }
            }
        });
        asked.push(Asked {
            at: i,
            id: r.id.clone(),
            truth: r.architecture(),
            first: arch,
            second,
            latency,
        });
        let _ = write!(err, "\rasked {} in-band rows", asked.len());
    }
    let _ = writeln!(err);
    report(&rows, &first, &asked, &so, shipped, errors, &up.name);
    ExitCode::SUCCESS
}

fn report(
    rows: &[Row],
    first: &[bool],
    asked: &[Asked],
    so: &SecondOpinion,
    shipped: bool,
    errors: bool,
    upstream: &str,
) {
    let mut out = std::io::stdout().lock();
    let within = |a: &Asked| a.second.is_some() && a.latency <= so.deadline;
    // The final tier of an in-band row: with the deadline, and waited for to the end.
    let bounded = |a: &Asked| {
        if within(a) {
            a.second.unwrap_or(a.first)
        } else {
            a.first
        }
    };
    let unbounded = |a: &Asked| a.second.unwrap_or(a.first);
    let overall = |pick: &dyn Fn(&Asked) -> bool| {
        let mut pred = first.to_vec();
        for a in asked {
            pred[a.at] = pick(a);
        }
        figures(rows.iter().zip(pred).map(|(r, p)| (r.architecture(), p)))
    };
    let band = |pick: &dyn Fn(&Asked) -> bool| figures(asked.iter().map(|a| (a.truth, pick(a))));
    let _ = writeln!(
        out,
        "second opinion: upstream {upstream}, band [{}, {}], deadline {:?}, max_tokens {}; first opinion: {}",
        so.band.0,
        so.band.1,
        so.deadline,
        so.max_tokens,
        if shipped {
            "shipped model"
        } else {
            "leave-one-source-out fold models"
        }
    );
    let n = rows.len();
    let _ = writeln!(
        out,
        "rows {n}, in band {} ({:.1}%); answered {}, of them within the deadline {}; unreadable or failed {}",
        asked.len(),
        100.0 * asked.len() as f64 / n.max(1) as f64,
        asked.iter().filter(|a| a.second.is_some()).count(),
        asked.iter().filter(|a| within(a)).count(),
        asked.iter().filter(|a| a.second.is_none()).count(),
    );
    let line = |out: &mut std::io::StdoutLock<'_>, what: &str, (acc, rec, _): (f64, f64, usize)| {
        let _ = writeln!(
            out,
            "  {what:<44} accuracy {acc:.3}  architecture recall {rec:.3}"
        );
    };
    let _ = writeln!(out, "in band:");
    line(&mut out, "first opinion", band(&|a| a.first));
    line(
        &mut out,
        "second opinion within the deadline",
        band(&bounded),
    );
    line(
        &mut out,
        "second opinion waited for to the end",
        band(&unbounded),
    );
    let _ = writeln!(out, "overall:");
    line(&mut out, "first opinion", overall(&|a| a.first));
    line(
        &mut out,
        "with the second opinion, deadline",
        overall(&bounded),
    );
    line(
        &mut out,
        "with the second opinion, no deadline",
        overall(&unbounded),
    );
    let mut lat: Vec<Duration> = asked.iter().map(|a| a.latency).collect();
    lat.sort();
    let mut added: Vec<Duration> = lat.iter().map(|&l| l.min(so.deadline)).collect();
    added.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let _ = writeln!(
        out,
        "latency of the call: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms; added to an in-band request (capped by the deadline): p50 {:.0} ms, p95 {:.0} ms",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.95)),
        ms(lat.last().copied().unwrap_or_default()),
        ms(percentile(&added, 0.5)),
        ms(percentile(&added, 0.95)),
    );
    if errors {
        let word = |b: bool| if b { "architecture" } else { "primitive" };
        for a in asked {
            let _ = writeln!(
                out,
                "    {} truth {} first {} second {} {:.0} ms",
                a.id,
                word(a.truth),
                word(a.first),
                a.second.map_or("-", word),
                ms(a.latency)
            );
        }
    }
}
