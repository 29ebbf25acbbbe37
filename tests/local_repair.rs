//! A local upstream marked `repair: true`, replaying what a real llama.cpp server with
//! Qwen2.5-Coder-0.5B sent (tests/fixtures/local-model/), behind the gateway over real
//! sockets: tool calls repaired (whole and streamed), unrepairable ones escalated to the
//! tier's next upstream, errors and first deltas in OpenAI's shape.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/local-model/");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIX}{name}")).unwrap()
}

/// The JSON body of a raw HTTP capture.
fn captured_body(name: &str) -> (u16, Value) {
    let raw = fixture(name);
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        json(raw.split_once("\r\n\r\n").unwrap().1.as_bytes()),
    )
}

/// The events of a captured stream.
fn captured_events(name: &str) -> Vec<(Duration, String)> {
    fixture(name)
        .split_inclusive("\n\n")
        .map(|e| (Duration::ZERO, e.to_string()))
        .collect()
}

/// `local` (repairs, maybe escalates) then `frontier` in tier primitive.
fn policy(local: &str, frontier: &str, escalate: bool) -> String {
    format!(
        r#"
upstreams:
  - name: local
    kind: openai
    base_url: {local}
    key_required: false
    model: qwen-configured
    repair: true
    escalate_unrepaired_tool_calls: {escalate}
    timeouts: {{ connect: 1s, first_byte: 5s, total: 10s }}
  - name: frontier
    kind: openai
    base_url: {frontier}
    api_key: k
    model: frontier-model
    timeouts: {{ connect: 1s, first_byte: 5s, total: 10s }}
tiers:
  - name: primitive
    upstreams: [local, frontier]
  - name: architecture
    upstreams: [frontier]
"#
    )
}

fn with_model(req: &str, stream: bool) -> String {
    let mut v: Value = serde_json::from_str(&fixture(req)).unwrap();
    v["model"] = json!("primitive");
    v["stream"] = json!(stream);
    v.to_string()
}

async fn frontier() -> MockUpstream {
    MockUpstream::start(|r| {
        if r.json()["stream"] == json!(true) {
            Reply::Sse(
                stream_events("frontier-model", &["frontier"], Some((5, 1)))
                    .into_iter()
                    .map(|e| (Duration::ZERO, e))
                    .collect(),
            )
        } else {
            Reply::Json(200, completion("frontier-model", "from frontier", 5, 1))
        }
    })
    .await
}

/// Data of every SSE event in a body.
fn events(body: &[u8]) -> Vec<Value> {
    std::str::from_utf8(body)
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| {
            if d == "[DONE]" {
                json!("[DONE]")
            } else {
                json(d.as_bytes())
            }
        })
        .collect()
}

#[tokio::test]
async fn tool_call_written_as_text_is_returned_as_tool_calls() {
    let (_, answer) = captured_body("qwen/04-tools.txt");
    let local = MockUpstream::start(move |_| Reply::Json(200, answer.clone())).await;
    let f = frontier().await;
    let gw = Gateway::start(&policy(&local.base_url(), &f.base_url(), true)).await;
    let (s, h, body) = post(
        &gw.url("/v1/chat/completions"),
        with_model("tools-req.json", false),
        &[],
    )
    .await;
    assert_eq!(
        (s.as_u16(), h["x-tiergate-upstream"].to_str().unwrap()),
        (200, "local")
    );
    let v = json(&body);
    assert_eq!(v["model"], "qwen-configured");
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], Value::Null);
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(
        msg["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_tool_call_repairs_total{outcome="repaired",upstream="local"}"#
        ),
        Some(1.0)
    );
    assert!(f.requests().is_empty());
}

#[tokio::test]
async fn streamed_tool_call_is_repaired_with_and_without_escalation_configured() {
    for escalate in [true, false] {
        let local =
            MockUpstream::start(|_| Reply::Sse(captured_events("qwen/05-tools-stream.sse"))).await;
        let f = frontier().await;
        let gw = Gateway::start(&policy(&local.base_url(), &f.base_url(), escalate)).await;
        let (s, h, body) = post(
            &gw.url("/v1/chat/completions"),
            with_model("tools-req-stream.json", true),
            &[],
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(h["content-type"], "text/event-stream");
        let ev = events(&body);
        assert_eq!(ev.len(), 4, "{ev:?}");
        let call = &ev[0]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            (call["index"].as_u64(), call["function"]["name"].as_str()),
            (Some(0), Some("get_weather"))
        );
        assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
        assert_eq!(ev[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(ev[2]["usage"]["prompt_tokens"], 183);
        assert!(ev[..3].iter().all(|e| e["model"] == "qwen-configured"));
        assert_eq!(ev[3], "[DONE]");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let m = gw.metrics();
        assert_eq!(
            metric(
                &m,
                r#"tiergate_tool_call_repairs_total{outcome="repaired",upstream="local"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            metric(
                &m,
                r#"tiergate_input_tokens_total{source="reported",tier="primitive",upstream="local"}"#
            ),
            Some(183.0)
        );
    }
}

#[tokio::test]
async fn unrepairable_answer_is_escalated_to_the_next_upstream() {
    // tool_choice required, and the model answers in prose.
    let local = MockUpstream::start(|r| {
        if r.json()["stream"] == json!(true) {
            Reply::Sse(captured_events("qwen/03-stream.sse"))
        } else {
            Reply::Json(200, captured_body("qwen/02-chat.txt").1)
        }
    })
    .await;
    let f = frontier().await;
    let gw = Gateway::start(&policy(&local.base_url(), &f.base_url(), true)).await;
    let url = gw.url("/v1/chat/completions");

    let (s, h, body) = post(&url, with_model("tools-req-required.json", false), &[]).await;
    assert_eq!(
        (s.as_u16(), h["x-tiergate-upstream"].to_str().unwrap()),
        (200, "frontier")
    );
    assert_eq!(
        json(&body)["choices"][0]["message"]["content"],
        "from frontier"
    );

    let (s, h, body) = post(&url, with_model("tools-req-required.json", true), &[]).await;
    assert_eq!(
        (s.as_u16(), h["x-tiergate-upstream"].to_str().unwrap()),
        (200, "frontier")
    );
    assert!(String::from_utf8_lossy(&body).contains("frontier"));

    assert_eq!(local.requests().len(), 2);
    assert_eq!(f.requests().len(), 2);
    assert_eq!(f.requests()[0].json()["model"], "frontier-model");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_tool_call_repairs_total{outcome="failed",upstream="local"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"tiergate_escalations_total{from="local",reason="unrepaired_tool_call",to="frontier"}"#
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn without_escalation_the_unrepaired_answer_is_returned_and_counted() {
    let local =
        MockUpstream::start(|_| Reply::Json(200, captured_body("qwen/02-chat.txt").1)).await;
    let f = frontier().await;
    let gw = Gateway::start(&policy(&local.base_url(), &f.base_url(), false)).await;
    let (s, h, body) = post(
        &gw.url("/v1/chat/completions"),
        with_model("tools-req-required.json", false),
        &[],
    )
    .await;
    assert_eq!(
        (s.as_u16(), h["x-tiergate-upstream"].to_str().unwrap()),
        (200, "local")
    );
    assert_eq!(
        json(&body)["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );
    assert!(f.requests().is_empty());
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_tool_call_repairs_total{outcome="failed",upstream="local"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn errors_and_first_deltas_get_openai_shape() {
    let local = MockUpstream::start(|r| {
        if r.json()["stream"] == json!(true) {
            Reply::Sse(captured_events("qwen/03-stream.sse"))
        } else {
            let (status, body) = captured_body("qwen/07-error-missing-messages.txt");
            Reply::Json(status, body)
        }
    })
    .await;
    let f = frontier().await;
    let gw = Gateway::start(&policy(&local.base_url(), &f.base_url(), true)).await;
    let url = gw.url("/v1/chat/completions");

    let (s, _, body) = post(&url, chat("primitive", "hi"), &[]).await;
    assert_eq!(s, 400);
    let e = &json(&body)["error"];
    assert_eq!(
        (e["code"].as_str(), e["type"].as_str()),
        (Some("invalid_request"), Some("invalid_request_error"))
    );
    assert!(e.as_object().unwrap().contains_key("param"));

    let body = json!({"model": "primitive", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (s, _, body) = post(&url, body.to_string(), &[]).await;
    assert_eq!(s, 200);
    let ev = events(&body);
    assert_eq!(
        ev[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(
        ev.iter()
            .all(|e| e == "[DONE]" || e["model"] == "qwen-configured")
    );
    assert!(
        !ev.iter().any(|e| e.get("usage").is_some()),
        "usage stripped: the client did not ask"
    );
}
