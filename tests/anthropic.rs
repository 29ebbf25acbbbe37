#![allow(clippy::unwrap_used)]
//! Anthropic both ways, over real sockets: chat completions served by a strict mock of the
//! Anthropic Messages API, and `/v1/messages` served by that mock (passthrough) or by an
//! OpenAI-compatible mock (translated), streams and tools included.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const TOOL_RESPONSE: &str = include_str!("fixtures/anthropic/messages_response_tool_use.json");
const TOOL_STREAM: &str = include_str!("fixtures/anthropic/stream_tool_use.sse");
const CHAT_TOOL_STREAM: &str = include_str!("fixtures/anthropic/chat_stream_tool_calls.sse");
const CLAUDE_CODE: &str = include_str!("fixtures/anthropic/claude_code_request.json");

/// Each SSE event of a transcript as its own chunk.
fn sse(transcript: &str) -> Reply {
    Reply::Sse(
        transcript
            .split_inclusive("\n\n")
            .map(|e| (Duration::ZERO, e.to_string()))
            .collect(),
    )
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> Reply {
    Reply::Json(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

/// What the real API checks before answering: key, version, max_tokens, roles.
/// `role: "system"` inside messages is refused unless the per-turn-control beta is on (the
/// shape Claude Code sends with that beta).
fn strict_check(r: &Received) -> Option<Reply> {
    if r.headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("ak") {
        return Some(anthropic_error(
            401,
            "authentication_error",
            "invalid x-api-key",
        ));
    }
    if r.headers.get("anthropic-version").is_none() {
        return Some(anthropic_error(
            400,
            "invalid_request_error",
            "anthropic-version header is required",
        ));
    }
    if r.headers.contains_key("authorization") {
        return Some(anthropic_error(
            400,
            "invalid_request_error",
            "unexpected authorization header",
        ));
    }
    let body: Value = match serde_json::from_slice(&r.body) {
        Ok(v) => v,
        Err(_) => return Some(anthropic_error(400, "invalid_request_error", "not JSON")),
    };
    if r.path.ends_with("/messages") && body["max_tokens"].as_u64().is_none() {
        return Some(anthropic_error(
            400,
            "invalid_request_error",
            "max_tokens: Field required",
        ));
    }
    let per_turn = r
        .headers
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|b| b.contains("per-turn-control"));
    for m in body["messages"].as_array().into_iter().flatten() {
        let role = m["role"].as_str().unwrap_or("");
        if role != "user" && role != "assistant" && !(role == "system" && per_turn) {
            return Some(anthropic_error(
                400,
                "invalid_request_error",
                &format!("messages: Unexpected role \"{role}\""),
            ));
        }
    }
    None
}

fn policy(anthropic: &str, openai: &str) -> String {
    format!(
        r#"
upstreams:
  - name: an
    kind: anthropic
    base_url: {anthropic}
    api_key: ak
    model: claude-x
    default_max_tokens: 1234
    timeouts: {{ connect: 1s, first_byte: 2s, total: 10s }}
    price: {{ input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 }}
  - name: oa
    kind: openai
    base_url: {openai}
    api_key: ok
    model: gpt-x
    timeouts: {{ connect: 1s, first_byte: 2s, total: 10s }}
    price: {{ input_per_mtok: 0, output_per_mtok: 0 }}
tiers:
  - name: primitive
    upstreams: [oa]
  - name: architecture
    upstreams: [an, oa]
  - name: claude
    upstreams: [an]
reference_upstream: an
"#
    )
}

async fn setup(
    anthropic: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    openai: impl Fn(&Received) -> Reply + Send + Sync + 'static,
) -> (MockUpstream, MockUpstream, Gateway) {
    let an = MockUpstream::start(move |r| strict_check(r).unwrap_or_else(|| anthropic(r))).await;
    let oa = MockUpstream::start(openai).await;
    let gw = Gateway::start(&policy(&an.base_url(), &oa.base_url())).await;
    (an, oa, gw)
}

fn unused(_: &Received) -> Reply {
    Reply::Json(500, json!({"error": {"message": "should not be called"}}))
}

fn chat_tools_body(stream: bool, include_usage: bool) -> String {
    let mut v: Value =
        serde_json::from_str(include_str!("fixtures/anthropic/chat_request_tools.json")).unwrap();
    v["model"] = json!("claude");
    v["stream"] = json!(stream);
    v["stream_options"] = json!({"include_usage": include_usage});
    v.as_object_mut().unwrap().remove("max_tokens");
    v.to_string()
}

/// The SSE data payloads of a body (JSON), `[DONE]` left out.
fn data_events(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn chat_is_translated_for_a_strict_anthropic_upstream() {
    let (an, _oa, gw) = setup(
        |_| Reply::Json(200, serde_json::from_str(TOOL_RESPONSE).unwrap()),
        unused,
    )
    .await;
    let (status, headers, body) = post(
        &gw.url("/v1/chat/completions"),
        chat_tools_body(false, false),
        &[("anthropic-beta", "prompt-caching-2024-07-31,evil-beta")],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-tiergate-upstream"], "an");
    let v = json(&body);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\",\"unit\":\"celsius\"}"
    );
    assert_eq!(v["usage"]["prompt_tokens"], 12520);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 10000);

    let sent = &an.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        sent.headers["anthropic-beta"], "prompt-caching-2024-07-31",
        "only allowed betas"
    );
    let b = sent.json();
    assert_eq!(b["model"], "claude-x");
    assert_eq!(b["max_tokens"], 1234, "the upstream's default_max_tokens");
    assert_eq!(b["system"][0]["text"], "You are a coding assistant.");
    assert_eq!(b["messages"][2]["content"][0]["type"], "tool_result");

    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_input_tokens_total{source="reported",tier="claude",upstream="an"}"#
        ),
        Some(12520.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"tiergate_cached_input_tokens_total{tier="claude",upstream="an"}"#
        ),
        Some(10000.0)
    );
}

#[tokio::test]
async fn chat_streams_are_translated_with_tool_arguments_and_usage() {
    let (_an, _oa, gw) = setup(|_| sse(TOOL_STREAM), unused).await;
    for include_usage in [true, false] {
        let (status, headers, body) = post(
            &gw.url("/v1/chat/completions"),
            chat_tools_body(true, include_usage),
            &[],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "text/event-stream");
        assert!(body.ends_with(b"data: [DONE]\n\n"));
        let chunks = data_events(&body);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Okay, let's check the weather for San Francisco, CA:");
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
        );
        let finish: Vec<&str> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
            .collect();
        assert_eq!(finish, ["tool_calls"]);
        let usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
        assert_eq!(
            usage.len(),
            usize::from(include_usage),
            "usage chunk only when asked"
        );
    }
    // Both requests were recorded with the reported usage.
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_input_tokens_total{source="reported",tier="claude",upstream="an"}"#
        ),
        Some(2.0 * 772.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"tiergate_output_tokens_total{source="reported",tier="claude",upstream="an"}"#
        ),
        Some(2.0 * 89.0)
    );
}

#[tokio::test]
async fn anthropic_errors_become_openai_errors() {
    let (_an, _oa, gw) = setup(
        |_| anthropic_error(400, "invalid_request_error", "prompt is too long"),
        unused,
    )
    .await;
    let (status, headers, body) =
        post(&gw.url("/v1/chat/completions"), chat("claude", "hi"), &[]).await;
    assert_eq!(status, 400);
    assert_eq!(headers["x-should-retry"], "false");
    let v = json(&body);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["message"], "prompt is too long");

    // Untranslatable for an Anthropic-only route: refused before any upstream call.
    let (_an2, _oa2, gw2) = setup(unused, unused).await;
    let body = json!({"model": "claude", "n": 2, "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    let (status, _, body) = post(&gw2.url("/v1/chat/completions"), body, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(json(&body)["error"]["param"], "n");
    assert!(_an2.requests().is_empty());
}

#[tokio::test]
async fn overloaded_anthropic_falls_back_to_openai() {
    let (an, oa, gw) = setup(
        |_| anthropic_error(529, "overloaded_error", "Overloaded"),
        |_| Reply::Json(200, completion("gpt-x", "from openai", 5, 2)),
    )
    .await;
    let (status, headers, body) = post(
        &gw.url("/v1/chat/completions"),
        chat("architecture", "hi"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-tiergate-upstream"], "oa");
    assert_eq!(
        json(&body)["choices"][0]["message"]["content"],
        "from openai"
    );
    assert_eq!((an.requests().len(), oa.requests().len()), (1, 1));
    assert_eq!(
        metric(
            &gw.metrics(),
            r#"tiergate_fallbacks_total{from="an",reason="server_error",to="oa"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn messages_pass_through_to_anthropic_untouched() {
    let (an, _oa, gw) = setup(
        |r| {
            if r.json()["stream"] == true {
                sse(TOOL_STREAM)
            } else {
                Reply::Json(200, serde_json::from_str(TOOL_RESPONSE).unwrap())
            }
        },
        unused,
    )
    .await;
    let mut req: Value = serde_json::from_str(CLAUDE_CODE).unwrap();
    req["model"] = json!("claude");
    let headers = [
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "per-turn-control-2026-07-01"),
        ("user-agent", "claude-cli/2.1.332 (external, sdk-cli)"),
    ];
    let (status, h, body) = post(&gw.url("/v1/messages"), req.to_string(), &headers).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h["x-tiergate-upstream"], "an");
    assert_eq!(
        String::from_utf8_lossy(&body),
        TOOL_STREAM,
        "the stream is passed on byte for byte"
    );
    let sent = an.requests()[0].json();
    let mut expected = req.clone();
    expected["model"] = json!("claude-x");
    assert_eq!(sent, expected, "only the model is rewritten");
    assert_eq!(
        an.requests()[0].headers["anthropic-beta"],
        "per-turn-control-2026-07-01"
    );
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_input_tokens_total{source="reported",tier="claude",upstream="an"}"#
        ),
        Some(772.0)
    );

    // Without the beta, the strict mock refuses the system role, and the error reaches the
    // client in Anthropic's shape.
    let (status, _, body) = post(
        &gw.url("/v1/messages"),
        req.to_string(),
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(json(&body)["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn messages_are_translated_for_openai_upstreams() {
    let (_an, oa, gw) = setup(unused, |r| {
        if r.json()["stream"] == true {
            sse(CHAT_TOOL_STREAM)
        } else {
            Reply::Json(200, completion("gpt-x", "hello there", 10, 3))
        }
    })
    .await;
    let mut req: Value = serde_json::from_str(CLAUDE_CODE).unwrap();
    req["model"] = json!("primitive");
    let (status, h, body) = post(
        &gw.url("/v1/messages"),
        req.to_string(),
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h["x-tiergate-upstream"], "oa");
    let events = data_events(&body);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"message_start"));
    assert_eq!(&types[types.len() - 2..], ["message_delta", "message_stop"]);
    let delta = &events[events.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["input_tokens"], 80);
    let tools: Vec<&Value> = events
        .iter()
        .filter(|e| e["content_block"]["type"] == "tool_use")
        .collect();
    assert_eq!(tools.len(), 2);

    let sent = oa.requests()[0].json();
    assert_eq!(sent["model"], "gpt-x");
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(
        sent["tools"].as_array().unwrap().len(),
        1,
        "the deferred tool is dropped"
    );
    assert!(sent.get("thinking").is_none() && sent.get("output_config").is_none());

    req["stream"] = json!(false);
    let (status, _, body) = post(&gw.url("/v1/messages"), req.to_string(), &[]).await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["type"], "message");
    assert_eq!(
        v["content"][0],
        json!({"type": "text", "text": "hello there"})
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 10);
}

#[tokio::test]
async fn count_tokens_passes_through_or_estimates() {
    let (an, _oa, gw) = setup(|_| Reply::Json(200, json!({"input_tokens": 4242})), unused).await;
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "how many tokens is this"}]}).to_string();
    let (status, h, b) = post(
        &gw.url("/v1/messages/count_tokens"),
        body.clone(),
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json(&b)["input_tokens"], 4242);
    assert_eq!(an.requests()[0].path, "/v1/messages/count_tokens");
    assert!(!h.contains_key("x-tiergate-estimate"));

    let body = body.replace("\"claude\"", "\"primitive\"");
    let (status, h, b) = post(&gw.url("/v1/messages/count_tokens"), body, &[]).await;
    assert_eq!(status, 200);
    assert!(json(&b)["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(h["x-tiergate-estimate"], "true");
    assert_eq!(an.requests().len(), 1);
}

#[tokio::test]
async fn preflight_and_error_shapes() {
    let (_an, _oa, gw) = setup(unused, unused).await;
    let req = http::Request::head(gw.url("/api/hello"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(client().request(req).await.unwrap().status(), 200);
    let (status, _, body) = post(
        &gw.url("/v1/messages"),
        json!({"model": "nope", "max_tokens": 5, "messages": []}).to_string(),
        &[],
    )
    .await;
    assert_eq!(status, 404);
    let v = json(&body);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
}
