//! The classifier: a pure function from a conversation to a calibrated score in 0..1
//! (1 = architecture) and the features that weighed most.
//!
//! Order: FIM is primitive; a side call (title, compaction) is primitive; a rule that forces a
//! tier wins; otherwise score = sigmoid(model logit of the task + the labelling rule's priors
//! (`priors`) + structure priors + rule weights + policy bias). A new application described
//! by its user stories is decided by its parts alone (`priors::greenfield`).

use std::borrow::Cow;

use super::evidence::Evidence;
use super::features::dense_name;
use super::input::Conversation;
use super::model::sigmoid;
use super::priors;
use super::rules::{CompiledClassifier, Effect};
use super::structure::{self, Structure};
use super::task;

/// Bounded reason codes (metric label, `x-tiergate-reason` header).
pub const FIM: &str = "fim";
pub const SIDE_CALL: &str = "side_call";
pub const RULE: &str = "rule";
pub const PRIMITIVE: &str = "classifier_primitive";
pub const ARCHITECTURE: &str = "classifier_architecture";

#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Calibrated probability that the task is architecture-scale.
    pub score: f64,
    /// A bounded reason code (for the header and metrics).
    pub code: &'static str,
    /// Human-readable features that weighed most, strongest first.
    pub reasons: Vec<String>,
}

/// A classification with what it was made of, for `classify --explain`.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub classification: Classification,
    /// The task text the model judged (cut for display).
    pub task: String,
    pub side_call: Option<&'static str>,
    pub structure: Structure,
    /// Where the code the task needs lives (see `evidence`).
    pub evidence: Evidence,
    /// Every contribution to the logit, strongest first.
    pub contributions: Vec<(Cow<'static, str>, f64)>,
    pub logit: f64,
}

const REASONS: usize = 5;
const TASK_SHOWN: usize = 200;

pub fn classify(conv: &Conversation<'_>, cc: &CompiledClassifier) -> Classification {
    explain(conv, cc).classification
}

pub fn explain(conv: &Conversation<'_>, cc: &CompiledClassifier) -> Explanation {
    let fixed = |score: f64, code, reason: String, task: &str, side_call, logit| Explanation {
        classification: Classification {
            score,
            code,
            reasons: vec![reason],
        },
        task: super::features::cut(task, TASK_SHOWN).to_string(),
        side_call,
        structure: Structure::default(),
        evidence: Evidence::default(),
        contributions: Vec::new(),
        logit,
    };
    if conv.fim {
        return fixed(
            0.0,
            FIM,
            "fill-in-the-middle completion".into(),
            "",
            None,
            f64::NEG_INFINITY,
        );
    }
    let t = task::extract(conv);
    if cc.side_calls
        && let Some(kind) = t.side_call
    {
        return fixed(
            0.0,
            SIDE_CALL,
            format!("side call: {kind}"),
            &t.text,
            Some(kind),
            f64::NEG_INFINITY,
        );
    }
    let mut contributions: Vec<(Cow<'static, str>, f64)> = Vec::new();
    // Evidence outside the model: rule weights and structure priors.
    let mut extra = 0.0;
    let mut forced: Option<(bool, &str)> = None;
    for r in &cc.rules {
        if !r.regex.is_match(&t.text) {
            continue;
        }
        match r.effect {
            Effect::Weight(w) => {
                extra += w;
                contributions.push((format!("rule {}", r.name).into(), w));
            }
            Effect::Force { architecture } => {
                forced.get_or_insert((architecture, &r.name));
            }
        }
    }
    if let Some((architecture, name)) = forced {
        let score = if architecture { 1.0 } else { 0.0 };
        return fixed(
            score,
            RULE,
            format!("rule {name}"),
            &t.text,
            None,
            if architecture {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            },
        );
    }
    let s = cc.model.score(&t.text);
    let st = structure::of(conv);
    let ev = s.evidence_of;
    let structural = structure::priors(&st);
    let mut logit = extra + cc.bias;
    if ev.greenfield_app() {
        // The rule's case 3 alone decides; the text model is not asked (see `priors`).
        let (name, w) = priors::greenfield(s.app_parts);
        contributions.push((name.into(), w));
        logit += w;
    } else {
        for (i, c) in s.dense.iter().enumerate() {
            if *c != 0.0 {
                contributions.push((dense_name(i).into(), *c));
            }
        }
        contributions.push(("intercept".into(), s.intercept));
        contributions.push(("character n-grams".into(), s.char_total));
        contributions.push(("word n-grams".into(), s.word_total));
        for (c, w) in &s.words {
            contributions.push((format!("word \"{w}\"").into(), *c));
        }
        logit += s.logit;
        let seen = priors::Seen {
            evidence: ev,
            cues: s.evidence,
            app_parts: s.app_parts,
            structure: structural.iter().map(|(_, w)| w).sum(),
        };
        for (name, w) in priors::of(&seen) {
            contributions.push((name.into(), w));
            logit += w;
        }
    }
    for (name, w) in structural {
        contributions.push((name.into(), w));
        logit += w;
    }
    finish(&t.text, st, ev, contributions, logit, cc)
}

/// The score, the code and the reasons from the contributions and the logit.
fn finish(
    task: &str,
    st: Structure,
    ev: Evidence,
    mut contributions: Vec<(Cow<'static, str>, f64)>,
    logit: f64,
    cc: &CompiledClassifier,
) -> Explanation {
    if cc.bias != 0.0 {
        contributions.push(("policy bias".into(), cc.bias));
    }
    contributions.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    let score = sigmoid(logit);
    let code = if score >= cc.threshold {
        ARCHITECTURE
    } else {
        PRIMITIVE
    };
    let reasons = contributions
        .iter()
        .take(REASONS)
        .map(|(n, w)| format!("{n} {w:+.2}"))
        .collect();
    Explanation {
        classification: Classification {
            score,
            code,
            reasons,
        },
        task: super::features::cut(task, TASK_SHOWN).to_string(),
        side_call: None,
        structure: st,
        evidence: ev,
        contributions,
        logit,
    }
}
