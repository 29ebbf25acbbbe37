//! Quality metric families added after the first ones (which live in `crate::metrics`), and
//! their zero series for the policy's tiers and upstreams.

use prometheus::{IntCounterVec, Registry};

use crate::config::Policy;
use crate::metrics::{Metrics, counter};
use crate::proxy::holdback::Outcome;

#[derive(Clone)]
pub struct QualityMetrics {
    /// tier, upstream (the one held), outcome (`holdback::Outcome`)
    pub hold_backs: IntCounterVec,
    /// tier, reason (`UNCHECKED`): chat-shaped answers the checks did not read
    pub answers_unchecked: IntCounterVec,
}

/// Why an answer was not checked: over the tier's `checks_per_second`, or a stream longer
/// than the copy the checks keep.
pub const UNCHECKED: [&str; 2] = ["budget", "too_long"];

impl QualityMetrics {
    pub fn new(r: &Registry) -> Self {
        QualityMetrics {
            hold_backs: counter(
                r,
                "tiergate_hold_backs_total",
                "Streams held back before their first byte (a tier's hold_back), by how the hold ended.",
                &["tier", "upstream", "outcome"],
            ),
            answers_unchecked: counter(
                r,
                "tiergate_answers_unchecked_total",
                "Chat-shaped answers the answer checks did not read (budget: over the tier's checks_per_second; too_long: a stream over the copy's bound).",
                &["tier", "reason"],
            ),
        }
    }

    /// Zero series of the quality counters for every tier and the upstreams of its route
    /// (a count of nothing yet is a true zero; the ratio gauges are left out: a ratio of no
    /// comparison is no figure). Shadow and judge counts carry the client `other`.
    pub fn preset(&self, m: &Metrics, policy: &Policy) {
        for tier in &policy.tiers {
            let t = tier.name.as_str();
            for r in UNCHECKED {
                self.answers_unchecked.with_label_values(&[t, r]);
            }
            for &u in &tier.upstreams {
                let u = policy.upstreams[u].name.as_str();
                for o in Outcome::ALL {
                    self.hold_backs.with_label_values(&[t, u, o.label()]);
                }
                m.shadow_cost_usd.with_label_values(&[t, u]);
            }
            for r in ["agree", "disagree"] {
                m.shadow_comparisons.with_label_values(&[t, "other", r]);
            }
            for v in ["win", "loss"] {
                m.judge_verdicts.with_label_values(&[t, "other", v]);
            }
        }
        for up in &policy.upstreams {
            m.judge_cost_usd.with_label_values(&[&up.name]);
        }
    }
}
