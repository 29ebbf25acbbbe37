//! The classifier: a pure function from a conversation to a calibrated score in 0..1
//! (1 = architecture) and the features that weighed most.
//!
//! Order: FIM is primitive; a side call (title, compaction) is primitive; a rule that forces a
//! tier wins; otherwise score = sigmoid(model logit of the task + structure priors + rule
//! weights + policy bias).

use super::evidence::Evidence;
use super::features::dense_name;
use super::input::Conversation;
use super::model::sigmoid;
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
    pub contributions: Vec<(String, f64)>,
    pub logit: f64,
}

/// Added to the logit when neither the task's words nor its structure show any of the
/// labeling rule's reasons for architecture. A short task has few n-grams, so the model's
/// intercept and a few code words can tip it over the threshold; by the rule it is primitive.
/// Hand-set, like the structure priors: dev has few such short everyday tasks to learn it from.
pub const NO_EVIDENCE: f64 = -2.5;

/// Added to the logit when the task describes an application that needs two or more of the
/// labeling rule's parts (its own store, accounts, several users sharing data, a server): rule
/// case 3, a multi-component application. Hand-set like `NO_EVIDENCE`: dev's other sources
/// have too few such apps for the model to learn it, and one part alone stays the model's call
/// (the rule's ambiguous "small app that may need storage or accounts").
pub const MULTI_COMPONENT_APP: f64 = 2.0;

/// Added to the logit when the task opens by asking for one artifact (a function, a script, a
/// component, a query: see `artifact`), the rule's primitive case whatever the artifact
/// touches. The model reads "login" or "database" as architecture cues; an endpoint that
/// uses them is still one artifact. Hand-set like `NO_EVIDENCE`, and it stands in the way
/// of `MULTI_COMPONENT_APP`: an artifact is not an application.
pub const ONE_ARTIFACT: f64 = -2.0;

/// Added to the logit when the task is a project's issue: a named project (slug, issue
/// number, a name before the colon, a version, an issue template, a stack trace through its
/// modules) asked for a change or reported misbehaving, or a product misbehaving with none of
/// its code in the prompt (see `evidence`). Rule case 2: the repository is not in the prompt.
/// Hand-set like `NO_EVIDENCE`: how a source writes its issues must not decide it.
pub const PROJECT_ISSUE: f64 = 2.5;

/// Added to the logit when the task is a question for the assistant, or one artifact, about a
/// language or a named library and names no project of its own and no team ("pydantic v2:
/// how do I...", "How do I mock `datetime.now()`?"): answered from the public API.
pub const API_QUESTION: f64 = -2.0;

/// How much structure evidence (see `structure::priors`) says a repository is at hand.
const STRUCTURE_EVIDENCE: f64 = 0.8;

const REASONS: usize = 5;
const TASK_SHOWN: usize = 200;

pub fn classify(conv: &Conversation<'_>, cc: &CompiledClassifier) -> Classification {
    explain(conv, cc).classification
}

fn knob(name: &str, d: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
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
    let mut contributions: Vec<(String, f64)> = Vec::new();
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
                contributions.push((format!("rule {}", r.name), w));
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
    for (i, c) in s.dense.iter().enumerate() {
        if *c != 0.0 {
            contributions.push((dense_name(i).to_string(), *c));
        }
    }
    contributions.push(("intercept".into(), s.intercept));
    contributions.push(("character n-grams".into(), s.char_total));
    contributions.push(("word n-grams".into(), s.word_total));
    for (c, w) in &s.words {
        contributions.push((format!("word \"{w}\""), *c));
    }
    let st = structure::of(conv);
    let priors = structure::priors(&st);
    let ev = s.evidence_of;
    // Structure that is real evidence of a repository (many files, a diff across files, a
    // map) stands in the way of the priors below; a couple of files shown to an editor do not.
    let repo_structure = priors.iter().map(|(_, w)| w).sum::<f64>() >= STRUCTURE_EVIDENCE;
    if s.evidence == 0 && !ev.outside() && !repo_structure {
        extra += NO_EVIDENCE;
        contributions.push(("no architecture evidence".into(), NO_EVIDENCE));
    }
    let one_artifact = !repo_structure && ev.one_artifact();
    if one_artifact {
        let w = if ev.artifact.about_code && !ev.artifact.named {
            knob("TG_HO", ONE_ARTIFACT)
        } else {
            knob("TG_OA", ONE_ARTIFACT)
        };
        extra += w;
        contributions.push(("one artifact asked for".into(), w));
    }
    let issue = ev.project_issue() || ev.product_defect() || ev.codebase_work();
    if issue {
        extra += knob("TG_PI", PROJECT_ISSUE);
        contributions.push(("a project's issue".into(), knob("TG_PI", PROJECT_ISSUE)));
    }
    if !issue && !one_artifact && !repo_structure && (ev.plain_question() || ev.library_question())
    {
        extra += knob("TG_AQ", API_QUESTION);
        contributions.push((
            "a question about an API".into(),
            knob("TG_AQ", API_QUESTION),
        ));
    }
    if s.app_parts >= 2 && !one_artifact {
        extra += MULTI_COMPONENT_APP;
        contributions.push(("multi-component application".into(), MULTI_COMPONENT_APP));
    }
    for (name, w) in priors {
        extra += w;
        contributions.push((name.to_string(), w));
    }
    let logit = s.logit + extra + cc.bias;
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
        task: super::features::cut(&t.text, TASK_SHOWN).to_string(),
        side_call: None,
        structure: st,
        evidence: ev,
        contributions,
        logit,
    }
}
