//! The live page's quality figures, read from the same registry as the rest of `Stats`:
//! answer check pass rates per route, escalations by reason, feedback, shadow agreement,
//! judge win rate, held-back streams and probe scores. Rates are over counts since start.

use std::collections::BTreeMap;

use serde::Serialize;

use super::stats::Samples;
use crate::config::Policy;

#[derive(Debug, Clone, Default, Serialize)]
pub struct QualityStats {
    /// One per tier and upstream whose answers were checked.
    pub checks: Vec<CheckStats>,
    /// Escalations by reason (the check that failed, or `unrepaired_tool_call`).
    pub escalations: BTreeMap<String, u64>,
    pub feedback: FeedbackStats,
    /// One per tier with shadow comparisons.
    pub shadow: Vec<ShadowStats>,
    /// Held-back streams by outcome.
    pub hold_backs: BTreeMap<String, u64>,
    /// One per probed upstream.
    pub probe: Vec<ProbeStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckStats {
    pub tier: String,
    pub upstream: String,
    pub passed: u64,
    pub failed: u64,
    /// passed / (passed + failed); None before the first verdict.
    pub pass_rate: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FeedbackStats {
    pub up: u64,
    pub down: u64,
    /// Mean rating in [0, 1]; None before the first.
    pub mean_score: Option<f64>,
    pub retries: u64,
    pub overrides: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShadowStats {
    pub tier: String,
    pub comparisons: u64,
    pub agreement: Option<f64>,
    pub verdicts: u64,
    pub win_rate: Option<f64>,
    pub shadow_cost_usd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeStats {
    pub upstream: String,
    pub tasks: usize,
    pub mean_score: f64,
    pub min_score: f64,
}

fn share(hits: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| hits as f64 / of as f64)
}

/// Counts of `name` per value of `label`, zeros left out.
fn by(s: &Samples, name: &str, label: &str) -> BTreeMap<String, u64> {
    s.values(name, &[], label)
        .into_iter()
        .map(|v| {
            let n = s.count(name, &[(label, &v)]);
            (v, n)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

impl QualityStats {
    pub fn build(policy: &Policy, s: &Samples) -> QualityStats {
        const CHECKS: &str = "tiergate_answer_checks_total";
        let mut checks = Vec::new();
        for t in &policy.tiers {
            for &u in &t.upstreams {
                let up = policy.upstreams[u].name.as_str();
                let f = |r| [("tier", t.name.as_str()), ("upstream", up), ("result", r)];
                let (passed, failed) = (s.count(CHECKS, &f("pass")), s.count(CHECKS, &f("fail")));
                if passed + failed > 0 {
                    checks.push(CheckStats {
                        tier: t.name.clone(),
                        upstream: up.to_string(),
                        passed,
                        failed,
                        pass_rate: share(passed, passed + failed),
                    });
                }
            }
        }
        let rated = s.count("tiergate_feedback_total", &[]);
        let feedback = FeedbackStats {
            up: s.count("tiergate_feedback_total", &[("rating", "up")]),
            down: s.count("tiergate_feedback_total", &[("rating", "down")]),
            mean_score: (rated > 0)
                .then(|| s.sum("tiergate_feedback_score_total", &[]) / rated as f64),
            retries: s.count("tiergate_implicit_feedback_total", &[("signal", "retry")]),
            overrides: s.count(
                "tiergate_implicit_feedback_total",
                &[("signal", "override")],
            ),
        };
        let shadow = policy
            .tiers
            .iter()
            .filter_map(|t| {
                let tier = [("tier", t.name.as_str())];
                let c = "tiergate_shadow_comparisons_total";
                let v = "tiergate_judge_verdicts_total";
                let comparisons = s.count(c, &tier);
                let verdicts = s.count(v, &tier);
                (comparisons > 0).then(|| ShadowStats {
                    tier: t.name.clone(),
                    comparisons,
                    agreement: share(s.count(c, &[tier[0], ("result", "agree")]), comparisons),
                    verdicts,
                    win_rate: share(s.count(v, &[tier[0], ("verdict", "win")]), verdicts),
                    shadow_cost_usd: s.sum("tiergate_shadow_cost_usd_total", &tier),
                })
            })
            .collect();
        let probe = s
            .values("tiergate_probe_score", &[], "upstream")
            .into_iter()
            .map(|u| {
                let scores = s.all("tiergate_probe_score", &[("upstream", &u)]);
                let n = scores.len().max(1) as f64;
                ProbeStats {
                    mean_score: scores.iter().sum::<f64>() / n,
                    min_score: scores.iter().copied().fold(f64::INFINITY, f64::min),
                    tasks: scores.len(),
                    upstream: u,
                }
            })
            .collect();
        QualityStats {
            checks,
            escalations: by(s, "tiergate_escalations_total", "reason"),
            feedback,
            shadow,
            hold_backs: by(s, "tiergate_hold_backs_total", "outcome"),
            probe,
        }
    }
}
