//! The demo's summary, rendered from the gateway's own metrics (`ui::Stats`): a row per tier
//! and upstream, the total against an all-frontier run, and the savings.

use std::fmt::Write as _;

use crate::ui::Stats;
use crate::ui::stats::Latency;

fn secs(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1e3),
        Some(s) => format!("{s:.2} s"),
    }
}

pub fn usd(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn latency_cells(l: &Latency) -> (String, String) {
    (secs(l.p50_seconds), secs(l.p95_seconds))
}

/// The summary table. Every figure comes from `stats`, i.e. from the metrics registry.
pub fn render(stats: &Stats) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<13} {:<10} {:>8} {:>8} {:>9} {:>10} {:>10} {:>10} {:>12}",
        "tier", "upstream", "requests", "errors", "p50", "p95", "tokens in", "tokens out", "cost"
    );
    let _ = writeln!(out, "{}", "-".repeat(98));
    for t in stats.tiers.iter().filter(|t| t.usage.requests > 0) {
        for r in &t.routes {
            let (p50, p95) = latency_cells(&r.latency);
            let _ = writeln!(
                out,
                "{:<13} {:<10} {:>8} {:>8} {:>9} {:>10} {:>10} {:>10} {:>12}",
                t.name,
                r.upstream,
                r.usage.requests,
                r.usage.errors,
                p50,
                p95,
                thousands(r.usage.input_tokens),
                thousands(r.usage.output_tokens),
                usd(r.usage.cost_usd)
            );
        }
    }
    let t = &stats.totals;
    let _ = writeln!(out, "{}", "-".repeat(98));
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>8} {:>9} {:>10} {:>10} {:>10} {:>12}",
        "total",
        t.requests,
        t.errors,
        "",
        "",
        thousands(t.input_tokens),
        thousands(t.output_tokens),
        usd(t.cost_usd)
    );
    let reference = stats.reference_upstream.as_deref().unwrap_or("none");
    let _ = writeln!(
        out,
        "all-frontier (the same tokens at {reference}'s prices): {}",
        usd(t.reference_cost_usd)
    );
    match t.savings_ratio {
        Some(r) => {
            let _ = writeln!(
                out,
                "savings: {} ({:.1}% of all-frontier)",
                usd(t.savings_usd),
                r * 100.0
            );
        }
        None => {
            let _ = writeln!(out, "savings: none measured (no reference cost yet)");
        }
    }
    if t.fallbacks > 0 || t.escalations > 0 {
        let _ = writeln!(
            out,
            "fallbacks: {}, escalations of unrepaired tool calls: {}",
            t.fallbacks, t.escalations
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_POLICY, parse};
    use crate::metrics::Metrics;

    #[test]
    fn the_table_shows_each_route_and_the_savings_from_the_registry() {
        let m = Metrics::new();
        let p = parse("d", DEFAULT_POLICY, |_| None).unwrap();
        for (tier, up, cost, reference) in [
            ("primitive", "local", 0.0, 0.004),
            ("architecture", "anthropic", 0.006, 0.006),
        ] {
            m.requests
                .with_label_values(&["chat_completions", tier, up, "2xx", "other"])
                .inc();
            m.cost_usd.with_label_values(&[tier, up]).inc_by(cost);
            m.reference_cost_usd
                .with_label_values(&[tier, up])
                .inc_by(reference);
            m.input_tokens
                .with_label_values(&[tier, up, "reported"])
                .inc_by(12345);
        }
        let text = render(&Stats::build(&p, &m.registry.gather(), Vec::new()));
        assert!(text.contains("\nprimitive     local"), "{text}");
        assert!(text.contains("\narchitecture  anthropic"), "{text}");
        assert!(text.contains("12,345"), "{text}");
        assert!(
            text.contains("all-frontier (the same tokens at anthropic's prices): $0.0100"),
            "{text}"
        );
        assert!(
            text.contains("savings: $0.0040 (40.0% of all-frontier)"),
            "{text}"
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
