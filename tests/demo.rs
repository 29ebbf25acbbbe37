//! `tiergate demo --requests 40`, the real binary: both tiers used, the savings computed from
//! the gateway's metrics and consistent with the costs it prints, exit 0, in good time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tiergate");

fn dollars(s: &str) -> f64 {
    s.trim().trim_start_matches('$').parse().unwrap()
}

/// The columns of the summary row that starts with `tier` and `upstream`.
fn row<'a>(summary: &'a str, tier: &str, upstream: &str) -> Option<Vec<&'a str>> {
    summary.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.len() >= 2 && cols[0] == tier && cols[1] == upstream).then_some(cols)
    })
}

#[test]
fn demo_with_requests_prints_a_summary_from_the_metrics() {
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["demo", "--requests", "40"])
        // Keys in the environment must not matter: the demo never reads them.
        .env("OPENAI_API_KEY", "")
        .env("ANTHROPIC_API_KEY", "")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    println!("{stdout}");

    let summary = stdout
        .split("Summary, from the gateway's metrics")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    assert!(
        summary.contains("tiergate_reference_cost_usd_total"),
        "{summary}"
    );

    // Progress: one line per request, each naming the tier and upstream that answered.
    let progress = stdout.lines().filter(|l| l.starts_with('[')).count();
    assert_eq!(progress, 40, "{stdout}");

    let local = row(summary, "primitive", "local").expect("primitive tier on local");
    let frontier = row(summary, "architecture", "anthropic").expect("architecture on anthropic");
    let requests = |r: &[&str]| r[2].parse::<u64>().unwrap();
    assert!(requests(&local) > 0 && requests(&frontier) > 0, "{summary}");
    assert_eq!(
        dollars(local.last().unwrap()),
        0.0,
        "local is free: {summary}"
    );
    let frontier_cost = dollars(frontier.last().unwrap());
    assert!(frontier_cost > 0.0, "{summary}");

    let total = summary
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(total[1], "40", "every request accounted: {summary}");
    assert_eq!(total[2], "0", "no errors: {summary}");
    let total_cost = dollars(total.last().unwrap());

    let reference = summary
        .lines()
        .find(|l| l.starts_with("all-frontier"))
        .unwrap();
    assert!(reference.contains("anthropic's prices"), "{reference}");
    let reference = dollars(reference.rsplit(' ').next().unwrap());
    let savings_line = summary.lines().find(|l| l.starts_with("savings:")).unwrap();
    let mut parts = savings_line["savings:".len()..].split_whitespace();
    let savings = dollars(parts.next().unwrap());
    let pct: f64 = parts
        .next()
        .unwrap()
        .trim_start_matches('(')
        .trim_end_matches('%')
        .parse()
        .unwrap();
    // The local tier's tokens would have cost money on the frontier: savings are real.
    assert!(savings > 0.0 && reference > total_cost, "{summary}");
    assert!(
        (reference - total_cost - savings).abs() < 0.0002,
        "{summary}"
    );
    assert!((pct - savings / reference * 100.0).abs() < 0.2, "{summary}");
}
