//! Typed metric handles on an explicit registry. Labels are bounded: tier and upstream come
//! from the policy, the rest from fixed vocabularies; never a user, a key or prompt text.

mod preset;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];
const CHUNK_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub struct Metrics {
    pub registry: Registry,
    /// endpoint, tier, upstream, status_class, client
    pub requests: IntCounterVec,
    /// tier, upstream, stream
    pub duration: HistogramVec,
    /// tier, upstream
    pub ttft: HistogramVec,
    /// tier, upstream
    pub chunk_gap: HistogramVec,
    /// tier
    pub overhead: HistogramVec,
    /// tier, upstream, source (reported | estimated)
    pub input_tokens: IntCounterVec,
    pub output_tokens: IntCounterVec,
    /// tier, upstream
    pub cached_tokens: IntCounterVec,
    /// tier, upstream
    pub cost_usd: prometheus::CounterVec,
    pub reference_cost_usd: prometheus::CounterVec,
    pub avoided_cost_usd: prometheus::CounterVec,
    /// tier, reason
    pub decisions: IntCounterVec,
    /// from, to, reason
    pub fallbacks: IntCounterVec,
    /// upstream, outcome (repaired | failed)
    pub tool_call_repairs: IntCounterVec,
    /// from, to, reason
    pub escalations: IntCounterVec,
    /// upstream, type
    pub upstream_errors: IntCounterVec,
    pub in_flight: IntGauge,
    /// upstream
    pub upstream_in_flight: IntGaugeVec,
    /// upstream
    pub upstream_up: GaugeVec,
    /// upstream: 0 closed, 1 open, 2 half-open
    pub circuit_state: IntGaugeVec,
    /// upstream, from, to
    pub circuit_transitions: IntCounterVec,
    /// upstream, reason
    pub retries: IntCounterVec,
    /// upstream
    pub retries_denied: IntCounterVec,
    /// tier, upstream, reason (broken | idle_timeout | total_timeout)
    pub stream_errors: IntCounterVec,
    /// upstream, outcome (up | down)
    pub health_checks: IntCounterVec,
    /// Governance: the team label comes from the policy (its teams and its keys' teams) or
    /// is `none` for requests without a key; never a key or a key's name.
    pub team: crate::govern::metrics::TeamMetrics,
    /// Quality families kept apart (hold-back, ...).
    pub quality: crate::quality::metrics::QualityMetrics,
    /// rule, action (local | block)
    pub secrets: IntCounterVec,
    /// 1 while the state store (Redis, or memory) answers; 0 while failing.
    pub state_backend_up: IntGauge,
    /// reason (missing | unknown | admin)
    pub auth_failures: IntCounterVec,
    /// tier, upstream, check, result (pass | fail)
    pub answer_checks: IntCounterVec,
    /// tier, upstream, rating (up | down)
    pub feedback: IntCounterVec,
    /// tier, upstream: sum of ratings (up 1, down 0, or the number given)
    pub feedback_score: prometheus::CounterVec,
    /// tier, upstream, signal (retry | override): of the answer before
    pub implicit_feedback: IntCounterVec,
    /// upstream, task: the last scheduled probe's score (0..1)
    pub probe_score: GaugeVec,
    /// upstream: spend of the scheduled probe
    pub probe_cost_usd: prometheus::CounterVec,
    /// tier, client, result (agree | disagree)
    pub shadow_comparisons: IntCounterVec,
    /// tier, client: agreements over comparisons so far
    pub shadow_agreement: GaugeVec,
    /// tier, upstream (the shadow's)
    pub shadow_cost_usd: prometheus::CounterVec,
    /// tier, client, verdict (win | loss)
    pub judge_verdicts: IntCounterVec,
    /// tier, client: wins over verdicts so far
    pub judge_win: GaugeVec,
    /// upstream (the judge)
    pub judge_cost_usd: prometheus::CounterVec,
    /// tier, upstream (the one asked second), outcome (won | lost | failed)
    pub hedges: IntCounterVec,
    /// The classifier's score, uncertain decisions and second opinions, by tier.
    pub classifier: crate::routing::metrics::ClassifierMetrics,
}

pub(crate) fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    reg(
        r,
        GaugeVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

fn reg<T: prometheus::core::Collector + Clone + Sample + 'static>(r: &Registry, m: T) -> T {
    // Registration fails only on a duplicate name, which the fixed set below rules out.
    let _ = r.register(Box::new(m.clone()));
    #[cfg(test)]
    {
        let family = m.clone();
        SAMPLERS.with(|s| s.borrow_mut().push(Box::new(move || family.sample())));
    }
    m
}

/// A way to give a family one sample, so that a test sees every family (the registry hides
/// families without one).
trait Sample {
    #[cfg_attr(not(test), allow(dead_code))]
    fn sample(&self);
}

impl<P: prometheus::core::MetricVecBuilder> Sample for prometheus::core::MetricVec<P> {
    fn sample(&self) {
        use prometheus::core::Collector;
        let n = self.desc().first().map_or(0, |d| d.variable_labels.len());
        let _ = self.with_label_values(&vec!["x"; n]);
    }
}

impl Sample for IntGauge {
    fn sample(&self) {}
}

#[cfg(test)]
thread_local! {
    /// One sampler per family registered on this thread.
    static SAMPLERS: std::cell::RefCell<Vec<Box<dyn Fn()>>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(crate) fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(
        r,
        IntCounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

pub(crate) fn fcounter(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::CounterVec {
    reg(
        r,
        prometheus::CounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

pub(crate) fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    reg(
        r,
        HistogramVec::new(opts, labels).unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

impl Metrics {
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        // Every name, label set and bucket list below is a constant: construction cannot fail.
        let r = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new("tiergate_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        reg(&r, build);
        Metrics {
            requests: counter(
                &r,
                "tiergate_requests_total",
                "Requests answered, by endpoint, tier, upstream, status class and client.",
                &["endpoint", "tier", "upstream", "status_class", "client"],
            ),
            duration: histogram(
                &r,
                "tiergate_request_duration_seconds",
                "Time from request to the end of the response (the whole stream for streams).",
                &["tier", "upstream", "stream"],
                LATENCY_BUCKETS,
            ),
            ttft: histogram(
                &r,
                "tiergate_time_to_first_token_seconds",
                "Time from request to the first streamed event carrying output.",
                &["tier", "upstream"],
                LATENCY_BUCKETS,
            ),
            chunk_gap: histogram(
                &r,
                "tiergate_time_between_chunks_seconds",
                "Time between consecutive streamed events (events read together: 0).",
                &["tier", "upstream"],
                CHUNK_BUCKETS,
            ),
            overhead: histogram(
                &r,
                "tiergate_gateway_overhead_seconds",
                "Time spent in the gateway itself: total minus time waiting on the upstream.",
                &["tier"],
                OVERHEAD_BUCKETS,
            ),
            input_tokens: counter(
                &r,
                "tiergate_input_tokens_total",
                "Prompt tokens, as reported by the upstream or estimated when it reports none.",
                &["tier", "upstream", "source"],
            ),
            output_tokens: counter(
                &r,
                "tiergate_output_tokens_total",
                "Completion tokens, as reported by the upstream or estimated when it reports none.",
                &["tier", "upstream", "source"],
            ),
            cached_tokens: counter(
                &r,
                "tiergate_cached_input_tokens_total",
                "Prompt tokens served from the upstream's cache (a subset of input tokens).",
                &["tier", "upstream"],
            ),
            cost_usd: fcounter(
                &r,
                "tiergate_cost_usd_total",
                "Spend in US dollars at the policy's prices.",
                &["tier", "upstream"],
            ),
            reference_cost_usd: fcounter(
                &r,
                "tiergate_reference_cost_usd_total",
                "What the same tokens would have cost on the policy's reference upstream.",
                &["tier", "upstream"],
            ),
            avoided_cost_usd: fcounter(
                &r,
                "tiergate_avoided_cost_usd_total",
                "Reference cost minus actual cost, per request, where positive.",
                &["tier", "upstream"],
            ),
            decisions: counter(
                &r,
                "tiergate_routing_decisions_total",
                "Routing decisions by tier and reason code.",
                &["tier", "reason"],
            ),
            fallbacks: counter(
                &r,
                "tiergate_fallbacks_total",
                "Requests moved from one upstream to the next.",
                &["from", "to", "reason"],
            ),
            tool_call_repairs: counter(
                &r,
                "tiergate_tool_call_repairs_total",
                "Tool calls a local model wrote as text, by outcome (repaired into tool_calls, or failed).",
                &["upstream", "outcome"],
            ),
            escalations: counter(
                &r,
                "tiergate_escalations_total",
                "Requests sent on to the tier's next upstream after an answer that could not be used.",
                &["from", "to", "reason"],
            ),
            upstream_errors: counter(
                &r,
                "tiergate_upstream_errors_total",
                "Failed upstream attempts by type.",
                &["upstream", "type"],
            ),
            in_flight: reg(
                &r,
                IntGauge::new("tiergate_requests_in_flight", "Requests being handled.")
                    .expect("valid metric"),
            ),
            upstream_in_flight: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "tiergate_upstream_requests_in_flight",
                        "Requests being handled by each upstream.",
                    ),
                    &["upstream"],
                )
                .expect("valid metric"),
            ),
            upstream_up: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "tiergate_upstream_up",
                        "1 when the upstream is enabled and routable, else 0.",
                    ),
                    &["upstream"],
                )
                .expect("valid metric"),
            ),
            circuit_state: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "tiergate_circuit_state",
                        "Circuit breaker state per upstream: 0 closed, 1 open, 2 half-open.",
                    ),
                    &["upstream"],
                )
                .expect("valid metric"),
            ),
            circuit_transitions: counter(
                &r,
                "tiergate_circuit_transitions_total",
                "Circuit breaker state changes.",
                &["upstream", "from", "to"],
            ),
            retries: counter(
                &r,
                "tiergate_retries_total",
                "Attempts repeated at the same upstream, by the failure that caused them.",
                &["upstream", "reason"],
            ),
            retries_denied: counter(
                &r,
                "tiergate_retries_denied_total",
                "Retries not made because the upstream's retry budget was spent.",
                &["upstream"],
            ),
            stream_errors: counter(
                &r,
                "tiergate_stream_errors_total",
                "Streams ended with an error event after their first byte, by reason.",
                &["tier", "upstream", "reason"],
            ),
            health_checks: counter(
                &r,
                "tiergate_health_checks_total",
                "Active health checks by outcome.",
                &["upstream", "outcome"],
            ),
            team: crate::govern::metrics::TeamMetrics::new(&r),
            quality: crate::quality::metrics::QualityMetrics::new(&r),
            secrets: counter(
                &r,
                "tiergate_secrets_total",
                "Requests found carrying a secret, by rule and action (local | block).",
                &["rule", "action"],
            ),
            state_backend_up: reg(
                &r,
                IntGauge::new(
                    "tiergate_state_backend_up",
                    "1 while the state store for limits and budgets answers, 0 while it fails.",
                )
                .expect("valid metric"),
            ),
            auth_failures: counter(
                &r,
                "tiergate_auth_failures_total",
                "Requests refused for their key (missing | unknown | admin).",
                &["reason"],
            ),
            answer_checks: counter(
                &r,
                "tiergate_answer_checks_total",
                "Answer checks (truncated, syntax, tool_calls, page, empty) by result.",
                &["tier", "upstream", "check", "result"],
            ),
            feedback: counter(
                &r,
                "tiergate_feedback_total",
                "Client feedback (POST /v1/feedback) by the tier and upstream that answered.",
                &["tier", "upstream", "rating"],
            ),
            feedback_score: fcounter(
                &r,
                "tiergate_feedback_score_total",
                "Sum of feedback ratings (up 1, down 0, or the number given): over feedback_total, the mean.",
                &["tier", "upstream"],
            ),
            implicit_feedback: counter(
                &r,
                "tiergate_implicit_feedback_total",
                "Answers followed by the same conversation asked again (retry) or sent to the frontier by hand (override).",
                &["tier", "upstream", "signal"],
            ),
            probe_score: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "tiergate_probe_score",
                        "Score (0..1) of the last scheduled probe of each upstream on each task.",
                    ),
                    &["upstream", "task"],
                )
                .expect("valid metric"),
            ),
            shadow_comparisons: counter(
                &r,
                "tiergate_shadow_comparisons_total",
                "Shadow comparisons: both answers checked, agreeing when both pass or both fail.",
                &["tier", "client", "result"],
            ),
            shadow_agreement: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "tiergate_shadow_agreement_ratio",
                        "Share of shadow comparisons that agreed, since start.",
                    ),
                    &["tier", "client"],
                )
                .expect("valid metric"),
            ),
            shadow_cost_usd: fcounter(
                &r,
                "tiergate_shadow_cost_usd_total",
                "Spend in US dollars of shadow calls (capped per day by the policy).",
                &["tier", "upstream"],
            ),
            judge_verdicts: counter(
                &r,
                "tiergate_judge_verdicts_total",
                "Judge verdicts on shadow comparisons: win when the tier's answer is as good as the shadow's.",
                &["tier", "client", "verdict"],
            ),
            judge_win: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "tiergate_judge_win_ratio",
                        "Share of judge verdicts that were wins, since start.",
                    ),
                    &["tier", "client"],
                )
                .expect("valid metric"),
            ),
            judge_cost_usd: fcounter(
                &r,
                "tiergate_judge_cost_usd_total",
                "Spend in US dollars of judge calls (capped per day by the policy).",
                &["upstream"],
            ),
            probe_cost_usd: fcounter(
                &r,
                "tiergate_probe_cost_usd_total",
                "Spend in US dollars of the scheduled probe.",
                &["upstream"],
            ),
            hedges: counter(
                &r,
                "tiergate_hedges_total",
                "Requests also sent to the tier's next upstream while the first sent no byte, by \
                 outcome: won (its answer was used), lost (the first answered first), failed.",
                &["tier", "upstream", "outcome"],
            ),
            classifier: crate::routing::metrics::ClassifierMetrics::new(&r),
            registry: r,
        }
    }

    /// The handles governance updates itself.
    pub fn governance(&self) -> crate::govern::GovMetrics {
        crate::govern::GovMetrics {
            budget_used: self.team.budget_used_usd.clone(),
            budget_left: self.team.budget_left_usd.clone(),
            denied: self.team.denied.clone(),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Holds one unit of an in-flight gauge; gives it back when dropped, so every way out of a
/// request (answer, error, broken stream, client hang-up) lowers the gauge exactly once.
pub struct InFlight(IntGauge);

impl InFlight {
    pub fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The label value for something outside the known set (no upstream reached, no tier decided).
pub const NONE: &str = "none";

/// The status class label: `2xx`, `4xx`, `5xx`, ...
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_guard_counts_up_and_down() {
        let m = Metrics::new();
        let a = InFlight::new(m.in_flight.clone());
        let b = InFlight::new(m.in_flight.clone());
        assert_eq!(m.in_flight.get(), 2);
        drop(a);
        assert_eq!(m.in_flight.get(), 1);
        drop(b);
        assert_eq!(m.in_flight.get(), 0);
    }

    #[test]
    fn every_metric_is_prefixed_and_build_info_is_one() {
        SAMPLERS.with(|s| s.borrow_mut().clear());
        let m = Metrics::new();
        // A sample in every family first: the registry hides families without one.
        let families = SAMPLERS.with(|s| {
            let s = s.borrow();
            s.iter().for_each(|f| f());
            s.len()
        });
        let text = String::from_utf8(m.render()).unwrap();
        let rendered = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(rendered, families, "every family is rendered once sampled");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("tiergate_"), "{line}");
        }
        assert!(
            text.contains(&format!(
                "tiergate_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(0), "5xx");
    }
}
