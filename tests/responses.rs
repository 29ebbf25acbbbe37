//! `POST /v1/responses` over real sockets: translated to chat completions for a local
//! server, chained through chat to Anthropic Messages, passed through to an upstream that
//! speaks the Responses API; refusals; the `client` and `endpoint` labels.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Gateway, MockUpstream, Received, Reply, json, post};
use serde_json::{Value, json};

fn policy(local: &str, anthropic: &str, openai: &str) -> String {
    format!(
        r#"
upstreams:
  - name: local
    kind: openai
    base_url: {local}
    model: qwen
    key_required: false
  - name: an
    kind: anthropic
    base_url: {anthropic}
    api_key: ak
    model: claude-x
  - name: oa
    kind: openai
    base_url: {openai}
    api_key: ok
    model: gpt-x
    responses_api: true
tiers:
  - name: primitive
    upstreams: [local]
  - name: architecture
    upstreams: [an]
  - name: openai
    upstreams: [oa]
"#
    )
}

/// What Codex sends, shortened: developer and user messages, a finished tool round, tools of
/// every kind, and its fields that have no chat equivalent.
fn codex_body(model: &str, stream: bool) -> String {
    json!({
        "model": model, "stream": stream, "store": false,
        "include": ["reasoning.encrypted_content"], "reasoning": {"summary": "auto"},
        "prompt_cache_key": "k", "client_metadata": {"x": "y"},
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>\n<cwd>/p</cwd>\n</environment_context>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Write hello.txt with the text: hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
            {"type": "function_call_output", "call_id": "c1", "output": "app.py"}
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
            {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object"}}]},
            {"type": "web_search", "external_web_access": false}
        ],
        "tool_choice": "auto", "parallel_tool_calls": false
    })
    .to_string()
}

fn sse(events: Vec<String>) -> Reply {
    Reply::Sse(events.into_iter().map(|e| (Duration::ZERO, e)).collect())
}

fn unused(_: &Received) -> Reply {
    Reply::Json(500, json!({"error": {"message": "should not be called"}}))
}

/// The `data` of each event of a Responses stream, checked against its `event:` line.
fn response_events(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
            let data: Value =
                serde_json::from_str(e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap())
                    .unwrap();
            assert_eq!(data["type"], name);
            data
        })
        .collect()
}

const CODEX: [(&str, &str); 1] = [("originator", "codex_exec")];

#[tokio::test]
async fn codex_stream_is_translated_for_a_chat_upstream() {
    let local = MockUpstream::start(|_| {
        sse(vec![
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"multi_agent_v1__spawn_agent\",\"arguments\":\"{\\\"n\\\":\"}}]}}]}\n\n".into(),
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]}}]}\n\n".into(),
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n".into(),
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":7,\"total_tokens\":57}}\n\n".into(),
            "data: [DONE]\n\n".into(),
        ])
    })
    .await;
    let an = MockUpstream::start(unused).await;
    let oa = MockUpstream::start(unused).await;
    let gw = Gateway::start(&policy(&local.base_url(), &an.base_url(), &oa.base_url())).await;
    let (status, headers, body) = post(
        &gw.url("/v1/responses"),
        codex_body("primitive", true),
        &CODEX,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-tiergate-upstream"], "local");
    let sent = local.requests()[0].json();
    assert_eq!(local.requests()[0].path, "/v1/chat/completions");
    assert_eq!(sent["model"], "qwen");
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "user", "assistant", "tool"]);
    let tools: Vec<&str> = sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["exec_command", "multi_agent_v1__spawn_agent"]);
    for k in ["store", "include", "reasoning", "input", "prompt_cache_key"] {
        assert!(sent.get(k).is_none(), "{k} was sent on");
    }

    let events = response_events(&body);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let item = &events[6]["item"];
    assert_eq!(
        (item["name"].as_str(), item["namespace"].as_str()),
        (Some("spawn_agent"), Some("multi_agent_v1"))
    );
    assert_eq!(item["call_id"], "call_9");
    assert_eq!(item["arguments"], "{\"n\":1}");
    assert_eq!(events[7]["response"]["usage"]["input_tokens"], 50);

    let m = gw.metrics();
    assert_eq!(
        common::metric(
            &m,
            "tiergate_requests_total{client=\"codex\",endpoint=\"responses\",status_class=\"2xx\",tier=\"primitive\",upstream=\"local\"}"
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn whole_answer_from_anthropic_becomes_a_response_object() {
    let an = MockUpstream::start(|_| {
        Reply::Json(
            200,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 30, "output_tokens": 2}}),
        )
    })
    .await;
    let local = MockUpstream::start(unused).await;
    let oa = MockUpstream::start(unused).await;
    let gw = Gateway::start(&policy(&local.base_url(), &an.base_url(), &oa.base_url())).await;
    let (status, headers, body) = post(
        &gw.url("/v1/responses"),
        codex_body("architecture", false),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-tiergate-upstream"], "an");
    let sent = an.requests()[0].json();
    assert_eq!(an.requests()[0].path, "/v1/messages");
    assert_eq!(sent["model"], "claude-x");
    assert!(sent["system"].to_string().contains("You are Codex."));
    let r = json(&body);
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["output"][0]["content"][0]["text"], "Done.");
    assert_eq!(r["usage"]["input_tokens"], 30);
}

#[tokio::test]
async fn streams_from_anthropic_are_chained_through_chat() {
    let an = MockUpstream::start(|_| {
        sse(include_str!("fixtures/anthropic/stream_tool_use.sse")
            .split_inclusive("\n\n")
            .map(str::to_owned)
            .collect())
    })
    .await;
    let local = MockUpstream::start(unused).await;
    let oa = MockUpstream::start(unused).await;
    let gw = Gateway::start(&policy(&local.base_url(), &an.base_url(), &oa.base_url())).await;
    let (status, _, body) = post(
        &gw.url("/v1/responses"),
        codex_body("architecture", true),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let events = response_events(&body);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    assert!(
        last["response"]["output"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["type"] == "function_call")
    );
}

#[tokio::test]
async fn responses_api_upstreams_get_the_body_as_sent() {
    let stream = vec![
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r1\"}}\n\n".to_string(),
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r1\",\"usage\":{\"input_tokens\":11,\"output_tokens\":4,\"total_tokens\":15}}}\n\n".to_string(),
    ];
    let expected: String = stream.concat();
    let oa = MockUpstream::start(move |_| sse(stream.clone())).await;
    let local = MockUpstream::start(unused).await;
    let an = MockUpstream::start(unused).await;
    let gw = Gateway::start(&policy(&local.base_url(), &an.base_url(), &oa.base_url())).await;
    let sent_body = codex_body("openai", true);
    let (status, _, body) = post(&gw.url("/v1/responses"), sent_body.clone(), &CODEX).await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), expected);
    let got = oa.requests()[0].clone();
    assert_eq!(got.path, "/v1/responses");
    assert_eq!(got.headers["authorization"], "Bearer ok");
    let mut want: Value = serde_json::from_str(&sent_body).unwrap();
    want["model"] = json!("gpt-x");
    assert_eq!(got.json(), want, "only the model is rewritten");
    let tokens = common::spec::wait_metric(
        &gw,
        "tiergate_input_tokens_total",
        &[("upstream", "oa"), ("source", "reported")],
    )
    .await;
    assert_eq!(tokens, 11.0);
}

#[tokio::test]
async fn stored_state_is_refused_with_an_openai_error() {
    let local = MockUpstream::start(unused).await;
    let an = MockUpstream::start(unused).await;
    let oa = MockUpstream::start(unused).await;
    let gw = Gateway::start(&policy(&local.base_url(), &an.base_url(), &oa.base_url())).await;
    let body = json!({"model": "primitive", "input": "hi", "previous_response_id": "resp_1"});
    let (status, _, b) = post(&gw.url("/v1/responses"), body.to_string(), &[]).await;
    assert_eq!(status, 400);
    assert_eq!(json(&b)["error"]["param"], "previous_response_id");
    let (status, _, b) = post(&gw.url("/v1/responses"), r#"{"model":"auto"}"#, &[]).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&b));
    assert!(local.requests().is_empty());
}

/// A local server that writes its tool call as text (real Qwen2.5-Coder output, streamed) is
/// repaired before translation: Codex gets a function call, not JSON in a message.
#[tokio::test]
async fn a_tool_call_written_as_text_by_a_local_server_reaches_codex_as_a_function_call() {
    let replay: Vec<(Duration, String)> = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/local-model/qwen/05-tools-stream.sse"
    ))
    .unwrap()
    .split_inclusive("\n\n")
    .map(|e| (Duration::ZERO, e.to_string()))
    .collect();
    let local = MockUpstream::start(move |_| Reply::Sse(replay.clone())).await;
    let an = MockUpstream::start(unused).await;
    let oa = MockUpstream::start(unused).await;
    let policy = policy(&local.base_url(), &an.base_url(), &oa.base_url()).replacen(
        "key_required: false",
        "key_required: false\n    repair: true",
        1,
    );
    let gw = Gateway::start(&policy).await;
    let body = json!({
        "model": "primitive", "stream": true, "store": false,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is the weather in Paris right now? Use the tool."}]}],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    });
    let (status, _, body) = post(&gw.url("/v1/responses"), body.to_string(), &CODEX).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let events = response_events(&body);
    let done: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| &e["item"])
        .collect();
    assert_eq!(done.len(), 1, "{events:?}");
    assert_eq!(done[0]["type"], "function_call");
    assert_eq!(done[0]["name"], "get_weather");
    assert_eq!(done[0]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(
        common::metric(
            &gw.metrics(),
            r#"tiergate_tool_call_repairs_total{outcome="repaired",upstream="local"}"#
        ),
        Some(1.0)
    );
}
