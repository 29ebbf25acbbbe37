//! Streamed escalation in a tier's opt-in hold-back, over real sockets with scripted
//! upstreams: a stream that fails a check within the bound is replaced by the next
//! upstream's, which reaches the client as a valid stream; a good one arrives unchanged;
//! one past the bound (bytes or time) is released as it is and streams on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use serde_json::json;

const BROKEN: [&str; 3] = ["Here:\n```python\n", "def f(x)\n", "    return x\n```"];
const GOOD: [&str; 3] = ["Here:\n```python\n", "def f(x):\n", "    return x\n```"];

fn policy(local: &str, frontier: &str, hold: &str) -> String {
    two_tier_policy(local, frontier)
        .replacen(
            "price: { input_per_mtok: 0, output_per_mtok: 0 }",
            "price: { input_per_mtok: 1, output_per_mtok: 2 }",
            1,
        )
        .replace(
            "  - name: primitive\n    upstreams: [a, b]",
            &format!(
                "  - name: primitive\n    upstreams: [a, b]\n    escalate_on: [syntax, truncated]\n    hold_back: {hold}\n"
            ),
        )
}

fn ask() -> String {
    json!({"model": "primitive", "stream": true, "messages": [{"role": "user", "content": "Write a Python identity function f."}]}).to_string()
}

fn sse(model: &str, words: &[&str], usage: (u64, u64)) -> Reply {
    let events = stream_events(model, words, Some(usage));
    Reply::Sse(events.into_iter().map(|e| (Duration::ZERO, e)).collect())
}

/// The text a client reads off a chat stream, and whether it ended with `[DONE]`.
fn content(stream: &[u8]) -> (String, bool) {
    let s = String::from_utf8_lossy(stream);
    let mut text = String::new();
    for data in s.split("\n\n").filter_map(|e| e.strip_prefix("data: ")) {
        if data == "[DONE]" {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(data).expect("every event is JSON");
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(c);
        }
    }
    (text, s.ends_with("data: [DONE]\n\n"))
}

async fn eventually(gw: &Gateway, sample: &str, want: f64) {
    for _ in 0..200 {
        if metric(&gw.metrics(), sample) == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{sample} never became {want}:\n{}", gw.metrics());
}

#[tokio::test]
async fn a_held_stream_that_fails_a_check_is_replaced_by_the_next_upstreams() {
    let local = MockUpstream::start(|_| sse("model-a", &BROKEN, (100, 1000))).await;
    let frontier = MockUpstream::start(|_| sse("model-b", &GOOD, (100, 50))).await;
    let gw = Gateway::start(&policy(
        &local.base_url(),
        &frontier.base_url(),
        "{ max_bytes: 65536, max_wait: 5s }",
    ))
    .await;
    let (status, headers, body) = post(&gw.url("/v1/chat/completions"), ask(), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["x-tiergate-escalated"], "a");
    assert_eq!(headers["x-tiergate-upstream"], "b");
    let (text, done) = content(&body);
    assert_eq!((text.as_str(), done), (GOOD.concat().as_str(), true));
    assert!(
        !String::from_utf8_lossy(&body).contains("def f(x)\\n"),
        "a byte of the failed stream reached the client"
    );
    assert_eq!(frontier.requests()[0].json()["stream"], true);
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_escalations_total{from="a",reason="syntax",to="b"}"#
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"tiergate_hold_backs_total{outcome="escalated",tier="primitive",upstream="a"}"#
        ),
        Some(1.0)
    );
    // Both streams are paid for: the discarded one at a's prices (100 * 1 + 1000 * 2 per M).
    let cost_a = metric(
        &m,
        r#"tiergate_cost_usd_total{tier="primitive",upstream="a"}"#,
    )
    .unwrap();
    assert!((cost_a - 0.0021).abs() < 1e-12, "{cost_a}");
    eventually(
        &gw,
        r#"tiergate_cost_usd_total{tier="primitive",upstream="b"}"#,
        (100.0 * 3.0 + 50.0 * 15.0) / 1e6,
    )
    .await;
    eventually(&gw, r#"tiergate_answer_checks_total{check="syntax",result="fail",tier="primitive",upstream="a"}"#, 1.0).await;
    eventually(&gw, r#"tiergate_answer_checks_total{check="syntax",result="pass",tier="primitive",upstream="b"}"#, 1.0).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stream_that_breaks_within_the_bound_is_escalated_as_truncated() {
    let local = MockUpstream::start(|_| {
        let events = stream_events("model-a", &GOOD[..2], None);
        Reply::Truncated(events[..3].to_vec())
    })
    .await;
    let frontier = MockUpstream::start(|_| sse("model-b", &GOOD, (1, 1))).await;
    let gw = Gateway::start(&policy(
        &local.base_url(),
        &frontier.base_url(),
        "{ max_bytes: 65536, max_wait: 5s }",
    ))
    .await;
    let (status, headers, body) = post(&gw.url("/v1/chat/completions"), ask(), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-tiergate-escalated"], "a");
    assert_eq!(content(&body), (GOOD.concat(), true));
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_escalations_total{from="a",reason="truncated",to="b"}"#
        ),
        Some(1.0),
        "{m}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_good_held_stream_arrives_unchanged() {
    let local = MockUpstream::start(|_| sse("model-a", &GOOD, (5, 7))).await;
    let frontier = MockUpstream::start(|_| sse("model-b", &GOOD, (1, 1))).await;
    let held = Gateway::start(&policy(
        &local.base_url(),
        &frontier.base_url(),
        "{ max_bytes: 65536, max_wait: 5s }",
    ))
    .await;
    let plain = Gateway::start(&two_tier_policy(&local.base_url(), &frontier.base_url())).await;
    let (s1, h1, with_hold) = post(&held.url("/v1/chat/completions"), ask(), &[]).await;
    let (s2, _, without) = post(&plain.url("/v1/chat/completions"), ask(), &[]).await;
    assert_eq!((s1.as_u16(), s2.as_u16()), (200, 200));
    assert!(h1.get("x-tiergate-escalated").is_none());
    assert_eq!(h1["x-tiergate-upstream"], "a");
    assert_eq!(content(&with_hold), (GOOD.concat(), true));
    assert_eq!(
        with_hold, without,
        "held back, the stream is the same bytes"
    );
    assert!(frontier.requests().is_empty());
    assert_eq!(
        metric(
            &held.metrics(),
            r#"tiergate_hold_backs_total{outcome="passed",tier="primitive",upstream="a"}"#
        ),
        Some(1.0)
    );
    held.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test]
async fn past_max_bytes_a_failing_stream_passes_through() {
    // A long broken answer: its bytes pass the bound before its end.
    let long: Vec<String> = (0..40)
        .map(|i| format!("# line {i} of padding\n"))
        .collect();
    let mut words: Vec<&str> = long.iter().map(String::as_str).collect();
    words.extend(BROKEN);
    let words: Vec<String> = words.into_iter().map(str::to_string).collect();
    let local = MockUpstream::start(move |_| {
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        sse("model-a", &w, (1, 1))
    })
    .await;
    let frontier = MockUpstream::start(|_| sse("model-b", &GOOD, (1, 1))).await;
    let gw = Gateway::start(&policy(
        &local.base_url(),
        &frontier.base_url(),
        "{ max_bytes: 1024, max_wait: 5s }",
    ))
    .await;
    let (status, headers, body) = post(&gw.url("/v1/chat/completions"), ask(), &[]).await;
    assert_eq!(status, 200);
    assert!(headers.get("x-tiergate-escalated").is_none());
    assert_eq!(headers["x-tiergate-upstream"], "a");
    let (text, done) = content(&body);
    assert!(done && text.ends_with(&BROKEN.concat()), "{text}");
    assert!(frontier.requests().is_empty());
    assert_eq!(
        metric(
            &gw.metrics(),
            r#"tiergate_hold_backs_total{outcome="over_bytes",tier="primitive",upstream="a"}"#
        ),
        Some(1.0)
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn past_max_wait_a_slow_stream_is_released_and_streams_on() {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let rx = std::sync::Mutex::new(Some(rx));
    let local =
        MockUpstream::start(move |_| Reply::Channel(rx.lock().unwrap().take().unwrap())).await;
    let frontier = MockUpstream::start(|_| sse("model-b", &GOOD, (1, 1))).await;
    let gw = Gateway::start(&policy(
        &local.base_url(),
        &frontier.base_url(),
        "{ max_bytes: 65536, max_wait: 300ms }",
    ))
    .await;
    let events = stream_events("model-a", &BROKEN, None);
    tx.send(Bytes::from(events[0].clone())).unwrap();
    tx.send(Bytes::from(events[1].clone())).unwrap();
    let started = Instant::now();
    let resp = client()
        .request(request(&gw.url("/v1/chat/completions"), ask(), &[]))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-tiergate-escalated").is_none());
    assert!(started.elapsed() >= Duration::from_millis(300), "not held");
    let mut body = resp.into_body();
    // What was held arrives while the upstream is still writing: released, streaming on.
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("python") {
        let f = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the held bytes were not released")
            .unwrap()
            .unwrap();
        got.extend_from_slice(f.data_ref().unwrap());
    }
    for e in &events[2..] {
        tx.send(Bytes::from(e.clone())).unwrap();
    }
    drop(tx);
    while let Some(f) = body.frame().await {
        got.extend_from_slice(f.unwrap().data_ref().unwrap());
    }
    assert_eq!(content(&got), (BROKEN.concat(), true));
    assert!(frontier.requests().is_empty());
    assert_eq!(
        metric(
            &gw.metrics(),
            r#"tiergate_hold_backs_total{outcome="over_time",tier="primitive",upstream="a"}"#
        ),
        Some(1.0)
    );
    gw.shutdown().await;
}
