//! The series created at zero for a policy's tiers and upstreams, before any request.

use super::Metrics;

impl Metrics {
    /// Zero series of the quality families for a tier and upstream: a pass rate with no
    /// failure yet, and no feedback yet, are figures too.
    fn preset_quality(&self, tier: &str, upstream: &str) {
        for c in crate::quality::checks::Check::ALL {
            for r in ["pass", "fail"] {
                self.answer_checks
                    .with_label_values(&[tier, upstream, c.name(), r]);
            }
        }
        for r in ["up", "down"] {
            self.feedback.with_label_values(&[tier, upstream, r]);
        }
        self.feedback_score.with_label_values(&[tier, upstream]);
        for s in ["retry", "override"] {
            self.implicit_feedback
                .with_label_values(&[tier, upstream, s]);
        }
    }

    /// Creates, at zero, the series of the policy's tiers and upstreams that the dashboard
    /// and the alerts query, so that they see zeros (not "no data") before the first request
    /// and after a reload. Series of removed tiers and upstreams keep their last values.
    pub fn preset(&self, policy: &crate::config::Policy) {
        crate::govern::metrics::preset(self, policy);
        self.classifier
            .preset(policy.tiers.iter().map(|t| t.name.as_str()));
        self.quality.preset(self, policy);
        const FAILURES: &[&str] = &[
            "connect",
            "timeout",
            "rate_limited",
            "server_error",
            "saturated",
            "broken",
            "unavailable",
        ];
        for up in &policy.upstreams {
            let u = up.name.as_str();
            self.upstream_in_flight.with_label_values(&[u]);
            self.retries_denied.with_label_values(&[u]);
            for f in FAILURES {
                self.upstream_errors.with_label_values(&[u, f]);
            }
        }
        for (t, tier) in policy.tiers.iter().enumerate() {
            let name = tier.name.as_str();
            self.overhead.with_label_values(&[name]);
            self.decisions.with_label_values(&[name, "header"]);
            if t == policy.primitive_tier {
                self.decisions
                    .with_label_values(&[name, crate::routing::classifier::PRIMITIVE]);
            }
            if t == policy.architecture_tier {
                self.decisions
                    .with_label_values(&[name, crate::routing::classifier::ARCHITECTURE]);
            }
            if policy.classifier.second_opinion.is_some()
                && (t == policy.primitive_tier || t == policy.architecture_tier)
            {
                self.decisions
                    .with_label_values(&[name, crate::routing::second_opinion::REASON]);
            }
            for (i, &up) in tier.upstreams.iter().enumerate() {
                let u = policy.upstreams[up].name.as_str();
                self.preset_route(name, u);
                self.preset_quality(name, u);
                if let Some(&next) = tier.upstreams.get(i + 1) {
                    let to = policy.upstreams[next].name.as_str();
                    for c in crate::quality::checks::Check::ALL {
                        self.escalations.with_label_values(&[u, to, c.name()]);
                    }
                    for f in FAILURES {
                        self.fallbacks.with_label_values(&[u, to, f]);
                    }
                    for outcome in ["won", "lost", "failed"] {
                        self.hedges.with_label_values(&[name, to, outcome]);
                    }
                }
            }
        }
    }

    fn preset_route(&self, tier: &str, up: &str) {
        for class in ["2xx", "4xx", "5xx"] {
            self.requests
                .with_label_values(&["chat_completions", tier, up, class, "other"]);
        }
        for stream in ["true", "false"] {
            self.duration.with_label_values(&[tier, up, stream]);
        }
        self.ttft.with_label_values(&[tier, up]);
        self.chunk_gap.with_label_values(&[tier, up]);
        for source in ["reported", "estimated"] {
            self.input_tokens.with_label_values(&[tier, up, source]);
            self.output_tokens.with_label_values(&[tier, up, source]);
        }
        self.cached_tokens.with_label_values(&[tier, up]);
        self.cost_usd.with_label_values(&[tier, up]);
        self.reference_cost_usd.with_label_values(&[tier, up]);
        self.avoided_cost_usd.with_label_values(&[tier, up]);
        for reason in ["broken", "idle_timeout", "total_timeout"] {
            self.stream_errors.with_label_values(&[tier, up, reason]);
        }
    }
}
