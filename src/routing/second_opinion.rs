//! The second opinion on uncertain decisions (`classifier.second_opinion`): which decisions
//! ask for one, the short classification prompt, how its answer is read, and what it does
//! to the decision. Pure; the call itself is made by the proxy (`proxy::second_opinion`).

use std::time::Duration;

use serde_json::{Value, json};

use super::classifier::{ARCHITECTURE, PRIMITIVE};
use super::decide::{Decision, Routes};
use super::features::cut;
use super::policy::SecondOpinionConfig;
use super::rules::RuleError;

/// The reason code of a decision the second opinion changed.
pub const REASON: &str = "second_opinion";

/// The compiled `classifier.second_opinion`.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondOpinion {
    pub upstream: usize,
    pub band: (f64, f64),
    pub deadline: Duration,
    pub max_tokens: u64,
}

/// What became of one decision's second opinion (the metric's `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Agreed,
    Overturned,
    Timeout,
    /// The call failed, or its answer was neither word.
    Error,
    /// The request's data may not go to the upstream (a secret, a `local_only` key, a key
    /// not allowed there), or the upstream is disabled.
    Skipped,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Agreed,
        Outcome::Overturned,
        Outcome::Timeout,
        Outcome::Error,
        Outcome::Skipped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Agreed => "agreed",
            Outcome::Overturned => "overturned",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The longest answer the policy may ask for: the answer is one word.
const MAX_TOKENS: u64 = 64;

/// Validates the section; `upstream_index` resolves names, `default_upstream` is the
/// primitive tier's first upstream, `uncertain_band` the classifier's compiled band.
pub fn compile(
    cfg: &SecondOpinionConfig,
    uncertain_band: (f64, f64),
    upstream_index: impl Fn(&str) -> Option<usize>,
    default_upstream: usize,
) -> Result<SecondOpinion, RuleError> {
    let err = |key: &str, message: String| RuleError {
        path: ["classifier", "second_opinion", key]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        message,
    };
    let upstream = match &cfg.upstream {
        None => default_upstream,
        Some(name) => upstream_index(name).ok_or_else(|| {
            err(
                "upstream",
                format!("classifier.second_opinion.upstream: no upstream named {name}"),
            )
        })?,
    };
    let band = match cfg.band {
        None => uncertain_band,
        Some(b) if b.iter().all(|v| (0.0..=1.0).contains(v)) && b[0] <= b[1] => (b[0], b[1]),
        Some(_) => {
            return Err(err(
                "band",
                "classifier.second_opinion.band: give [low, high] within 0..1, low <= high".into(),
            ));
        }
    };
    if cfg.deadline.is_zero() {
        return Err(err(
            "deadline",
            "classifier.second_opinion.deadline must be longer than zero".into(),
        ));
    }
    if cfg.max_tokens == 0 || cfg.max_tokens > MAX_TOKENS {
        return Err(err(
            "max_tokens",
            format!("classifier.second_opinion.max_tokens must be within 1..{MAX_TOKENS}"),
        ));
    }
    Ok(SecondOpinion {
        upstream,
        band,
        deadline: cfg.deadline,
        max_tokens: cfg.max_tokens,
    })
}

/// Whether this decision asks for a second opinion: the learned score decided it (not a
/// rule, FIM or a side call) and the score is inside the band.
pub fn wanted(so: &SecondOpinion, d: &Decision) -> bool {
    let scored = d.reason == PRIMITIVE || d.reason == ARCHITECTURE;
    scored && d.score.is_some_and(|s| s >= so.band.0 && s <= so.band.1)
}

/// How much of the task the prompt carries: the opening says what is asked, and a small
/// local model reads about 70 prompt tokens a second on one CPU core.
pub const TASK_BYTES: usize = 1000;

/// LABELING.md's question and its three reasons, in two sentences, then the answer's form.
/// Fixed text first, so that a server with a prompt cache reads it once.
const SYSTEM: &str = "Answer PRIMITIVE if a competent model could fully satisfy the request \
by producing one self-contained artifact (one function, class or small module, script, page, \
regex or query) using only what is in the request. Answer ARCHITECTURE if it needs a \
system-level design or technology decision, work inside an existing codebase or named project \
that the request does not contain (a bug report or feature request against a project, a \
migration, a cross-module refactor), or a multi-component application built from scratch. \
Reply with one word: PRIMITIVE or ARCHITECTURE.";

/// The classification request (an OpenAI chat body without `model`): the task cut to
/// `TASK_BYTES`, temperature 0, `max_tokens` small.
pub fn request(task: &str, max_tokens: u64) -> Value {
    let task = cut(task.trim(), TASK_BYTES);
    json!({
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": format!(
                "Request:\n<<<\n{task}\n>>>\nOne word, PRIMITIVE or ARCHITECTURE:"
            )},
        ],
        "temperature": 0,
        "max_tokens": max_tokens,
    })
}

/// The answer's verdict (true: architecture) when it names exactly one of the two words,
/// in any case and any markup; None otherwise.
pub fn parse(answer: &str) -> Option<bool> {
    let lower = answer.to_ascii_lowercase();
    // A cut-off word counts: max_tokens is small.
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 4)
        .collect();
    let prim = words.iter().any(|w| "primitive".starts_with(w));
    let arch = words.iter().any(|w| "architecture".starts_with(w));
    match (prim, arch) {
        (true, false) => Some(false),
        (false, true) => Some(true),
        _ => None,
    }
}

/// Applies a verdict: the tier it names, and `REASON` when that changes the tier.
pub fn apply<P: Routes + ?Sized>(policy: &P, d: &mut Decision, architecture: bool) -> Outcome {
    let tier = if architecture {
        policy.architecture_tier()
    } else {
        policy.primitive_tier()
    };
    if tier == d.tier {
        return Outcome::Agreed;
    }
    d.tier = tier;
    d.reason = REASON;
    Outcome::Overturned
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_POLICY, Policy, parse as parse_policy};

    fn so() -> SecondOpinion {
        SecondOpinion {
            upstream: 0,
            band: (0.25, 0.6),
            deadline: Duration::from_millis(400),
            max_tokens: 4,
        }
    }

    fn decision(score: f64, reason: &'static str) -> Decision {
        Decision {
            tier: 0,
            upstream: None,
            score: Some(score),
            uncertain: true,
            reason,
            reasons: Vec::new(),
        }
    }

    #[test]
    fn answers_are_read_by_the_one_word_they_name() {
        for (a, v) in [
            ("PRIMITIVE", Some(false)),
            ("ARCHITECTURE", Some(true)),
            (" architecture.\n", Some(true)),
            ("**Primitive**", Some(false)),
            ("The answer is: ARCHITECTURE", Some(true)),
            ("ARCHIT", Some(true)),
            ("PRIM", Some(false)),
            ("", None),
            ("yes", None),
            ("PRIMITIVE or ARCHITECTURE", None),
            ("arc", None),
            ("architectural", None),
        ] {
            assert_eq!(parse(a), v, "{a:?}");
        }
    }

    #[test]
    fn the_prompt_is_bounded_and_deterministic() {
        let long = "é".repeat(5000);
        let r = request(&long, 4);
        let user = r["messages"][1]["content"].as_str().unwrap();
        assert!(user.len() <= TASK_BYTES + 80, "{}", user.len());
        assert_eq!(r["temperature"], 0);
        assert_eq!(r["max_tokens"], 4);
        assert!(r.get("model").is_none());
        let sys = r["messages"][0]["content"].as_str().unwrap();
        assert!(sys.contains("PRIMITIVE or ARCHITECTURE"));
        let short = request("  fix this regex  ", 3);
        assert!(
            short["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("<<<\nfix this regex\n>>>")
        );
    }

    #[test]
    fn only_scored_decisions_inside_the_band_ask() {
        let s = so();
        assert!(wanted(&s, &decision(0.3, PRIMITIVE)));
        assert!(wanted(&s, &decision(0.6, ARCHITECTURE)));
        assert!(!wanted(&s, &decision(0.61, ARCHITECTURE)));
        assert!(!wanted(&s, &decision(0.1, PRIMITIVE)));
        // Forced decisions and explicit choices never ask.
        assert!(!wanted(&s, &decision(0.3, "rule")));
        let mut explicit = decision(0.3, "header");
        explicit.score = None;
        assert!(!wanted(&s, &explicit));
    }

    #[test]
    fn a_verdict_moves_the_tier_and_says_so() {
        let p: Policy = parse_policy("default", DEFAULT_POLICY, |_| None).unwrap();
        let mut d = decision(0.3, PRIMITIVE);
        d.tier = p.primitive_tier;
        assert_eq!(apply(&p, &mut d, false), Outcome::Agreed);
        assert_eq!((d.tier, d.reason), (p.primitive_tier, PRIMITIVE));
        assert_eq!(apply(&p, &mut d, true), Outcome::Overturned);
        assert_eq!((d.tier, d.reason), (p.architecture_tier, REASON));
    }

    #[test]
    fn the_section_is_checked() {
        let cfg =
            |band: Option<[f64; 2]>, up: Option<&str>, ms: u64, max: u64| SecondOpinionConfig {
                upstream: up.map(Into::into),
                band,
                deadline: Duration::from_millis(ms),
                max_tokens: max,
            };
        let index = |n: &str| (n == "judge").then_some(3);
        let ok = compile(&cfg(None, None, 400, 4), (0.2, 0.5), index, 0).unwrap();
        assert_eq!((ok.upstream, ok.band), (0, (0.2, 0.5)));
        let ok = compile(
            &cfg(Some([0.3, 0.4]), Some("judge"), 1, 1),
            (0.2, 0.5),
            index,
            0,
        );
        assert_eq!(ok.unwrap().upstream, 3);
        for (bad, key) in [
            (cfg(Some([0.6, 0.4]), None, 400, 4), "band"),
            (cfg(Some([-0.1, 0.4]), None, 400, 4), "band"),
            (cfg(None, Some("nope"), 400, 4), "upstream"),
            (cfg(None, None, 0, 4), "deadline"),
            (cfg(None, None, 400, 0), "max_tokens"),
            (cfg(None, None, 400, 65), "max_tokens"),
        ] {
            let e = compile(&bad, (0.2, 0.5), index, 0).unwrap_err();
            assert_eq!(e.path.last().map(String::as_str), Some(key), "{e:?}");
        }
    }
}
