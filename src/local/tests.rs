//! Normalisation and repair on the raw captures of a real llama.cpp server serving
//! Qwen2.5-Coder-0.5B (tests/fixtures/local-model/, see deploy/local-qwen/).

use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::protocol::sse::SseSplitter;

macro_rules! fixture {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/local-model/",
            $path
        ))
    };
}

/// The body of a raw HTTP capture, and its status.
fn http(raw: &str) -> (u16, &[u8]) {
    let status = raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap();
    (status, body.as_bytes())
}

fn offer(req: &str) -> ToolOffer {
    ToolOffer::from_request(req.as_bytes()).unwrap()
}

fn json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap()
}

#[test]
fn plain_answer_keeps_content_and_extras_and_names_the_configured_model() {
    let (status, body) = http(fixture!("qwen/02-chat.txt"));
    let fixed = fix_body(status, body, "qwen2.5-coder", None);
    let v = json(&fixed.body);
    assert_eq!(v["model"], "qwen2.5-coder");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert!(v["timings"].is_object(), "extra fields are kept");
    assert!(fixed.outcome.is_none());
}

#[test]
fn tool_call_in_content_becomes_tool_calls() {
    for (req, raw) in [
        (fixture!("tools-req.json"), fixture!("qwen/04-tools.txt")),
        (
            fixture!("tools-req-named.json"),
            fixture!("qwen/04c-tools-named.txt"),
        ),
        // tool_choice required: the call, a ".json" and a fenced copy, then newlines to the limit.
        (
            fixture!("tools-req-required.json"),
            fixture!("qwen/04b-tools-required.txt"),
        ),
    ] {
        let (status, body) = http(raw);
        let fixed = fix_body(status, body, "local-model", Some(&offer(req)));
        let v = json(&fixed.body);
        let msg = &v["choices"][0]["message"];
        assert_eq!(msg["content"], Value::Null);
        assert_eq!(msg["tool_calls"].as_array().unwrap().len(), 1, "{msg}");
        let call = &msg["tool_calls"][0];
        assert_eq!(
            (call["type"].as_str(), call["function"]["name"].as_str()),
            (Some("function"), Some("get_weather"))
        );
        assert_eq!(
            json(call["function"]["arguments"].as_str().unwrap().as_bytes()),
            json!({"city": "Paris"})
        );
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert!(matches!(fixed.outcome, Some(Outcome::Repaired(_))));
    }
}

#[test]
fn hallucinated_tool_result_after_the_call_is_dropped() {
    let body = fixture!("qwen/09-tool-result-roundtrip.json").as_bytes();
    let fixed = fix_body(200, body, "m", Some(&offer(fixture!("tools-req.json"))));
    let v = json(&fixed.body);
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
}

#[test]
fn server_with_real_tool_calls_is_left_alone() {
    let body = fixture!("llcp-qwen/04-tools-req.json").as_bytes();
    let fixed = fix_body(200, body, "m", Some(&offer(fixture!("tools-req.json"))));
    let v = json(&fixed.body);
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert!(fixed.outcome.is_none());
}

#[test]
fn a_call_that_fails_its_schema_is_reported_and_left_as_text() {
    let req = fixture!("tools-req.json")
        .replace(r#""required":["city"]"#, r#""required":["city","country"]"#);
    let (status, body) = http(fixture!("qwen/04-tools.txt"));
    let fixed = fix_body(status, body, "m", Some(&offer(&req)));
    match &fixed.outcome {
        Some(Outcome::Failed(why)) => assert!(why.contains("country is required"), "{why}"),
        other => panic!("{other:?}"),
    }
    let v = json(&fixed.body);
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("get_weather")
    );
}

#[test]
fn numeric_error_code_becomes_openai_error() {
    let (status, body) = http(fixture!("qwen/07-error-missing-messages.txt"));
    assert_eq!(status, 400);
    let v = json(&fix_body(status, body, "m", None).body);
    assert_eq!(
        v,
        json!({"error": {"message": "'messages' is required", "type": "invalid_request_error", "param": null, "code": "invalid_request"}})
    );
    let v = json(&normalize::error_body(400, br#"{"error":{"code":400,"message":"too long","type":"exceed_context_size_error","n_ctx":4096}}"#));
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(v["error"]["n_ctx"], 4096, "extra details are kept");
    let v = json(&normalize::error_body(
        404,
        br#"{"error":"model 'x' not found"}"#,
    ));
    assert_eq!(
        (v["error"]["message"].as_str(), v["error"]["type"].as_str()),
        (Some("model 'x' not found"), Some("not_found_error"))
    );
    let v = json(&normalize::error_body(502, b"<html>Bad Gateway</html>"));
    assert_eq!(
        (v["error"]["message"].as_str(), v["error"]["code"].as_str()),
        (Some("<html>Bad Gateway</html>"), Some("upstream_error"))
    );
}

/// Runs a captured stream through a StreamFix, cut into `piece`-byte reads.
fn run_stream(sse: &str, fix: &mut StreamFix, piece: usize) -> Vec<Value> {
    let mut splitter = SseSplitter::new();
    let mut out = Vec::new();
    for part in sse.as_bytes().chunks(piece) {
        let mut events = Vec::new();
        splitter.push(Bytes::copy_from_slice(part), &mut events);
        for e in events {
            fix.push(e, &mut out);
        }
    }
    fix.finish(&mut out);
    out.iter()
        .map(|e| {
            let s = std::str::from_utf8(e).unwrap();
            let d = s.strip_prefix("data: ").unwrap().trim_end();
            if d == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(d).unwrap()
            }
        })
        .collect()
}

#[test]
fn stream_first_delta_gets_empty_content_and_model_is_configured() {
    let mut fix = StreamFix::new("qwen2.5-coder", None);
    let out = run_stream(fixture!("qwen/03-stream.sse"), &mut fix, 1000);
    assert_eq!(
        out[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(
        out[..out.len() - 1]
            .iter()
            .all(|c| c["model"] == "qwen2.5-coder")
    );
    let text: String = out
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello!");
    assert_eq!(out.last().unwrap(), "[DONE]");
    assert!(fix.outcome().is_none());
}

#[test]
fn streamed_tool_call_in_content_becomes_tool_call_deltas() {
    for piece in [7, 100, 100_000] {
        let mut fix = StreamFix::new("m", Some(offer(fixture!("tools-req-stream.json"))));
        let out = run_stream(fixture!("qwen/05-tools-stream.sse"), &mut fix, piece);
        assert!(matches!(fix.outcome(), Some(Outcome::Repaired(_))));
        assert_eq!(out.len(), 4, "call, finish, usage, DONE: {out:?}");
        let delta = &out[0]["choices"][0]["delta"];
        assert_eq!(delta["role"], "assistant");
        assert_eq!(delta["content"], Value::Null);
        let call = &delta["tool_calls"][0];
        assert_eq!(
            (call["index"].as_u64(), call["function"]["name"].as_str()),
            (Some(0), Some("get_weather"))
        );
        assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
        assert_eq!(out[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out[2]["usage"]["completion_tokens"], 17);
        assert_eq!(out[2]["choices"], json!([]));
        assert_eq!(out[3], "[DONE]");
    }
}

#[test]
fn streamed_prose_with_tools_offered_is_released_at_its_first_word() {
    let mut fix = StreamFix::new("m", Some(offer(fixture!("tools-req-stream.json"))));
    let mut out = Vec::new();
    let mut splitter = SseSplitter::new();
    let mut events = Vec::new();
    splitter.push(
        Bytes::from_static(fixture!("qwen/03-stream.sse").as_bytes()),
        &mut events,
    );
    fix.push(events[0].clone(), &mut out);
    assert!(out.is_empty(), "the role chunk is held while undecided");
    fix.push(events[1].clone(), &mut out);
    assert_eq!(out.len(), 2, "\"Hello\" opens prose: released");
    assert_eq!(fix.outcome(), Some(&Outcome::NotToolCall));
}

#[test]
fn streamed_real_tool_calls_pass_with_nulls_dropped() {
    let mut fix = StreamFix::new("m", Some(offer(fixture!("tools-req-named-stream.json"))));
    let out = run_stream(
        fixture!("llcp-qwen/05-tools-named-stream.sse"),
        &mut fix,
        64,
    );
    assert_eq!(
        out[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(
        out[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert!(out[1]["choices"][0]["delta"].get("function_call").is_some());
    assert!(out[1]["choices"][0]["delta"].get("role").is_none());
    assert!(!matches!(fix.outcome(), Some(Outcome::Repaired(_))));
}

#[test]
fn streamed_error_event_is_normalised() {
    let mut fix = StreamFix::new("m", None);
    let mut out = Vec::new();
    fix.push(
        Bytes::from_static(
            b"data: {\"error\":{\"code\":500,\"message\":\"boom\",\"type\":\"server_error\"}}\n\n",
        ),
        &mut out,
    );
    let s = std::str::from_utf8(&out[0]).unwrap();
    let v: Value = serde_json::from_str(s.strip_prefix("data: ").unwrap().trim()).unwrap();
    assert_eq!(v["error"]["code"], "upstream_error");
    assert_eq!(v["error"]["param"], Value::Null);
}

#[test]
fn an_openai_shaped_answer_changes_only_in_its_model() {
    // `"refusal": null` and `"logprobs": null` are OpenAI's own: nothing to fix, no parse.
    let body = br#"{"id":"c1","object":"chat.completion","model":"served/qwen.gguf","choices":[{"index":0,"message":{"role":"assistant","content":"hi","refusal":null},"logprobs":null,"finish_reason":"stop"}]}"#;
    assert!(!normalize::needs_fix(body));
    let fixed = fix_body(200, body, "qwen2.5-coder", None);
    let want = String::from_utf8(body.to_vec())
        .unwrap()
        .replace("served/qwen.gguf", "qwen2.5-coder");
    assert_eq!(String::from_utf8(fixed.body).unwrap(), want);
}
