//! Quality metric families added after the first ones (which live in `crate::metrics`), and
//! their zero series for the policy's tiers and upstreams.

use prometheus::{IntCounterVec, Registry};

use crate::config::Policy;
use crate::metrics::counter;
use crate::proxy::holdback::Outcome;

#[derive(Clone)]
pub struct QualityMetrics {
    /// tier, upstream (the one held), outcome (`holdback::Outcome`)
    pub hold_backs: IntCounterVec,
}

impl QualityMetrics {
    pub fn new(r: &Registry) -> Self {
        QualityMetrics {
            hold_backs: counter(
                r,
                "tiergate_hold_backs_total",
                "Streams held back before their first byte (a tier's hold_back), by how the hold ended.",
                &["tier", "upstream", "outcome"],
            ),
        }
    }

    /// Zero series for the tiers that hold streams back, for each upstream of their route
    /// but the last (the last one has nowhere to escalate to, so it is never held).
    pub fn preset(&self, policy: &Policy) {
        for tier in &policy.tiers {
            if tier.quality.hold_back.is_none() {
                continue;
            }
            let held = tier.upstreams.len().saturating_sub(1);
            for &u in &tier.upstreams[..held] {
                for o in Outcome::ALL {
                    self.hold_backs.with_label_values(&[
                        &tier.name,
                        &policy.upstreams[u].name,
                        o.label(),
                    ]);
                }
            }
        }
    }
}
