#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every metric family the dashboard and the alert rules query is on `/metrics` before the
//! first request, at zero, for each of the policy's tiers and upstreams; and again for the
//! new ones after a reload. The names are read out of the dashboard's JSON and the rules'
//! YAML, so a panel or rule added later is covered too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::Gateway;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every string under an `expr` key, at any depth.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// The metric families the dashboard and the alert rules query (`_bucket` etc. stripped).
fn queried_families() -> BTreeSet<String> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("dashboards/tiergate.json")).unwrap(),
    )
    .unwrap();
    let rules: Value = serde_yaml::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    let from_dashboard = all.len();
    exprs(&rules, &mut all);
    assert!(
        from_dashboard > 10 && all.len() > from_dashboard + 5,
        "{all:?}"
    );
    let name = regex::Regex::new(r"\btiergate_[a-z0-9_]+").unwrap();
    all.iter()
        .flat_map(|e| name.find_iter(e).map(|m| m.as_str().to_string()))
        .map(|n| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| n.strip_suffix(s).map(str::to_string))
                .unwrap_or(n)
        })
        .collect()
}

/// family -> its samples' label sets (name -> value) and values.
type Samples = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

fn samples(text: &str) -> Samples {
    let mut out = Samples::new();
    let mut histograms = BTreeSet::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let mut parts = t.split(' ');
            let (family, kind) = (parts.next().unwrap(), parts.next().unwrap());
            out.entry(family.to_string()).or_default();
            if kind == "histogram" {
                histograms.insert(family.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| histograms.contains(*f)))
            .unwrap_or(name);
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        out.entry(family.to_string())
            .or_default()
            .push((labels, value.parse().unwrap()));
    }
    out
}

/// Families that exist only where the policy turns their feature on: a probe score of 0
/// for a policy without `probe:` would be a false figure, not a zero, and so would a budget
/// used or left for a policy whose teams have no budget, and a shadow agreement or judge
/// win ratio before any comparison.
const ONLY_WHEN_CONFIGURED: &[&str] = &[
    "tiergate_probe_score",
    "tiergate_shadow_agreement_ratio",
    "tiergate_judge_win_ratio",
    "tiergate_team_budget_left_usd",
    "tiergate_team_budget_used_usd",
];

/// What is missing: each queried family needs samples, and for its `tier` and `upstream`
/// labels one for every tier and upstream named.
fn missing(text: &str, tiers: &[&str], upstreams: &[&str]) -> Vec<String> {
    let got = samples(text);
    let mut out = Vec::new();
    for family in queried_families() {
        if ONLY_WHEN_CONFIGURED.contains(&family.as_str()) {
            continue;
        }
        let Some(s) = got.get(&family).filter(|s| !s.is_empty()) else {
            out.push(format!("{family}: no sample"));
            continue;
        };
        for (label, names) in [("tier", tiers), ("upstream", upstreams)] {
            if !s.iter().any(|(l, _)| l.contains_key(label)) {
                continue;
            }
            for n in names {
                if !s
                    .iter()
                    .any(|(l, _)| l.get(label).map(String::as_str) == Some(n))
                {
                    out.push(format!("{family}: no sample for {label}={n}"));
                }
            }
        }
    }
    out
}

fn policy(extra_upstream: bool) -> String {
    let up = |name: &str| {
        format!(
            "  - {{ name: {name}, kind: openai, base_url: \"http://127.0.0.1:9/v1\", key_required: false, model: m }}\n"
        )
    };
    let mut p = format!("upstreams:\n{}{}", up("local"), up("openai"));
    if extra_upstream {
        p += &up("spare");
    }
    p += "tiers:\n  - { name: primitive, upstreams: [local, openai] }\n  - { name: architecture, upstreams: [openai] }\n";
    if extra_upstream {
        p += "  - { name: review, upstreams: [spare, local] }\n";
    }
    p
}

#[tokio::test]
async fn every_queried_family_is_exported_at_zero_from_the_start_and_after_a_reload() {
    let families = queried_families();
    assert!(
        families.contains("tiergate_cached_input_tokens_total"),
        "{families:?}"
    );
    let gw = Gateway::start(&policy(false)).await;
    let text = metrics_text(&gw).await;
    let gaps = missing(&text, &["primitive", "architecture"], &["local", "openai"]);
    assert!(
        gaps.is_empty(),
        "a fresh gateway lacks:\n{}",
        gaps.join("\n")
    );
    // Nothing was served: every counter and histogram count is zero.
    for (family, s) in samples(&text) {
        if family.ends_with("_total") || family.ends_with("_seconds") {
            for (labels, v) in s {
                assert_eq!(v, 0.0, "{family}{labels:?}");
            }
        }
    }
    // The hedge counter is there for the tier's next upstream too.
    assert!(
        text.contains(
            r#"tiergate_hedges_total{outcome="won",tier="primitive",upstream="openai"} 0"#
        ),
        "{text}"
    );

    let file = std::env::temp_dir().join(format!("tiergate-preset-{}.yaml", std::process::id()));
    std::fs::write(&file, policy(true)).unwrap();
    let reloaded = tiergate::reload::reload(&gw.app, Some(&file));
    let _ = std::fs::remove_file(&file);
    reloaded.unwrap();
    let text = metrics_text(&gw).await;
    let gaps = missing(
        &text,
        &["primitive", "architecture", "review"],
        &["local", "openai", "spare"],
    );
    assert!(gaps.is_empty(), "after the reload:\n{}", gaps.join("\n"));
    gw.shutdown().await;
}

/// `GET /metrics` over the socket.
async fn metrics_text(gw: &Gateway) -> String {
    let (status, body) = common::get(&gw.url("/metrics")).await;
    assert_eq!(status, 200);
    String::from_utf8(body.to_vec()).unwrap()
}
