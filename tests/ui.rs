//! The live page and its JSON, over real sockets: `/` is one self-contained HTML file, and
//! `/api/stats` reports what `/metrics` says plus the latest decisions, without prompt text
//! unless the policy allows it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::spec::{MockSpec, chat_body, sample_sum, scrape};
use common::{Gateway, get, json, post, two_tier_policy};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

const SECRET_WORD: &str = "palindrome";

async fn stats(gw: &Gateway) -> Value {
    let (status, body) = get(&gw.url("/api/stats")).await;
    assert_eq!(status, 200);
    json(&body)
}

/// The stats once `done` holds (streams are accounted when they end), failing after 5 s.
async fn stats_when(gw: &Gateway, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let st = stats(gw).await;
        if done(&st) {
            return st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats never got there: {st}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_page_is_one_self_contained_file() {
    let a = MockSpec::new().start().await;
    let gw = Gateway::start(&two_tier_policy(&a.base_url(), &a.base_url())).await;
    let req = http::Request::get(gw.url("/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = common::client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains("api/stats"), "the page polls the stats");
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(external), "external reference {external:?}");
    }
    assert!(!html.contains("<script src"), "scripts are inline");
    gw.shutdown().await;
}

#[tokio::test]
async fn stats_match_the_metrics_and_keep_prompts_off_the_page() {
    let a = MockSpec::new().usage(1000, 200, 0).start().await;
    let b = MockSpec::new().usage(2000, 400, 0).start().await;
    let gw = Gateway::start(&two_tier_policy(&a.base_url(), &b.base_url())).await;
    let task = format!("Write a Python function that checks whether a string is a {SECRET_WORD}.");
    let (s, _, _) = post(
        &gw.url("/v1/chat/completions"),
        chat_body("auto", &task, false).to_string(),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = post(
        &gw.url("/v1/chat/completions"),
        chat_body("auto", &task, true).to_string(),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = post(
        &gw.url("/v1/chat/completions"),
        chat_body("auto", &task, false).to_string(),
        &[("x-tiergate-tier", "architecture")],
    )
    .await;
    assert_eq!(s, 200);
    let st = stats_when(&gw, |st| st["recent"].as_array().unwrap().len() == 3).await;
    let text = st.to_string();
    assert!(!text.contains(SECRET_WORD), "prompt text leaked: {text}");
    assert_eq!(st["show_prompts"], false);
    let metrics = scrape(&gw).await;
    let cost = sample_sum(&metrics, "tiergate_cost_usd_total", &[]).unwrap();
    let reference = sample_sum(&metrics, "tiergate_reference_cost_usd_total", &[]).unwrap();
    let t = &st["totals"];
    assert!(
        (t["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12,
        "{t}"
    );
    assert!((t["reference_cost_usd"].as_f64().unwrap() - reference).abs() < 1e-12);
    assert!((t["savings_usd"].as_f64().unwrap() - (reference - cost)).abs() < 1e-12);
    assert_eq!(t["input_tokens"], 4000);

    let tiers = st["tiers"].as_array().unwrap();
    let tier = |name: &str| tiers.iter().find(|t| t["name"] == name).unwrap();
    assert_eq!(tier("primitive")["requests"], 2);
    assert_eq!(tier("primitive")["routes"][0]["upstream"], "a");
    assert_eq!(tier("primitive")["latency"]["count"], 2);
    assert_eq!(tier("architecture")["routes"][0]["upstream"], "b");
    let ups = st["upstreams"].as_array().unwrap();
    assert!(
        ups.iter().all(|u| u["up"] == true && u["enabled"] == true),
        "{ups:?}"
    );

    let recent = st["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 3);
    // Newest first: the pinned request came last and has no classifier score.
    assert_eq!(recent[0]["reason"], "header");
    assert_eq!(recent[0]["tier"], "architecture");
    assert!(recent[0]["score"].is_null());
    for e in &recent[1..] {
        assert_eq!(e["tier"], "primitive");
        assert_eq!(e["upstream"], "a");
        assert_eq!(e["status"], 200);
        assert!(e["score"].as_f64().unwrap() < 0.5, "{e}");
        assert!(e["latency_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(e["input_tokens"], 1000);
        assert!(e.get("prompt").is_none());
    }
    assert_eq!(recent.iter().filter(|e| e["stream"] == true).count(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_policy_can_allow_prompts_on_the_page() {
    let a = MockSpec::new().start().await;
    let policy = format!(
        "server:\n  ui_show_prompts: true\n{}",
        two_tier_policy(&a.base_url(), &a.base_url())
    );
    let gw = Gateway::start(&policy).await;
    let task = format!("Write a Python function that checks whether a string is a {SECRET_WORD}.");
    let (s, _, _) = post(
        &gw.url("/v1/chat/completions"),
        chat_body("auto", &task, false).to_string(),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let st = stats_when(&gw, |st| st["recent"].as_array().unwrap().len() == 1).await;
    assert_eq!(st["show_prompts"], true);
    assert_eq!(st["recent"][0]["prompt"], task.as_str());
    gw.shutdown().await;
}

#[tokio::test]
async fn quality_cards_show_checks_escalations_feedback_and_shadow_as_the_metrics_do() {
    use common::{MockUpstream, Reply, completion, metric};
    const BROKEN: &str = "```python\ndef f(x)\n    return x\n```";
    const GOOD: &str = "```python\ndef f(x):\n    return x\n```";
    let a = MockUpstream::start(|_| Reply::Json(200, completion("model-a", BROKEN, 10, 10))).await;
    let b = MockUpstream::start(|_| Reply::Json(200, completion("model-b", GOOD, 10, 10))).await;
    let policy = two_tier_policy(&a.base_url(), &b.base_url()).replace(
        "  - name: primitive\n    upstreams: [a, b]",
        "  - name: primitive\n    upstreams: [a, b]\n    escalate_on: [syntax]\n  - name: shadowed\n    upstreams: [b, a]\n    shadow: { rate: 1, daily_usd_cap: 1 }",
    );
    let gw = Gateway::start(&policy).await;
    let html = String::from_utf8(get(&gw.url("/")).await.1.to_vec()).unwrap();
    for id in [
        "q-pass",
        "q-escalations",
        "q-feedback",
        "q-agreement",
        "q-win",
        "q-probe",
        "checks",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no card {id}");
    }
    let before = stats(&gw).await;
    assert_eq!(before["quality"]["checks"], serde_json::json!([]));
    assert!(before["quality"]["feedback"]["mean_score"].is_null());

    let ask = |tier: &str| {
        serde_json::json!({"model": tier, "messages": [{"role": "user", "content": "Write a Python identity function f."}]}).to_string()
    };
    let (s, h, _) = post(&gw.url("/v1/chat/completions"), ask("primitive"), &[]).await;
    assert_eq!(
        (s.as_u16(), h["x-tiergate-escalated"].to_str().unwrap()),
        (200, "a")
    );
    let id = h["x-tiergate-request-id"].to_str().unwrap();
    let rating = serde_json::json!({"request_id": id, "rating": 0.25}).to_string();
    assert_eq!(post(&gw.url("/v1/feedback"), rating, &[]).await.0, 204);
    // b answers the shadowed tier well; its shadow, a, answers badly: they disagree.
    let (s, _, _) = post(&gw.url("/v1/chat/completions"), ask("shadowed"), &[]).await;
    assert_eq!(s, 200);

    let st = stats_when(&gw, |st| {
        st["quality"]["shadow"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
            && st["quality"]["checks"].as_array().unwrap().len() == 3
    })
    .await;
    let q = &st["quality"];
    let m = gw.metrics();
    let route = |tier: &str, up: &str| {
        q["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["tier"] == tier && c["upstream"] == up)
            .unwrap_or_else(|| panic!("no {tier}/{up} in {q}"))
            .clone()
    };
    let a_checks = route("primitive", "a");
    let failed = metric(&m, r#"tiergate_answer_checks_total{check="syntax",result="fail",tier="primitive",upstream="a"}"#).unwrap();
    assert_eq!(a_checks["failed"].as_f64(), Some(failed));
    assert!(a_checks["pass_rate"].as_f64().unwrap() < 1.0, "{a_checks}");
    assert_eq!(route("primitive", "b")["failed"], 0);
    assert_eq!(route("primitive", "b")["pass_rate"], 1.0);
    assert_eq!(q["escalations"], serde_json::json!({"syntax": 1}));
    assert_eq!(q["feedback"]["mean_score"], 0.25);
    assert_eq!(
        (q["feedback"]["up"].as_u64(), q["feedback"]["down"].as_u64()),
        (Some(0), Some(1))
    );
    let sh = &q["shadow"][0];
    assert_eq!(
        (sh["tier"].as_str(), sh["comparisons"].as_u64()),
        (Some("shadowed"), Some(1))
    );
    assert_eq!(sh["agreement"], 0.0, "{sh}");
    assert!(sh["win_rate"].is_null(), "no judge: no win rate");
    assert_eq!(
        metric(
            &m,
            r#"tiergate_shadow_agreement_ratio{client="other",tier="shadowed"}"#
        ),
        Some(0.0)
    );
    assert!(q["probe"].as_array().unwrap().is_empty());
    gw.shutdown().await;
}
