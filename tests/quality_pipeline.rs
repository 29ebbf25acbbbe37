//! Answer quality in the gateway, over real sockets with scripted upstreams: an answer that
//! fails a tier's `escalate_on` check is asked again of the next upstream and the client
//! gets the better one; chat answers are checked (whole, and at the end of a stream);
//! `POST /v1/feedback` is counted against who answered; a conversation asked again is a retry;
//! past a tier's `checks_per_second` answers go unchecked, and are counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const BROKEN: &str = "Here:\n```python\ndef f(x)\n    return x\n```";
const GOOD: &str = "Here:\n```python\ndef f(x):\n    return x\n```";

fn policy(local: &str, frontier: &str, escalate: &str) -> String {
    two_tier_policy(local, frontier)
        .replace(
            "price: { input_per_mtok: 0, output_per_mtok: 0 }",
            "price: { input_per_mtok: 1, output_per_mtok: 2 }",
        )
        .replace(
            "  - name: primitive\n    upstreams: [a, b]",
            &format!("  - name: primitive\n    upstreams: [a, b]\n{escalate}"),
        )
}

fn ask(stream: bool) -> String {
    json!({"model": "primitive", "stream": stream, "messages": [{"role": "user", "content": "Write a Python identity function f."}]}).to_string()
}

/// A local upstream whose whole answers fail the syntax check and whose streams are cut at
/// the token limit.
async fn broken_local() -> MockUpstream {
    MockUpstream::start(|r| {
        if r.json()["stream"] == true {
            let mut events =
                stream_events("model-a", &["```python\n", "def f(x):\n"], Some((5, 2)));
            events[3] = events[3].replace("\"stop\"", "\"length\"");
            Reply::Sse(events.into_iter().map(|e| (Duration::ZERO, e)).collect())
        } else {
            Reply::Json(200, completion("model-a", BROKEN, 1, 1))
        }
    })
    .await
}

async fn good_frontier() -> MockUpstream {
    MockUpstream::start(|_| Reply::Json(200, completion("model-b", GOOD, 1, 1))).await
}

/// Waits for a metric to reach `want` (the checks run off the request's path).
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
async fn a_failed_check_escalates_and_the_better_answer_reaches_the_client() {
    let local =
        MockUpstream::start(|_| Reply::Json(200, completion("model-a", BROKEN, 100, 1000))).await;
    let frontier =
        MockUpstream::start(|_| Reply::Json(200, completion("model-b", GOOD, 100, 50))).await;
    let gw = Gateway::start(&policy(
        &local.base_url(),
        &frontier.base_url(),
        "    escalate_on: [syntax, truncated]\n",
    ))
    .await;
    let (status, headers, body) = post(&gw.url("/v1/chat/completions"), ask(false), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["choices"][0]["message"]["content"], GOOD);
    assert_eq!(headers["x-tiergate-escalated"], "a");
    assert_eq!(headers["x-tiergate-upstream"], "b");
    assert_eq!((local.requests().len(), frontier.requests().len()), (1, 1));
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
            r#"tiergate_answer_checks_total{check="syntax",result="fail",tier="primitive",upstream="a"}"#
        ),
        Some(1.0)
    );
    // Both answers are paid for: the discarded one at a's prices (100 * 1 + 1000 * 2 per M).
    let cost_a = metric(
        &m,
        r#"tiergate_cost_usd_total{tier="primitive",upstream="a"}"#,
    )
    .unwrap();
    assert!((cost_a - 0.0021).abs() < 1e-12, "{cost_a}");
    assert!(
        metric(
            &m,
            r#"tiergate_cost_usd_total{tier="primitive",upstream="b"}"#
        )
        .unwrap()
            > 0.0
    );
    eventually(&gw, r#"tiergate_answer_checks_total{check="syntax",result="pass",tier="primitive",upstream="b"}"#, 1.0).await;

    // A good first answer is not escalated.
    let good = MockUpstream::start(|_| Reply::Json(200, completion("model-a", GOOD, 1, 1))).await;
    let gw2 = Gateway::start(&policy(
        &good.base_url(),
        &frontier.base_url(),
        "    escalate_on: [syntax]\n",
    ))
    .await;
    let (status, headers, _) = post(&gw2.url("/v1/chat/completions"), ask(false), &[]).await;
    assert_eq!(
        (
            status.as_u16(),
            headers.get("x-tiergate-escalated").is_none()
        ),
        (200, true)
    );
    assert_eq!(frontier.requests().len(), 1, "no second call");
    gw.shutdown().await;
    gw2.shutdown().await;
}

#[tokio::test]
async fn without_escalate_on_answers_pass_through_and_are_checked_streams_too() {
    let (local, frontier) = (broken_local().await, good_frontier().await);
    let gw = Gateway::start(&policy(&local.base_url(), &frontier.base_url(), "")).await;
    let (status, headers, body) = post(&gw.url("/v1/chat/completions"), ask(false), &[]).await;
    assert_eq!(
        (
            status.as_u16(),
            json(&body)["choices"][0]["message"]["content"].as_str()
        ),
        (200, Some(BROKEN))
    );
    assert!(headers.get("x-tiergate-escalated").is_none());
    assert!(frontier.requests().is_empty());
    eventually(&gw, r#"tiergate_answer_checks_total{check="syntax",result="fail",tier="primitive",upstream="a"}"#, 1.0).await;
    let (status, _, body) = post(&gw.url("/v1/chat/completions"), ask(true), &[]).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("[DONE]"));
    eventually(&gw, r#"tiergate_answer_checks_total{check="truncated",result="fail",tier="primitive",upstream="a"}"#, 1.0).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn past_the_check_budget_answers_are_counted_unchecked_but_escalation_still_checks() {
    let (local, frontier) = (broken_local().await, good_frontier().await);
    // A budget of one check per 100 s: the first answer is checked, the next ones are not.
    let gw = Gateway::start(&policy(
        &local.base_url(),
        &frontier.base_url(),
        "    checks_per_second: 0.01\n",
    ))
    .await;
    for stream in [false, false, true, false] {
        let (status, _, _) = post(&gw.url("/v1/chat/completions"), ask(stream), &[]).await;
        assert_eq!(status, 200);
    }
    let syntax_fail = r#"tiergate_answer_checks_total{check="syntax",result="fail",tier="primitive",upstream="a"}"#;
    eventually(&gw, syntax_fail, 1.0).await;
    eventually(
        &gw,
        r#"tiergate_answers_unchecked_total{reason="budget",tier="primitive"}"#,
        3.0,
    )
    .await;
    let m = gw.metrics();
    assert_eq!(metric(&m, syntax_fail), Some(1.0), "{m}");
    assert_eq!(
        metric(
            &m,
            r#"tiergate_answers_unchecked_total{reason="too_long",tier="primitive"}"#
        ),
        Some(0.0),
        "{m}"
    );

    // A tier that escalates checks every answer, whatever its budget says.
    let gw2 = Gateway::start(&policy(
        &local.base_url(),
        &frontier.base_url(),
        "    checks_per_second: 0\n    escalate_on: [syntax]\n",
    ))
    .await;
    for _ in 0..3 {
        let (status, headers, body) = post(&gw2.url("/v1/chat/completions"), ask(false), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-tiergate-escalated"], "a");
        assert_eq!(json(&body)["choices"][0]["message"]["content"], GOOD);
    }
    let m = gw2.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_answers_unchecked_total{reason="budget",tier="primitive"}"#
        ),
        Some(0.0),
        "{m}"
    );
    gw.shutdown().await;
    gw2.shutdown().await;
}

#[tokio::test]
async fn feedback_is_counted_for_the_answer_it_names_and_bad_bodies_are_refused() {
    let local = MockUpstream::start(|_| Reply::Json(200, completion("model-a", GOOD, 1, 1))).await;
    let frontier =
        MockUpstream::start(|_| Reply::Json(200, completion("model-b", GOOD, 1, 1))).await;
    let gw = Gateway::start(&policy(&local.base_url(), &frontier.base_url(), "")).await;
    let (_, headers, _) = post(&gw.url("/v1/chat/completions"), ask(false), &[]).await;
    let id = headers["x-tiergate-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let fb = gw.url("/v1/feedback");
    let (status, _, body) = post(
        &fb,
        json!({"request_id": id, "rating": "up", "comment": "nice"}).to_string(),
        &[],
    )
    .await;
    assert_eq!(status, 204, "{body:?}");
    let (status, _, _) = post(
        &fb,
        json!({"request_id": id, "rating": 0.2}).to_string(),
        &[],
    )
    .await;
    assert_eq!(status, 204);
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_feedback_total{rating="up",tier="primitive",upstream="a"}"#
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"tiergate_feedback_total{rating="down",tier="primitive",upstream="a"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"tiergate_feedback_score_total{tier="primitive",upstream="a"}"#
        ),
        Some(1.2)
    );
    for (body, status, code) in [
        ("{\"request_id\": ".to_string(), 400, "invalid_json"),
        (
            json!({"request_id": id, "rating": 2}).to_string(),
            400,
            "invalid_value",
        ),
        (
            json!({"request_id": id, "rating": "great"}).to_string(),
            400,
            "invalid_value",
        ),
        (
            json!({"rating": "up"}).to_string(),
            400,
            "missing_required_parameter",
        ),
        (
            json!({"request_id": "never-seen", "rating": "up"}).to_string(),
            404,
            "unknown_request_id",
        ),
    ] {
        let (s, _, b) = post(&fb, body.clone(), &[]).await;
        assert_eq!(s.as_u16(), status, "{body}");
        assert_eq!(json(&b)["error"]["code"], code, "{body}");
        assert!(json(&b)["error"]["message"].as_str().unwrap().len() > 10);
    }
    let (s, _) = get(&fb).await;
    assert_eq!(s, 405);

    // The same conversation again: a retry of a's answer; then pinned to b by hand: an override.
    post(&gw.url("/v1/chat/completions"), ask(false), &[]).await;
    let pinned = json!({"model": "b", "messages": [{"role": "user", "content": "Write a Python identity function f."}]});
    let (_, headers, _) = post(&gw.url("/v1/chat/completions"), pinned.to_string(), &[]).await;
    assert_eq!(headers["x-tiergate-upstream"], "b");
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_implicit_feedback_total{signal="retry",tier="primitive",upstream="a"}"#
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"tiergate_implicit_feedback_total{signal="override",tier="primitive",upstream="a"}"#
        ),
        Some(1.0),
        "{m}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_probe_exports_scores_and_its_floor_spills_the_primitive_tier_over() {
    let local =
        MockUpstream::start(|_| Reply::Json(200, completion("model-a", BROKEN, 10, 10))).await;
    let frontier =
        MockUpstream::start(|_| Reply::Json(200, completion("model-b", GOOD, 1, 1))).await;
    let text = policy(&local.base_url(), &frontier.base_url(), "")
        + "probe: { interval: 1h, upstreams: [a], floor: 0.9, max_tokens: 64 }\n";
    let gw = Gateway::start(&text).await;
    let suite = tiergate::quality::probe::SUITE;
    for _ in 0..1000 {
        if gw.app.probe_scores.get("a").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let score = gw.app.probe_scores.get("a").expect("the probe ran");
    assert!(score < 0.9, "{score}");
    assert_eq!(local.requests().len(), suite.len(), "one request per task");
    assert_eq!(local.requests()[0].json()["max_tokens"], 64);
    assert!(
        frontier.requests().is_empty(),
        "only the policy's probe upstreams are probed"
    );
    let m = gw.metrics();
    for t in suite {
        let v = metric(
            &m,
            &format!(r#"tiergate_probe_score{{task="{}",upstream="a"}}"#, t.name),
        );
        assert!(
            v.is_some_and(|v| (0.0..0.9).contains(&v)),
            "{}: {v:?}",
            t.name
        );
    }
    // Under the floor: the primitive tier answers from b, and says so.
    let (status, headers, _) = post(&gw.url("/v1/chat/completions"), ask(false), &[]).await;
    assert_eq!(
        (
            status.as_u16(),
            headers["x-tiergate-upstream"].to_str().unwrap()
        ),
        (200, "b")
    );
    assert_eq!(local.requests().len(), suite.len(), "a is not asked");
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_fallbacks_total{from="a",reason="probe_floor",to="b"}"#
        ),
        Some(1.0),
        "{m}"
    );
    // Back over the floor (a better round), the local upstream answers again.
    gw.app.probe_scores.set("a", 0.95);
    let (_, headers, _) = post(&gw.url("/v1/chat/completions"), ask(false), &[]).await;
    assert_eq!(headers["x-tiergate-upstream"], "a");
    gw.shutdown().await;
}

/// An answer that is cut at the token limit, in Anthropic's Messages shape.
fn messages_answer(stream: bool) -> Reply {
    let text = "```python\ndef f(x):\n";
    if !stream {
        return Reply::Json(
            200,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                   "content": [{"type": "text", "text": text}], "stop_reason": "max_tokens",
                   "usage": {"input_tokens": 5, "output_tokens": 2}}),
        );
    }
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 2}}),
        json!({"type": "message_stop"}),
    ];
    Reply::Sse(
        events
            .iter()
            .map(|e| {
                let kind = e["type"].as_str().unwrap();
                (Duration::ZERO, format!("event: {kind}\ndata: {e}\n\n"))
            })
            .collect(),
    )
}

/// Answers in Anthropic's wire format are checked too: asked in Messages (passed through) and
/// in chat (translated), whole and streamed.
#[tokio::test]
async fn answers_from_an_anthropic_upstream_are_checked_in_every_client_format() {
    let an = MockUpstream::start(|r| messages_answer(r.json()["stream"] == true)).await;
    let policy = format!(
        r#"
upstreams:
  - name: an
    kind: anthropic
    base_url: {}
    api_key: ak
    model: claude-x
    timeouts: {{ connect: 1s, first_byte: 2s, total: 10s }}
    price: {{ input_per_mtok: 3, output_per_mtok: 15 }}
tiers:
  - name: primitive
    upstreams: [an]
  - name: architecture
    upstreams: [an]
"#,
        an.base_url()
    );
    let gw = Gateway::start(&policy).await;
    let sample = r#"tiergate_answer_checks_total{check="truncated",result="fail",tier="architecture",upstream="an"}"#;
    let mut seen = 0.0;
    for (path, stream) in [
        ("/v1/messages", false),
        ("/v1/messages", true),
        ("/v1/chat/completions", false),
        ("/v1/chat/completions", true),
    ] {
        let body = json!({"model": "architecture", "stream": stream, "max_tokens": 50,
                          "messages": [{"role": "user", "content": "Write a Python identity function f."}]});
        let (status, _, got) = post(&gw.url(path), body.to_string(), &[]).await;
        assert_eq!(
            status,
            200,
            "{path} {stream}: {}",
            String::from_utf8_lossy(&got)
        );
        seen += 1.0;
        eventually(&gw, sample, seen).await;
    }
    gw.shutdown().await;
}
