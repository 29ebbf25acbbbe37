#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The one lifecycle, over real sockets: a stream that breaks ends with an error event in
//! the client's own format on every endpoint (passed through or translated, cut before or
//! after content); every route answers a wrong method with 405, `Allow` and its endpoint's
//! error shape; count_tokens is counted like every request.

mod common;

use std::time::Duration;

use common::{Gateway, MockUpstream, Received, Reply, metric, post};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

fn policy(chat: &str, anthropic: &str, responses: &str) -> String {
    format!(
        r#"
upstreams:
  - name: oa
    kind: openai
    base_url: {chat}
    api_key: k
    model: gpt-x
    retry: {{ attempts: 0 }}
  - name: an
    kind: anthropic
    base_url: {anthropic}
    api_key: ak
    model: claude-x
    retry: {{ attempts: 0 }}
  - name: rs
    kind: openai
    base_url: {responses}
    api_key: k
    model: gpt-r
    responses_api: true
    retry: {{ attempts: 0 }}
tiers:
  - name: primitive
    upstreams: [oa]
  - name: architecture
    upstreams: [an]
  - name: responder
    upstreams: [rs]
"#
    )
}

const CUT_AFTER: &str = "cut-after-content";

/// The upstream's first events, in its own format, then the connection breaks: after the
/// first event only, or after some text too when the prompt says so.
fn cut(r: &Received) -> Reply {
    let after = String::from_utf8_lossy(&r.body).contains(CUT_AFTER);
    let mut events: Vec<String> = match r.path.as_str() {
        p if p.ends_with("/chat/completions") => vec![
            r#"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#.into(),
            r#"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello"}}]}"#.into(),
        ],
        p if p.ends_with("/messages") => vec![
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}".into(),
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}".into(),
        ],
        _ => vec![
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[]}}".into(),
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"m1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hello\"}".into(),
        ],
    };
    if !after {
        events.truncate(1);
    }
    Reply::Truncated(events.into_iter().map(|e| e + "\n\n").collect())
}

/// The SSE events of a body: (event name, data as JSON).
fn events(body: &[u8]) -> Vec<(Option<String>, Value)> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .filter_map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .map(str::to_owned);
            let data = e.lines().find_map(|l| l.strip_prefix("data: "))?;
            (data != "[DONE]").then(|| (name, serde_json::from_str(data).unwrap()))
        })
        .collect()
}

fn body(path: &str, text: &str) -> String {
    let msgs = json!([{"role": "user", "content": text}]);
    match path {
        "/v1/messages" => {
            json!({"model": "auto", "max_tokens": 64, "stream": true, "messages": msgs})
        }
        "/v1/responses" => json!({"model": "auto", "stream": true, "input": msgs}),
        _ => json!({"model": "auto", "stream": true, "messages": msgs}),
    }
    .to_string()
}

#[tokio::test]
async fn a_broken_stream_ends_with_an_error_event_in_the_client_format() {
    let (oa, an, rs) = (
        MockUpstream::start(cut).await,
        MockUpstream::start(cut).await,
        MockUpstream::start(cut).await,
    );
    let gw = Gateway::start(&policy(&oa.base_url(), &an.base_url(), &rs.base_url())).await;
    // (client path, tier, what the last event must be)
    let cases = [
        ("/v1/chat/completions", "primitive", "chat"),
        ("/v1/chat/completions", "architecture", "chat"),
        ("/v1/messages", "architecture", "anthropic"),
        ("/v1/messages", "primitive", "anthropic"),
        ("/v1/responses", "responder", "responses"),
        ("/v1/responses", "primitive", "responses"),
        ("/v1/responses", "architecture", "responses"),
    ];
    for (path, tier, shape) in cases {
        for text in ["cut-before-content", CUT_AFTER] {
            let what = format!("{path} via {tier}, {text}");
            let (status, headers, bytes) = post(
                &gw.url(path),
                body(path, text),
                &[("x-tiergate-tier", tier)],
            )
            .await;
            assert_eq!(status, 200, "{what}: {}", String::from_utf8_lossy(&bytes));
            assert!(
                headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/event-stream"),
                "{what}"
            );
            let evs = events(&bytes);
            let (name, last) = evs.last().unwrap_or_else(|| panic!("{what}: no event"));
            match shape {
                "chat" => {
                    assert!(last["error"]["message"].is_string(), "{what}: {last}");
                    assert_eq!(last["error"]["type"], "server_error", "{what}");
                }
                "anthropic" => {
                    assert_eq!(name.as_deref(), Some("error"), "{what}: {last}");
                    let kind = last["error"]["type"].as_str().unwrap();
                    assert!(["api_error", "overloaded_error"].contains(&kind), "{what}");
                }
                _ => {
                    let n = name.as_deref().unwrap_or_default();
                    assert!(
                        ["error", "response.failed"].contains(&n),
                        "{what}: {n} {last}"
                    );
                    assert!(
                        !evs.iter()
                            .any(|(n, _)| n.as_deref() == Some("response.completed")),
                        "{what}: a broken stream claimed completion"
                    );
                }
            }
            if text == CUT_AFTER {
                assert!(String::from_utf8_lossy(&bytes).contains("Hello"), "{what}");
            }
        }
    }
    // Every break is counted against the upstream that broke (two cuts per case).
    let m = gw.metrics();
    for (tier, up, n) in [
        ("primitive", "oa", 6.0),
        ("architecture", "an", 6.0),
        ("responder", "rs", 2.0),
    ] {
        let broken = metric(
            &m,
            &format!(
                "tiergate_stream_errors_total{{reason=\"broken\",tier=\"{tier}\",upstream=\"{up}\"}}"
            ),
        );
        assert_eq!(broken, Some(n), "{up}: {m}");
    }
}

#[tokio::test]
async fn every_route_answers_a_wrong_method_with_405_in_its_own_shape() {
    let up = MockUpstream::start(|_| Reply::Json(200, json!({}))).await;
    let gw = Gateway::start(&policy(&up.base_url(), &up.base_url(), &up.base_url())).await;
    for route in tiergate::router::ROUTES {
        for path in route.paths {
            let wrong = if route.allow.contains("GET") {
                Method::DELETE
            } else {
                Method::GET
            };
            let req = Request::builder()
                .method(wrong.clone())
                .uri(gw.url(path))
                .body(Full::new(bytes::Bytes::new()))
                .unwrap();
            let resp = common::client().request(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let what = format!("{wrong} {path}");
            assert_eq!(parts.status, 405, "{what}");
            assert_eq!(parts.headers["allow"], route.allow, "{what}");
            let v: Value = serde_json::from_slice(&body).unwrap();
            if path.starts_with("/v1/messages") {
                assert_eq!(v["type"], "error", "{what}: {v}");
                assert_eq!(v["error"]["type"], "invalid_request_error", "{what}");
            } else {
                assert_eq!(v["error"]["code"], "method_not_allowed", "{what}: {v}");
            }
        }
    }
}

#[tokio::test]
async fn count_tokens_is_counted_estimated_or_forwarded() {
    let an = MockUpstream::start(|r: &Received| {
        assert!(r.path.ends_with("/messages/count_tokens"), "{}", r.path);
        Reply::Json(200, json!({"input_tokens": 42}))
    })
    .await;
    let oa = MockUpstream::start(|_| Reply::Json(500, json!({}))).await;
    let gw = Gateway::start(&policy(&oa.base_url(), &an.base_url(), &oa.base_url())).await;
    let body =
        json!({"model": "auto", "messages": [{"role": "user", "content": "count me"}]}).to_string();
    let url = gw.url("/v1/messages/count_tokens");
    let (status, headers, b) =
        post(&url, body.clone(), &[("x-tiergate-tier", "architecture")]).await;
    assert_eq!(status, 200);
    assert_eq!(common::json(&b)["input_tokens"], 42);
    assert_eq!(headers["x-tiergate-upstream"], "an");
    let (status, headers, b) = post(&url, body, &[("x-tiergate-tier", "primitive")]).await;
    assert_eq!(status, 200);
    assert!(common::json(&b)["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(headers["x-tiergate-upstream"], "estimate");
    assert!(
        oa.requests().is_empty(),
        "an OpenAI upstream was asked to count"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let m = gw.metrics();
    let counted = |tier: &str, up: &str| {
        metric(
            &m,
            &format!(
                "tiergate_requests_total{{client=\"other\",endpoint=\"count_tokens\",status_class=\"2xx\",tier=\"{tier}\",upstream=\"{up}\"}}"
            ),
        )
    };
    assert_eq!(counted("architecture", "an"), Some(1.0), "{m}");
    assert_eq!(counted("primitive", "none"), Some(1.0), "{m}");
    // A token count bills nothing.
    assert!(
        !m.lines()
            .any(|l| l.starts_with("tiergate_input_tokens_total")
                && l.contains("upstream=\"an\"")
                && !l.ends_with(" 0")),
        "{m}"
    );
}

#[tokio::test]
async fn count_tokens_has_an_access_log_line() {
    use std::io::BufRead;
    let up = MockUpstream::start(|_| Reply::Json(500, json!({}))).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        policy(&up.base_url(), &up.base_url(), &up.base_url()),
    )
    .unwrap();
    let mut child = common::Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_tiergate"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--policy",
            ])
            .arg(&file)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a log line")
    };
    let addr = loop {
        if let Some(a) = next()["message"]
            .as_str()
            .and_then(|m| m.strip_prefix("tiergate listening on http://"))
        {
            break a.to_string();
        }
    };
    let body = json!({"model": "primitive", "messages": [{"role": "user", "content": "hi"}]});
    let url = format!("http://{addr}/v1/messages/count_tokens");
    let (status, _, _) = post(&url, body.to_string(), &[("x-request-id", "count-1")]).await;
    assert_eq!(status, 200);
    loop {
        let v = next();
        if v["target"] == "tiergate::access" {
            assert_eq!(v["request_id"], "count-1", "{v}");
            assert_eq!(v["endpoint"], "count_tokens", "{v}");
            assert_eq!(v["status"], 200, "{v}");
            break;
        }
    }
}
