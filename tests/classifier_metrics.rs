#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The classifier's confidence on `/metrics`, over real sockets: the score histogram per
//! decided tier and the decisions inside the policy's uncertain band. Explicit choices
//! (a tier's name as the model) have no score and are counted in neither.

mod common;

use common::prompts::*;
use common::spec::{MockSpec, chat_body, sample_sum, scrape, upstream_yaml};
use common::{Gateway, MockUpstream};

/// The gateway, and the mock upstreams it forwards to (kept alive with it).
async fn gateway(classifier: &str) -> (Gateway, [MockUpstream; 2]) {
    let local = MockSpec::new().start().await;
    let frontier = MockSpec::new().start().await;
    let policy = format!(
        "upstreams:\n{}{}tiers:\n  - {{ name: primitive, upstreams: [local] }}\n  - {{ name: architecture, upstreams: [frontier] }}\n{classifier}",
        upstream_yaml("local", &local, "{}"),
        upstream_yaml("frontier", &frontier, "{}"),
    );
    (Gateway::start(&policy).await, [local, frontier])
}

async fn ask(gw: &Gateway, model: &str, prompt: &str) -> String {
    let body = chat_body(model, prompt, false);
    let (status, headers, _) =
        common::post(&gw.url("/v1/chat/completions"), body.to_string(), &[]).await;
    assert_eq!(status, 200, "{prompt}");
    headers["x-tiergate-tier"].to_str().unwrap().to_string()
}

fn get(m: &str, name: &str, tier: &str) -> f64 {
    sample_sum(m, name, &[("tier", tier)]).unwrap_or_else(|| panic!("{name}{{tier={tier}}}:\n{m}"))
}

#[tokio::test]
async fn scores_are_observed_per_decided_tier_and_the_band_is_counted() {
    let (gw, _mocks) = gateway("classifier:\n  threshold: 0.35\n").await;
    let m = scrape(&gw).await;
    for tier in ["primitive", "architecture"] {
        assert_eq!(get(&m, "tiergate_classifier_score_count", tier), 0.0);
        assert_eq!(get(&m, "tiergate_classifier_uncertain_total", tier), 0.0);
    }

    for (prompt, tier) in [
        (CLEAR_PRIMITIVE, "primitive"),
        (UNSURE_PRIMITIVE, "primitive"),
        (UNSURE_ARCHITECTURE, "architecture"),
        (CLEAR_ARCHITECTURE, "architecture"),
    ] {
        assert_eq!(ask(&gw, "auto", prompt).await, tier, "{prompt}");
    }
    // Explicit choices: no score, nothing counted.
    ask(&gw, "primitive", UNSURE_ARCHITECTURE).await;
    ask(&gw, "architecture", UNSURE_PRIMITIVE).await;

    let m = scrape(&gw).await;
    assert_eq!(get(&m, "tiergate_classifier_score_count", "primitive"), 2.0);
    assert_eq!(
        get(&m, "tiergate_classifier_score_count", "architecture"),
        2.0
    );
    let prim_sum = get(&m, "tiergate_classifier_score_sum", "primitive");
    let arch_sum = get(&m, "tiergate_classifier_score_sum", "architecture");
    assert!((prim_sum - 0.330).abs() < 0.01, "{prim_sum}");
    assert!((arch_sum - 1.423).abs() < 0.01, "{arch_sum}");
    // The clear primitive sits in the lowest bucket; the unsure one above it.
    let bucket = |tier: &str, le: &str| {
        sample_sum(
            &m,
            "tiergate_classifier_score_bucket",
            &[("tier", tier), ("le", le)],
        )
        .unwrap()
    };
    assert_eq!(bucket("primitive", "0.05"), 1.0);
    assert_eq!(bucket("primitive", "0.35"), 2.0);
    assert_eq!(bucket("architecture", "0.45"), 1.0);
    assert_eq!(bucket("architecture", "0.95"), 1.0);
    // The default band [0.25, 0.6]: one unsure decision per tier (threshold 0.35, as shipped).
    assert_eq!(
        get(&m, "tiergate_classifier_uncertain_total", "primitive"),
        1.0
    );
    assert_eq!(
        get(&m, "tiergate_classifier_uncertain_total", "architecture"),
        1.0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_policy_sets_the_band() {
    let (gw, _mocks) =
        gateway("classifier:\n  threshold: 0.35\n  uncertain_band: [0.4, 1.0]\n").await;
    for prompt in [
        CLEAR_PRIMITIVE,
        UNSURE_PRIMITIVE,
        UNSURE_ARCHITECTURE,
        CLEAR_ARCHITECTURE,
    ] {
        ask(&gw, "auto", prompt).await;
    }
    let m = scrape(&gw).await;
    assert_eq!(
        get(&m, "tiergate_classifier_uncertain_total", "primitive"),
        0.0
    );
    assert_eq!(
        get(&m, "tiergate_classifier_uncertain_total", "architecture"),
        2.0
    );
    gw.shutdown().await;
}
