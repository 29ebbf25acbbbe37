//! Shadow comparison over real sockets with scripted upstreams: the shadow call starts only
//! after the client has its whole answer (whole or streamed), stops at its daily cap, is
//! compared and judged; the judge's losses close the quality gate for that segment, which
//! then goes to the frontier (but for one request in ten).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use http_body_util::BodyExt;
use serde_json::json;

const GOOD: &str = "```python\ndef f(x):\n    return x\n```";

fn policy(local: &str, frontier: &str, judge: &str, tier_extra: &str) -> String {
    format!(
        "upstreams:\n\
         - {{ name: local, kind: openai, base_url: {local}, model: q, key_required: false }}\n\
         - {{ name: frontier, kind: openai, base_url: {frontier}, model: f, key_required: false, price: {{ input_per_mtok: 10, output_per_mtok: 10 }} }}\n\
         - {{ name: judge, kind: openai, base_url: {judge}, model: j, key_required: false, price: {{ input_per_mtok: 1, output_per_mtok: 1 }} }}\n\
         tiers:\n\
         \x20 - name: primitive\n    upstreams: [local, frontier]\n{tier_extra}\
         \x20 - name: architecture\n    upstreams: [frontier]\n"
    )
}

fn ask(stream: bool) -> String {
    json!({"model": "primitive", "stream": stream, "messages": [{"role": "user", "content": "Write a Python identity function f."}]}).to_string()
}

/// A mock that notes when each request arrived.
async fn timed(
    reply: impl Fn() -> Reply + Send + Sync + 'static,
) -> (MockUpstream, Arc<Mutex<Vec<Instant>>>) {
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let m = MockUpstream::start(move |_| {
        t.lock().unwrap().push(Instant::now());
        reply()
    })
    .await;
    (m, times)
}

async fn wait_for(what: &str, f: impl Fn() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_calls_start_after_the_answer_is_complete_and_stop_at_the_cap() {
    // The local answer streams over ~400 ms; the shadow must not start before its end.
    let local = MockUpstream::start(|r| {
        if r.json()["stream"] == true {
            let events = stream_events(
                "q",
                &["```python\n", "def f(x):\n", "    return x\n", "```"],
                Some((10, 10)),
            );
            Reply::Sse(
                events
                    .into_iter()
                    .map(|e| (Duration::from_millis(80), e))
                    .collect(),
            )
        } else {
            Reply::Delay(
                Duration::from_millis(300),
                Box::new(Reply::Json(200, completion("q", GOOD, 10, 10))),
            )
        }
    })
    .await;
    // Each shadow answer costs (100 + 100) * 10 / 1M = $0.002, over the $0.003 cap after two.
    let (frontier, shadow_at) = timed(|| Reply::Json(200, completion("f", GOOD, 100, 100))).await;
    let (judge, _) = timed(|| Reply::Json(200, completion("j", "YES", 50, 1))).await;
    let extra = "    shadow: { rate: 1, daily_usd_cap: 0.003, judge: { upstream: judge, rate: 1, daily_usd_cap: 1 } }\n";
    let gw = Gateway::start(&policy(
        &local.base_url(),
        &frontier.base_url(),
        &judge.base_url(),
        extra,
    ))
    .await;

    for stream in [false, true] {
        let before = shadow_at.lock().unwrap().len();
        let resp = client()
            .request(request(&gw.url("/v1/chat/completions"), ask(stream), &[]))
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-tiergate-upstream"], "local");
        // A whole answer keeps its length: the shadow starts on its last byte.
        assert_eq!(resp.headers().contains_key("content-length"), !stream);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let complete = Instant::now();
        assert!(String::from_utf8_lossy(&body).contains("return x"));
        assert_eq!(
            shadow_at.lock().unwrap().len(),
            before,
            "stream={stream}: the shadow started before the answer was complete"
        );
        wait_for("the shadow call", || {
            shadow_at.lock().unwrap().len() == before + 1
        })
        .await;
        assert!(shadow_at.lock().unwrap()[before] >= complete - Duration::from_millis(5));
        // The shadow asked the frontier's model, whole, the same conversation.
        let sent = frontier.requests()[before].json();
        assert_eq!(
            (sent["model"].as_str(), sent["stream"].as_bool()),
            (Some("f"), Some(false))
        );
        assert_eq!(
            sent["messages"][0]["content"],
            "Write a Python identity function f."
        );
    }
    wait_for("two judge verdicts", || {
        metric(
            &gw.metrics(),
            r#"tiergate_judge_verdicts_total{client="other",tier="primitive",verdict="win"}"#,
        ) == Some(2.0)
    })
    .await;
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_shadow_comparisons_total{client="other",result="agree",tier="primitive"}"#
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"tiergate_shadow_agreement_ratio{client="other",tier="primitive"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"tiergate_judge_win_ratio{client="other",tier="primitive"}"#
        ),
        Some(1.0)
    );
    assert!(
        (metric(
            &m,
            r#"tiergate_shadow_cost_usd_total{tier="primitive",upstream="frontier"}"#
        )
        .unwrap()
            - 0.004)
            .abs()
            < 1e-12
    );
    // The cap is spent: no third shadow call.
    post(&gw.url("/v1/chat/completions"), ask(false), &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        frontier.requests().len(),
        2,
        "the shadow stops at its daily cap"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judged_losses_close_the_gate_for_the_segment() {
    let local = MockUpstream::start(|_| Reply::Json(200, completion("q", GOOD, 10, 10))).await;
    let frontier = MockUpstream::start(|_| Reply::Json(200, completion("f", GOOD, 10, 10))).await;
    let judge = MockUpstream::start(|_| Reply::Json(200, completion("j", "NO", 10, 1))).await;
    let extra = "    shadow: { rate: 1, daily_usd_cap: 10, judge: { upstream: judge, rate: 1, daily_usd_cap: 10 } }\n    quality_gate: { min_win_rate: 0.5, min_samples: 2 }\n";
    let gw = Gateway::start(&policy(
        &local.base_url(),
        &frontier.base_url(),
        &judge.base_url(),
        extra,
    ))
    .await;
    for i in 1..=2 {
        let (_, h, _) = post(&gw.url("/v1/chat/completions"), ask(false), &[]).await;
        assert_eq!(h["x-tiergate-upstream"], "local");
        wait_for("a judge verdict", || {
            metric(
                &gw.metrics(),
                r#"tiergate_judge_verdicts_total{client="other",tier="primitive",verdict="loss"}"#,
            ) == Some(i as f64)
        })
        .await;
    }
    // Two losses of two: under the gate, the segment goes to the frontier.
    let (_, h, _) = post(&gw.url("/v1/chat/completions"), ask(false), &[]).await;
    assert_eq!(h["x-tiergate-upstream"], "frontier");
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_fallbacks_total{from="local",reason="quality_gate",to="frontier"}"#
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"tiergate_judge_win_ratio{client="other",tier="primitive"}"#
        ),
        Some(0.0)
    );
    // Another kind of task is another segment: still local.
    let sql = json!({"model": "primitive", "messages": [{"role": "user", "content": "An SQL query for the top sales."}]});
    let (_, h, _) = post(&gw.url("/v1/chat/completions"), sql.to_string(), &[]).await;
    assert_eq!(h["x-tiergate-upstream"], "local");
    gw.shutdown().await;
}

/// A GitHub token, assembled here so that no file holds one.
fn secret() -> String {
    let tail: String = (0..36)
        .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
        .collect();
    format!("ghp_{}", tail.replace('a', "7"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_request_is_never_shadowed_nor_judged() {
    use tiergate::govern::keys::{generate, hash_hex};
    let local = MockUpstream::start(|_| Reply::Json(200, completion("q", GOOD, 10, 10))).await;
    let (frontier, _) = timed(|| Reply::Json(200, completion("f", GOOD, 10, 10))).await;
    let (judge, _) = timed(|| Reply::Json(200, completion("j", "YES", 10, 1))).await;
    let (plain, private, no_judge) = (
        generate().unwrap().expose().to_string(),
        generate().unwrap().expose().to_string(),
        generate().unwrap().expose().to_string(),
    );
    // The shadow upstream is named, so it is not taken from the (filtered) route.
    let extra = "    shadow: { rate: 1, daily_usd_cap: 10, upstream: frontier, judge: { upstream: judge, rate: 1, daily_usd_cap: 10 } }\n";
    let yaml = policy(
        &local.base_url(),
        &frontier.base_url(),
        &judge.base_url(),
        extra,
    )
    .replace(
        "model: q, key_required: false }",
        "model: q, key_required: false, local: true }",
    ) + &format!(
        "auth:\n  keys:\n    - {{ name: dev, team: web, sha256: {} }}\n    - {{ name: private, team: web, sha256: {}, local_only: true }}\n    - {{ name: nojudge, team: web, sha256: {}, upstreams: [local, frontier] }}\n",
        hash_hex(&plain),
        hash_hex(&private),
        hash_hex(&no_judge)
    );
    assert!(
        yaml.contains("model: q, key_required: false, local: true }"),
        "{yaml}"
    );
    assert!(
        !yaml.contains("model: f, key_required: false, local: true"),
        "{yaml}"
    );
    let gw = Gateway::start(&yaml).await;
    let chat = |text: &str, stream: bool| {
        json!({"model": "primitive", "stream": stream, "messages": [{"role": "user", "content": text}]}).to_string()
    };
    let with_secret = format!("Write a Python function f; the CI token is {}", secret());
    let cases = [
        (plain.as_str(), with_secret.as_str(), "secret"),
        (
            private.as_str(),
            "Write a Python identity function f.",
            "local_only",
        ),
    ];
    for (key, text, reason) in cases {
        for stream in [false, true] {
            let auth = format!("Bearer {key}");
            let resp = client()
                .request(request(
                    &gw.url("/v1/chat/completions"),
                    chat(text, stream),
                    &[("authorization", &auth)],
                ))
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["x-tiergate-reason"], reason);
            resp.into_body().collect().await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        frontier.requests().is_empty(),
        "a pinned request was shadowed"
    );
    assert!(judge.requests().is_empty(), "a pinned request was judged");

    // The same policy shadows and judges an ordinary request: the check above can fail.
    let auth = format!("Bearer {plain}");
    post(
        &gw.url("/v1/chat/completions"),
        chat("Write a Python identity function f.", false),
        &[("authorization", &auth)],
    )
    .await;
    wait_for("the shadow and the judge", || {
        frontier.requests().len() == 1 && judge.requests().len() == 1
    })
    .await;
    // A key that may not reach the judge is shadowed, not judged.
    let auth = format!("Bearer {no_judge}");
    post(
        &gw.url("/v1/chat/completions"),
        chat("Write a Python identity function f.", false),
        &[("authorization", &auth)],
    )
    .await;
    wait_for("the second shadow", || frontier.requests().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        judge.requests().len(),
        1,
        "the judge saw a key's task it may not reach"
    );
    gw.shutdown().await;
}
