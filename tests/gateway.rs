//! The gateway core over real sockets: routing and overrides, passthrough, keys, streaming,
//! cancellation, fallback and every error case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use serde_json::json;

async fn two_mocks() -> (MockUpstream, MockUpstream) {
    let a = MockUpstream::start(|r| {
        Reply::Json(
            200,
            completion(r.json()["model"].as_str().unwrap_or("?"), "from a", 10, 5),
        )
    })
    .await;
    let b = MockUpstream::start(|r| {
        Reply::Json(
            200,
            completion(r.json()["model"].as_str().unwrap_or("?"), "from b", 10, 5),
        )
    })
    .await;
    (a, b)
}

#[tokio::test]
async fn model_names_header_and_classifier_choose_the_route() {
    let (a, b) = two_mocks().await;
    let gw = Gateway::start(&two_tier_policy(&a.base_url(), &b.base_url())).await;
    let url = gw.url("/v1/chat/completions");

    let (s, h, body) = post(&url, chat("primitive", "hi"), &[]).await;
    assert_eq!(s, 200);
    assert_eq!(h["x-tiergate-tier"], "primitive");
    assert_eq!(h["x-tiergate-upstream"], "a");
    assert_eq!(h["x-tiergate-reason"], "model_tier");
    assert_eq!(h["x-tiergate-request-id"].len(), 32);
    assert_eq!(json(&body)["choices"][0]["message"]["content"], "from a");

    let (_, h, _) = post(&url, chat("architecture", "hi"), &[]).await;
    assert_eq!(
        (
            h["x-tiergate-tier"].to_str().unwrap(),
            h["x-tiergate-upstream"].to_str().unwrap()
        ),
        ("architecture", "b")
    );

    // The header wins over the model name.
    let (_, h, _) = post(
        &url,
        chat("primitive", "hi"),
        &[("x-tiergate-tier", "architecture")],
    )
    .await;
    assert_eq!(h["x-tiergate-upstream"], "b");
    assert_eq!(h["x-tiergate-reason"], "header");

    // An upstream name pins the request to it.
    let (_, h, _) = post(&url, chat("b", "hi"), &[]).await;
    assert_eq!(
        (
            h["x-tiergate-upstream"].to_str().unwrap(),
            h["x-tiergate-reason"].to_str().unwrap()
        ),
        ("b", "model_upstream")
    );

    // auto asks the classifier.
    let task = "Split the billing module of this monolith into its own microservice with an event bus, and plan the database migration.";
    let (_, h, _) = post(&url, chat("auto", task), &[]).await;
    assert_eq!(h["x-tiergate-tier"], "architecture");
    let (_, h, _) = post(
        &url,
        chat("auto", "Write a function that reverses a string in Python."),
        &[],
    )
    .await;
    assert_eq!(h["x-tiergate-tier"], "primitive");

    // Each upstream saw its own model name.
    assert!(a.requests().iter().all(|r| r.json()["model"] == "model-a"));
    assert!(b.requests().iter().all(|r| r.json()["model"] == "model-b"));
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_routing_decisions_total{reason="header",tier="architecture"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn unknown_fields_pass_through_and_keys_are_swapped() {
    let (a, b) = two_mocks().await;
    let gw = Gateway::start(&two_tier_policy(&a.base_url(), &b.base_url())).await;
    let body = r#"{"model":"primitive","messages":[{"role":"user","content":"hi","x_part":1}],"temperature":0.1,"vendor_ext":{"deep":[1,{"k":null}]},"seed":7}"#;
    let (s, _, _) = post(
        &gw.url("/v1/chat/completions"),
        body,
        &[("authorization", "Bearer client-secret")],
    )
    .await;
    assert_eq!(s, 200);
    let seen = &a.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        std::str::from_utf8(&seen.body).unwrap(),
        body.replace("\"primitive\"", "\"model-a\"")
    );
    assert_eq!(seen.headers["authorization"], "Bearer key-a");
    let all_headers = format!("{:?}", seen.headers);
    assert!(
        !all_headers.contains("client-secret"),
        "the client's key reached the upstream"
    );
}

#[tokio::test]
async fn streams_are_forwarded_as_they_arrive_and_usage_is_stripped_when_not_asked() {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let rx = std::sync::Mutex::new(Some(rx));
    let a = MockUpstream::start(move |_| Reply::Channel(rx.lock().unwrap().take().unwrap())).await;
    let gw = Gateway::start(&two_tier_policy(&a.base_url(), &a.base_url())).await;
    let body = json!({"model": "primitive", "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let events = stream_events("model-a", &["Hel", "lo"], Some((7, 2)));
    // The gateway answers once the first event is in (until then it may still fall back).
    tx.send(Bytes::from(events[0].clone())).unwrap();
    let resp = client()
        .request(request(&gw.url("/v1/chat/completions"), body, &[]))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    // Each event is sent only after the previous one reached the client: no buffering.
    let mut got = String::new();
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            tx.send(Bytes::from(e.clone())).unwrap();
        }
        if e.contains("\"usage\"") {
            continue; // stripped: nothing will arrive for it
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("event not forwarded")
            .unwrap()
            .unwrap();
        got.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
    }
    drop(tx);
    while let Some(f) = body.frame().await {
        got.push_str(std::str::from_utf8(f.unwrap().data_ref().unwrap()).unwrap());
    }
    assert!(got.contains("Hel") && got.ends_with("data: [DONE]\n\n"));
    assert!(
        !got.contains("\"usage\""),
        "usage chunk reached a client that did not ask: {got}"
    );
    assert_eq!(
        a.requests()[0].json()["stream_options"]["include_usage"],
        true
    );
    // Usage was still recorded, as reported.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_input_tokens_total{source="reported",tier="primitive",upstream="a"}"#
        ),
        Some(7.0)
    );
}

#[tokio::test]
async fn stream_usage_reaches_a_client_that_asked() {
    let a = MockUpstream::start(|_| {
        Reply::Sse(
            stream_events("m", &["x"], Some((3, 1)))
                .into_iter()
                .map(|e| (Duration::ZERO, e))
                .collect(),
        )
    })
    .await;
    let gw = Gateway::start(&two_tier_policy(&a.base_url(), &a.base_url())).await;
    let body = json!({"model": "primitive", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]});
    let (_, _, got) = post(&gw.url("/v1/chat/completions"), body.to_string(), &[]).await;
    let got = String::from_utf8(got.to_vec()).unwrap();
    assert_eq!(got, stream_events("m", &["x"], Some((3, 1))).concat());
}

#[tokio::test]
async fn a_client_that_hangs_up_cancels_the_upstream_stream() {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let rx = std::sync::Mutex::new(Some(rx));
    let a = MockUpstream::start(move |_| Reply::Channel(rx.lock().unwrap().take().unwrap())).await;
    let gw = Gateway::start(&two_tier_policy(&a.base_url(), &a.base_url())).await;
    let body = json!({"model": "primitive", "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    tx.send(Bytes::from(stream_events("m", &["a"], None)[0].clone()))
        .unwrap();
    let resp = client()
        .request(request(&gw.url("/v1/chat/completions"), body, &[]))
        .await
        .unwrap();
    let mut body = resp.into_body();
    body.frame().await.unwrap().unwrap();
    let dropped = a.body_dropped.clone();
    let waiter = dropped.notified();
    drop(body); // the client hangs up mid-stream
    // The upstream must see its response abandoned without any further event being sent.
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("upstream stream was not cancelled");
    assert_eq!(*a.dropped_count.lock().unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let m = gw.metrics();
    assert_eq!(
        metric(
            &m,
            r#"tiergate_requests_total{client="other",endpoint="chat_completions",status_class="2xx",tier="primitive",upstream="a"}"#
        ),
        Some(1.0)
    );
    drop(tx);
}

#[tokio::test]
async fn a_client_that_hangs_up_before_the_answer_closes_the_upstream_connection() {
    let a = MockUpstream::start(|_| {
        Reply::Delay(
            Duration::from_secs(30),
            Box::new(Reply::Json(200, completion("m", "late", 1, 1))),
        )
    })
    .await;
    let gw = Gateway::start(
        &two_tier_policy(&a.base_url(), &a.base_url()).replace("first_byte: 2s", "first_byte: 60s"),
    )
    .await;
    let url = gw.url("/v1/chat/completions");
    let fut = post(&url, chat("primitive", "hi"), &[]);
    let _ = tokio::time::timeout(Duration::from_millis(300), fut).await; // client gives up
    assert_eq!(a.requests().len(), 1, "the upstream never saw the request");
    // The gateway must drop its upstream request: its connection closes and its
    // concurrency slot comes back.
    for _ in 0..50 {
        let slot_back = gw.app.runtime.load().upstreams[0]
            .permits
            .available_permits()
            == 256;
        if slot_back && a.connections_closed() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the upstream request was not dropped after the client hung up ({} connections closed)",
        a.connections_closed()
    );
}

#[tokio::test]
async fn failures_before_the_first_byte_fall_back_to_the_next_upstream() {
    for failing in ["500", "429", "refused", "timeout"] {
        let bad_url = if failing == "refused" {
            // A port with no listener.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}/v1", l.local_addr().unwrap());
            drop(l);
            url
        } else {
            let f = failing.to_string();
            let m = MockUpstream::start(move |_| match f.as_str() {
                "500" => Reply::Json(500, json!({"error": {"message": "boom"}})),
                "429" => Reply::Json(429, json!({"error": {"message": "slow down"}})),
                _ => Reply::Delay(
                    Duration::from_secs(10),
                    Box::new(Reply::Json(200, completion("m", "late", 1, 1))),
                ),
            })
            .await;
            let url = m.base_url();
            std::mem::forget(m);
            url
        };
        let b = MockUpstream::start(|_| Reply::Json(200, completion("m", "from b", 1, 1))).await;
        let policy =
            two_tier_policy(&bad_url, &b.base_url()).replace("first_byte: 2s", "first_byte: 500ms");
        let gw = Gateway::start(&policy).await;
        let (s, h, body) = post(
            &gw.url("/v1/chat/completions"),
            chat("primitive", "hi"),
            &[],
        )
        .await;
        assert_eq!(s, 200, "{failing}: {}", String::from_utf8_lossy(&body));
        assert_eq!(h["x-tiergate-upstream"], "b", "{failing}");
        assert!(
            gw.metrics().contains("tiergate_fallbacks_total{from=\"a\""),
            "{failing}"
        );
    }
}

/// Found by fuzzing: a byte that is not UTF-8 inside a string the head parser skips.
#[tokio::test]
async fn a_body_that_is_not_utf8_is_refused_on_every_endpoint() {
    let (a, b) = two_mocks().await;
    let gw = Gateway::start(&two_tier_policy(&a.base_url(), &b.base_url())).await;
    let mut body = br#"{"model":"auto","messages":[{"role":"user","content":"write a "#.to_vec();
    body.push(0xa1);
    body.extend_from_slice(br#" function"}],"input":"x","prompt":"x"}"#);
    for path in [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/messages",
        "/v1/responses",
    ] {
        let (s, _, got) = post(&gw.url(path), body.clone(), &[]).await;
        let v = json(&got);
        assert_eq!(s, 400, "{path}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("UTF-8")),
            "{path}: {v}"
        );
    }
    assert_eq!(
        a.requests().len() + b.requests().len(),
        0,
        "nothing forwarded"
    );
}

#[tokio::test]
async fn error_cases_are_openai_shaped() {
    let (a, b) = two_mocks().await;
    let mut policy = two_tier_policy(&a.base_url(), &b.base_url());
    policy.insert_str(0, "server:\n  max_body_bytes: 1000\n");
    let gw = Gateway::start(&policy).await;
    let url = gw.url("/v1/chat/completions");
    let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
        ("{not json".into(), 400, "invalid_json", None),
        (
            r#"{"model":"auto"}"#.into(),
            400,
            "missing_required_parameter",
            Some("messages"),
        ),
        (
            r#"{"messages":[]}"#.into(),
            400,
            "missing_required_parameter",
            Some("model"),
        ),
        (chat("gpt-9", "hi"), 404, "model_not_found", Some("model")),
        (
            chat("auto", &"x".repeat(2000)),
            413,
            "request_too_large",
            None,
        ),
        (
            r#"{"model":"auto","messages":"nope"}"#.into(),
            400,
            "invalid_value",
            Some("messages"),
        ),
    ];
    for (body, status, code, param) in cases {
        let (s, h, got) = post(&url, body.clone(), &[]).await;
        let v = json(&got);
        assert_eq!(s, status, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}");
        assert_eq!(v["error"]["param"].as_str(), param, "{body}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(v["error"]["type"].is_string());
        assert!(h.contains_key("x-tiergate-request-id"));
    }
    let (s, got) = get(&gw.url("/v2/nothing")).await;
    assert_eq!(
        (s.as_u16(), json(&got)["error"]["code"].as_str()),
        (404, Some("unknown_url"))
    );
}

#[tokio::test]
async fn a_tier_without_upstreams_answers_503_naming_it_and_total_failure_502() {
    let (a, _b) = two_mocks().await;
    let policy = two_tier_policy(&a.base_url(), "http://127.0.0.1:9/v1")
        .replace("api_key: key-b", "api_key: \"\"");
    let gw = Gateway::start(&policy).await;
    let (s, h, body) = post(
        &gw.url("/v1/chat/completions"),
        chat("architecture", "hi"),
        &[],
    )
    .await;
    let v = json(&body);
    assert_eq!(s, 503);
    assert_eq!(h["x-tiergate-tier"], "architecture");
    assert_eq!(v["error"]["code"], "no_upstream_available");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("architecture")
    );

    let failing = MockUpstream::start(|_| Reply::Json(503, json!({"error": "down"}))).await;
    let gw = Gateway::start(&two_tier_policy(&failing.base_url(), &failing.base_url())).await;
    let (s, h, body) = post(
        &gw.url("/v1/chat/completions"),
        chat("primitive", "hi"),
        &[],
    )
    .await;
    assert_eq!(
        (s.as_u16(), json(&body)["error"]["code"].as_str()),
        (502, Some("upstream_error"))
    );
    assert_eq!(h["x-tiergate-tier"], "primitive");
    assert_eq!(failing.requests().len(), 2, "a then b (both the same mock)");
}

#[tokio::test]
async fn legacy_completions_with_suffix_and_models_list() {
    let (a, b) = two_mocks().await;
    let gw = Gateway::start(&two_tier_policy(&a.base_url(), &b.base_url())).await;
    let body = json!({"model": "auto", "prompt": "def add(a, b):\n    ", "suffix": "\n\nprint(add(1, 2))", "max_tokens": 16});
    let (s, h, _) = post(&gw.url("/v1/completions"), body.to_string(), &[]).await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            h["x-tiergate-tier"].to_str().unwrap(),
            h["x-tiergate-reason"].to_str().unwrap()
        ),
        ("primitive", "fim")
    );
    let seen = a.requests()[0].clone();
    assert_eq!(seen.path, "/v1/completions");
    assert_eq!(seen.json()["suffix"], "\n\nprint(add(1, 2))");

    let (s, body) = get(&gw.url("/v1/models")).await;
    assert_eq!(s, 200);
    let ids: Vec<String> = json(&body)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["auto", "primitive", "architecture", "a", "b"]);
    assert_eq!(get(&gw.url("/healthz")).await.0, 200);
    assert_eq!(get(&gw.url("/readyz")).await.0, 200);
    let (s, body) = get(&gw.url("/metrics")).await;
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&body).contains("tiergate_build_info"));
}

#[tokio::test]
async fn http2_cleartext_is_served_on_the_same_port() {
    let (a, b) = two_mocks().await;
    let gw = Gateway::start(&two_tier_policy(&a.base_url(), &b.base_url())).await;
    let (s, h, body) = send(
        &h2_client(),
        &gw.url("/v1/chat/completions"),
        chat("primitive", "hi"),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-tiergate-upstream"], "a");
    assert_eq!(json(&body)["choices"][0]["message"]["content"], "from a");
}

#[tokio::test]
async fn a_request_cancelled_while_queued_gives_its_queue_place_back() {
    let slow = MockUpstream::start(|_| {
        Reply::Delay(
            Duration::from_millis(800),
            Box::new(Reply::Json(200, completion("m", "ok", 1, 1))),
        )
    })
    .await;
    let policy = two_tier_policy(&slow.base_url(), &slow.base_url())
        .replace(
            "    model: model-a\n",
            "    model: model-a\n    max_concurrency: 1\n    max_queue: 1\n",
        )
        .replace("upstreams: [a, b]", "upstreams: [a]");
    let gw = Gateway::start(&policy).await;
    let url = gw.url("/v1/chat/completions");
    // A holds the only slot; B waits in the only queue place, then its client gives up.
    let a = tokio::spawn({
        let url = url.clone();
        async move { post(&url, chat("primitive", "a"), &[]).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = tokio::time::timeout(
        Duration::from_millis(100),
        post(&url, chat("primitive", "b"), &[]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued = gw.app.runtime.load().upstreams[0]
        .state
        .queued
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(queued, 0, "the cancelled request kept its queue place");
    // So C can queue behind A instead of being turned away.
    let (s, _, _) = post(&url, chat("primitive", "c"), &[]).await;
    assert_eq!(s, 200);
    assert_eq!(a.await.unwrap().0, 200);
}
