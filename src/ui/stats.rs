//! What the live page and `tiergate demo` show, read from the gateway's own metrics
//! registry: requests, tokens, spend against the all-frontier reference, latency per tier and
//! route, upstream health. Latency quantiles are estimated from histogram buckets the way
//! Prometheus' `histogram_quantile` does it.

use std::collections::BTreeMap;

use prometheus::proto::{MetricFamily, MetricType};
use serde::Serialize;

use super::recent::Entry;
use crate::config::{Policy, UpstreamKind};

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// The upstream whose prices define the all-frontier counterfactual.
    pub reference_upstream: Option<String>,
    pub show_prompts: bool,
    pub totals: Totals,
    pub tiers: Vec<TierStats>,
    pub upstreams: Vec<UpstreamStats>,
    /// Newest first.
    pub recent: Vec<Entry>,
    pub quality: super::quality::QualityStats,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub in_flight: i64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// What the same tokens would have cost on the reference upstream.
    pub reference_cost_usd: f64,
    /// Reference cost minus actual cost.
    pub savings_usd: f64,
    /// Savings as a share of the reference cost (None while it is zero).
    pub savings_ratio: Option<f64>,
    pub fallbacks: u64,
    pub escalations: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub requests: u64,
    /// Answers that were not 2xx.
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub reference_cost_usd: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_seconds: Option<f64>,
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub ttft_p50_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierStats {
    pub name: String,
    #[serde(flatten)]
    pub usage: Usage,
    pub latency: Latency,
    /// One per upstream that answered requests of this tier (`none`: the gateway's own errors).
    pub routes: Vec<RouteStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteStats {
    pub upstream: String,
    #[serde(flatten)]
    pub usage: Usage,
    pub latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamStats {
    pub name: String,
    pub kind: &'static str,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// `tiergate_upstream_up`.
    pub up: bool,
    pub in_flight: i64,
    pub requests: u64,
    /// Failed attempts by type (`tiergate_upstream_errors_total`).
    pub errors: BTreeMap<String, u64>,
    /// Requests moved on from this upstream to the next.
    pub fallbacks_from: u64,
}

/// One labelled sample of the registry.
struct Series {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    /// Histograms: (upper bound, cumulative count), the +Inf bucket left out.
    buckets: Vec<(f64, u64)>,
    count: u64,
}

/// The registry flattened into labelled samples, with sums over label filters.
pub struct Samples(Vec<Series>);

impl Samples {
    pub fn new(families: &[MetricFamily]) -> Samples {
        let mut out = Vec::new();
        for f in families {
            for m in f.get_metric() {
                let labels = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect();
                let (value, buckets, count) = match f.get_field_type() {
                    MetricType::COUNTER => (m.get_counter().get_value(), Vec::new(), 0),
                    MetricType::GAUGE => (m.get_gauge().get_value(), Vec::new(), 0),
                    MetricType::HISTOGRAM => {
                        let h = m.get_histogram();
                        let b = h
                            .get_bucket()
                            .iter()
                            .map(|b| (b.upper_bound(), b.cumulative_count()))
                            .filter(|(le, _)| le.is_finite())
                            .collect();
                        (h.get_sample_sum(), b, h.get_sample_count())
                    }
                    _ => continue,
                };
                out.push(Series {
                    name: f.name().to_string(),
                    labels,
                    value,
                    buckets,
                    count,
                });
            }
        }
        Samples(out)
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Series> + 'a {
        self.0.iter().filter(move |s| {
            s.name == name
                && filter
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// The value of each series of `name` matching `filter`.
    pub(super) fn all(&self, name: &str, filter: &[(&str, &str)]) -> Vec<f64> {
        self.matching(name, filter).map(|s| s.value).collect()
    }

    /// Sum of a counter or gauge over every series matching `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.matching(name, filter).map(|s| s.value).sum()
    }

    pub(super) fn count(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        self.sum(name, filter).round().max(0.0) as u64
    }

    /// Label values of `label` seen in `name` under `filter`, in first-seen order.
    pub(super) fn values(&self, name: &str, filter: &[(&str, &str)], label: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.matching(name, filter) {
            if let Some((_, v)) = s.labels.iter().find(|(k, _)| k == label)
                && !out.contains(v)
            {
                out.push(v.clone());
            }
        }
        out
    }

    /// The histogram `name` merged over every series matching `filter`.
    pub fn histogram(&self, name: &str, filter: &[(&str, &str)]) -> Histogram {
        let mut h = Histogram::default();
        for s in self.matching(name, filter) {
            h.count += s.count;
            h.sum += s.value;
            if h.buckets.is_empty() {
                h.buckets = s.buckets.clone();
            } else {
                for (acc, b) in h.buckets.iter_mut().zip(&s.buckets) {
                    acc.1 += b.1;
                }
            }
        }
        h
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub count: u64,
    pub sum: f64,
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    /// Prometheus' `histogram_quantile`: linear within the bucket the rank falls in; past the
    /// last finite bucket, that bucket's upper bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut lower = 0.0;
        let mut below = 0u64;
        for &(le, cumulative) in &self.buckets {
            if cumulative as f64 >= rank && cumulative > below {
                let share = (rank - below as f64) / (cumulative - below) as f64;
                return Some(lower + (le - lower) * share);
            }
            lower = le;
            below = cumulative;
        }
        self.buckets.last().map(|b| b.0)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

const REQUESTS: &str = "tiergate_requests_total";
const DURATION: &str = "tiergate_request_duration_seconds";
const TTFT: &str = "tiergate_time_to_first_token_seconds";

fn usage(s: &Samples, f: &[(&str, &str)]) -> Usage {
    let requests = s.count(REQUESTS, f);
    let mut ok = f.to_vec();
    ok.push(("status_class", "2xx"));
    Usage {
        requests,
        errors: requests.saturating_sub(s.count(REQUESTS, &ok)),
        input_tokens: s.count("tiergate_input_tokens_total", f),
        output_tokens: s.count("tiergate_output_tokens_total", f),
        cost_usd: s.sum("tiergate_cost_usd_total", f),
        reference_cost_usd: s.sum("tiergate_reference_cost_usd_total", f),
    }
}

fn latency(s: &Samples, f: &[(&str, &str)]) -> Latency {
    let d = s.histogram(DURATION, f);
    Latency {
        count: d.count,
        mean_seconds: d.mean(),
        p50_seconds: d.quantile(0.5),
        p95_seconds: d.quantile(0.95),
        ttft_p50_seconds: s.histogram(TTFT, f).quantile(0.5),
    }
}

impl Stats {
    /// Pure: the policy, the gathered registry and the recent decisions in, the page's data out.
    pub fn build(policy: &Policy, families: &[MetricFamily], recent: Vec<Entry>) -> Stats {
        let s = Samples::new(families);
        let mut tier_names: Vec<String> = policy.tiers.iter().map(|t| t.name.clone()).collect();
        for t in s.values(REQUESTS, &[], "tier") {
            if !tier_names.contains(&t) {
                tier_names.push(t);
            }
        }
        let tiers = tier_names
            .iter()
            .filter_map(|t| {
                let f = [("tier", t.as_str())];
                let u = usage(&s, &f);
                if u.requests == 0 && policy.tier_index(t).is_none() {
                    return None;
                }
                let routes = s
                    .values(REQUESTS, &f, "upstream")
                    .into_iter()
                    .map(|up| {
                        let f = [("tier", t.as_str()), ("upstream", up.as_str())];
                        RouteStats {
                            usage: usage(&s, &f),
                            latency: latency(&s, &f),
                            upstream: up,
                        }
                    })
                    .collect();
                Some(TierStats {
                    name: t.clone(),
                    latency: latency(&s, &f),
                    usage: u,
                    routes,
                })
            })
            .collect();
        let upstreams = policy
            .upstreams
            .iter()
            .map(|u| {
                let f = [("upstream", u.name.as_str())];
                let mut errors = BTreeMap::new();
                for kind in s.values("tiergate_upstream_errors_total", &f, "type") {
                    let n = s.count(
                        "tiergate_upstream_errors_total",
                        &[("upstream", &u.name), ("type", &kind)],
                    );
                    errors.insert(kind, n);
                }
                UpstreamStats {
                    name: u.name.clone(),
                    kind: match u.kind {
                        UpstreamKind::Openai => "openai",
                        UpstreamKind::Anthropic => "anthropic",
                    },
                    enabled: u.is_enabled(),
                    disabled_reason: u.disabled.clone(),
                    up: s.sum("tiergate_upstream_up", &f) > 0.0,
                    in_flight: s.sum("tiergate_upstream_requests_in_flight", &f) as i64,
                    requests: s.count(REQUESTS, &f),
                    errors,
                    fallbacks_from: s.count("tiergate_fallbacks_total", &[("from", &u.name)]),
                }
            })
            .collect();
        let all = usage(&s, &[]);
        let savings = all.reference_cost_usd - all.cost_usd;
        let totals = Totals {
            requests: all.requests,
            errors: all.errors,
            in_flight: s.sum("tiergate_requests_in_flight", &[]) as i64,
            input_tokens: all.input_tokens,
            output_tokens: all.output_tokens,
            cost_usd: all.cost_usd,
            reference_cost_usd: all.reference_cost_usd,
            savings_usd: savings,
            savings_ratio: (all.reference_cost_usd > 0.0).then(|| savings / all.reference_cost_usd),
            fallbacks: s.count("tiergate_fallbacks_total", &[]),
            escalations: s.count("tiergate_escalations_total", &[]),
        };
        Stats {
            reference_upstream: policy
                .reference_upstream
                .map(|i| policy.upstreams[i].name.clone()),
            show_prompts: policy.server.ui_show_prompts,
            totals,
            tiers,
            upstreams,
            recent,
            quality: super::quality::QualityStats::build(policy, &s),
        }
    }

    /// The route of `tier` through `upstream`, if it answered any request.
    pub fn route(&self, tier: &str, upstream: &str) -> Option<&RouteStats> {
        self.tiers
            .iter()
            .find(|t| t.name == tier)
            .and_then(|t| t.routes.iter().find(|r| r.upstream == upstream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_POLICY, parse};
    use crate::metrics::Metrics;

    fn policy() -> Policy {
        parse("default", DEFAULT_POLICY, |_| None).unwrap()
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let h = Histogram {
            count: 10,
            sum: 5.0,
            buckets: vec![(0.1, 0), (0.5, 4), (1.0, 10)],
        };
        // Rank 5 falls in (0.5, 1.0] holding ranks 5..10: one sixth of the way.
        assert!((h.quantile(0.5).unwrap() - (0.5 + 0.5 / 6.0)).abs() < 1e-12);
        assert!((h.quantile(0.2).unwrap() - (0.1 + 0.4 * 0.5)).abs() < 1e-12);
        assert_eq!(h.mean(), Some(0.5));
        assert_eq!(Histogram::default().quantile(0.5), None);
        let beyond = Histogram {
            count: 3,
            sum: 9.0,
            buckets: vec![(1.0, 1), (2.0, 1)],
        };
        assert_eq!(beyond.quantile(0.9), Some(2.0));
    }

    #[test]
    fn stats_sum_the_registry_per_tier_and_route() {
        let m = Metrics::new();
        let p = policy();
        let req = |tier, up, class| {
            m.requests
                .with_label_values(&["chat_completions", tier, up, class, "other"])
                .inc()
        };
        req("primitive", "local", "2xx");
        req("primitive", "local", "2xx");
        req("primitive", "openai", "5xx");
        req("architecture", "anthropic", "2xx");
        req("none", "none", "4xx");
        m.output_tokens
            .with_label_values(&["primitive", "local", "reported"])
            .inc_by(300);
        m.output_tokens
            .with_label_values(&["primitive", "local", "estimated"])
            .inc_by(20);
        m.cost_usd
            .with_label_values(&["architecture", "anthropic"])
            .inc_by(0.03);
        m.reference_cost_usd
            .with_label_values(&["architecture", "anthropic"])
            .inc_by(0.03);
        m.reference_cost_usd
            .with_label_values(&["primitive", "local"])
            .inc_by(0.01);
        for v in [0.2, 0.3, 0.4, 2.0] {
            m.duration
                .with_label_values(&["primitive", "local", "true"])
                .observe(v);
        }
        m.upstream_errors
            .with_label_values(&["openai", "timeout"])
            .inc();
        m.upstream_up.with_label_values(&["local"]).set(1.0);
        let s = Stats::build(&p, &m.registry.gather(), Vec::new());

        assert_eq!(s.totals.requests, 5);
        assert_eq!(s.totals.errors, 2);
        assert!((s.totals.savings_usd - 0.01).abs() < 1e-12);
        assert!((s.totals.savings_ratio.unwrap() - 0.25).abs() < 1e-12);
        let names: Vec<_> = s.tiers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["primitive", "architecture", "none"]);
        let prim = &s.tiers[0];
        assert_eq!((prim.usage.requests, prim.usage.errors), (3, 1));
        assert_eq!(prim.usage.output_tokens, 320);
        let local = s.route("primitive", "local").unwrap();
        assert_eq!(local.usage.requests, 2);
        assert_eq!(local.latency.count, 4);
        // Ranks 2 of 4 falls in (0.25, 0.5] holding ranks 2..3 (0.3 and 0.4).
        let p50 = local.latency.p50_seconds.unwrap();
        assert!(p50 > 0.25 && p50 <= 0.5, "{p50}");
        // Rank 3.8 falls in (1.0, 2.5] holding rank 4 alone: 80% of the way.
        let p95 = local.latency.p95_seconds.unwrap();
        assert!((p95 - 2.2).abs() < 1e-9, "{p95}");
        assert!(s.route("primitive", "anthropic").is_none());
        let openai = s.upstreams.iter().find(|u| u.name == "openai").unwrap();
        assert_eq!(openai.errors.get("timeout"), Some(&1));
        assert!(!openai.up && !openai.enabled);
        assert!(s.upstreams.iter().find(|u| u.name == "local").unwrap().up);
        assert_eq!(s.reference_upstream.as_deref(), Some("anthropic"));
    }
}
