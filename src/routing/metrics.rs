//! The classifier's confidence as metric families: its score per decided tier and the
//! decisions inside the policy's uncertain band (`classifier.uncertain_band`), and what the
//! second opinion on them did (`classifier.second_opinion`).

use prometheus::{HistogramVec, IntCounterVec, Registry};

use super::decide::Decision;
use super::second_opinion::Outcome;
use crate::metrics::{counter, histogram};

/// Score buckets in twentieths: fine enough to see the band and the threshold.
const SCORE_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
    0.9, 0.95, 1.0,
];

#[derive(Clone)]
pub struct ClassifierMetrics {
    /// tier
    pub score: HistogramVec,
    /// tier
    pub uncertain: IntCounterVec,
    /// tier (the final one), outcome
    pub second_opinions: IntCounterVec,
}

impl ClassifierMetrics {
    pub fn new(r: &Registry) -> Self {
        ClassifierMetrics {
            score: histogram(
                r,
                "tiergate_classifier_score",
                "The classifier's score (0 primitive .. 1 architecture) of the requests it routed, by the tier it decided.",
                &["tier"],
                SCORE_BUCKETS,
            ),
            uncertain: counter(
                r,
                "tiergate_classifier_uncertain_total",
                "Classifier decisions whose score fell inside the policy's uncertain band, by the tier decided.",
                &["tier"],
            ),
            second_opinions: counter(
                r,
                "tiergate_classifier_second_opinions_total",
                "Second opinions on decisions inside classifier.second_opinion.band, by the final tier and outcome (agreed, overturned, timeout, error, skipped).",
                &["tier", "outcome"],
            ),
        }
    }

    /// The series of every tier, at zero.
    pub fn preset<'a>(&self, tiers: impl Iterator<Item = &'a str>) {
        for tier in tiers {
            self.score.with_label_values(&[tier]);
            self.uncertain.with_label_values(&[tier]);
            for o in Outcome::ALL {
                self.second_opinions.with_label_values(&[tier, o.label()]);
            }
        }
    }

    /// A decision the classifier made (`auto`); explicit choices have no score.
    pub fn observe(&self, tier: &str, decision: &Decision) {
        let Some(score) = decision.score else { return };
        self.score.with_label_values(&[tier]).observe(score);
        if decision.uncertain {
            self.uncertain.with_label_values(&[tier]).inc();
        }
    }

    /// One second opinion; `tier` is the tier the request went to.
    pub fn second_opinion(&self, tier: &str, outcome: Outcome) {
        self.second_opinions
            .with_label_values(&[tier, outcome.label()])
            .inc();
    }
}
