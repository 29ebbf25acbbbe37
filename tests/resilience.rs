//! Breaker, health checks, spill-over, bounded queues, stream timeouts, hot reload and
//! client limits, through the gateway in process over real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::spec::{
    MockSpec, StreamReply, chat_body, metric_sum, sse_data, upstream_yaml, wait_for,
};
use common::{Gateway, MockUpstream, Reply, get, json, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Two upstreams, `local` then `frontier`, for the primitive tier; `extra` is added to
/// local's entry (YAML lines, indented by four).
fn policy(local: &MockUpstream, frontier: &MockUpstream, extra: &str) -> String {
    format!(
        "upstreams:\n{}{extra}{}tiers:\n  - name: primitive\n    upstreams: [local, frontier]\n  - name: architecture\n    upstreams: [frontier]\n",
        upstream_yaml("local", local, "{}"),
        upstream_yaml("frontier", frontier, "{}"),
    )
}

/// A mock that answers well, or 500 while `failing` is set (health route included).
async fn switchable(failing: Arc<AtomicBool>) -> MockUpstream {
    let spec = MockSpec::new();
    MockUpstream::start(move |r| {
        if failing.load(Ordering::SeqCst) {
            Reply::Json(
                500,
                serde_json::json!({"error": {"message": "down", "type": "server_error"}}),
            )
        } else if r.path.ends_with("/models") {
            Reply::Json(200, serde_json::json!({"object": "list", "data": []}))
        } else {
            spec.reply(r)
        }
    })
    .await
}

async fn ask(gw: &Gateway) -> (u16, String) {
    let (s, h, b) = post(
        &gw.url("/v1/chat/completions"),
        chat_body("primitive", "hi", false).to_string(),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    (
        s.as_u16(),
        h["x-tiergate-upstream"].to_str().unwrap().to_string(),
    )
}

async fn readyz_upstream(gw: &Gateway, name: &str) -> serde_json::Value {
    let (_, body) = get(&gw.url("/readyz")).await;
    json(&body)["upstreams"][name].clone()
}

#[tokio::test]
async fn the_circuit_opens_skips_the_upstream_and_closes_after_a_good_probe() {
    let failing = Arc::new(AtomicBool::new(true));
    let local = switchable(failing.clone()).await;
    let frontier = MockSpec::new().start().await;
    let gw = Gateway::start(&policy(
        &local,
        &frontier,
        "    breaker: { consecutive_failures: 3, cool_down: 300ms }\n",
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(ask(&gw).await.1, "frontier");
    }
    assert_eq!(local.requests().len(), 3);
    let up = |v: f64| move |x: f64| x == v;
    wait_for(
        &gw,
        "tiergate_circuit_state",
        &[("upstream", "local")],
        up(1.0),
    )
    .await;
    wait_for(
        &gw,
        "tiergate_upstream_up",
        &[("upstream", "local")],
        up(0.0),
    )
    .await;
    assert_eq!(readyz_upstream(&gw, "local").await["circuit"], "open");
    // Open: local is not even tried.
    for _ in 0..5 {
        assert_eq!(ask(&gw).await.1, "frontier");
    }
    assert_eq!(local.requests().len(), 3);
    // After the cool-down one probe goes through; it succeeds and closes the circuit.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(ask(&gw).await.1, "local");
    assert_eq!(ask(&gw).await.1, "local");
    wait_for(
        &gw,
        "tiergate_circuit_state",
        &[("upstream", "local")],
        up(0.0),
    )
    .await;
    wait_for(
        &gw,
        "tiergate_upstream_up",
        &[("upstream", "local")],
        up(1.0),
    )
    .await;
    for (from, to) in [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ] {
        let labels = [("upstream", "local"), ("from", from), ("to", to)];
        assert_eq!(
            metric_sum(&gw, "tiergate_circuit_transitions_total", &labels).await,
            Some(1.0)
        );
    }
}

#[tokio::test]
async fn a_failing_health_check_takes_the_upstream_out_of_routing() {
    let failing = Arc::new(AtomicBool::new(false));
    let local = switchable(failing.clone()).await;
    let frontier = MockSpec::new().start().await;
    let gw = Gateway::start(&policy(
        &local,
        &frontier,
        "    health: { interval: 50ms, unhealthy_after: 2 }\n",
    ))
    .await;
    assert_eq!(ask(&gw).await.1, "local");
    failing.store(true, Ordering::SeqCst);
    wait_for(&gw, "tiergate_upstream_up", &[("upstream", "local")], |v| {
        v == 0.0
    })
    .await;
    assert_eq!(readyz_upstream(&gw, "local").await["healthy"], false);
    let before = local
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .count();
    for _ in 0..3 {
        assert_eq!(ask(&gw).await.1, "frontier");
    }
    let after = local
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .count();
    assert_eq!(before, after, "an unhealthy upstream got requests");
    assert!(local.requests().iter().any(|r| r.path == "/v1/models"));
    failing.store(false, Ordering::SeqCst);
    wait_for(&gw, "tiergate_upstream_up", &[("upstream", "local")], |v| {
        v == 1.0
    })
    .await;
    assert_eq!(ask(&gw).await.1, "local");
}

#[tokio::test]
async fn a_slow_upstream_spills_over_to_the_next() {
    let local = MockSpec::new()
        .first_byte_delay(Duration::from_millis(150))
        .start()
        .await;
    let frontier = MockSpec::new().start().await;
    let gw = Gateway::start(&policy(&local, &frontier, "    latency_target: 50ms\n")).await;
    assert_eq!(ask(&gw).await.1, "local", "latency unknown: tried");
    for _ in 0..5 {
        assert_eq!(ask(&gw).await.1, "frontier");
    }
    assert_eq!(local.requests().len(), 1);
}

#[tokio::test]
async fn a_full_queue_answers_503_at_once() {
    let slow = MockSpec::new()
        .first_byte_delay(Duration::from_millis(600))
        .start()
        .await;
    let yaml = upstream_yaml("only", &slow, "{}");
    let gw = Gateway::start(&format!(
        "upstreams:\n{yaml}    max_concurrency: 1\n    max_queue: 1\ntiers:\n  - name: primitive\n    upstreams: [only]\n  - name: architecture\n    upstreams: [only]\n"
    ))
    .await;
    let url = gw.url("/v1/chat/completions");
    let body = chat_body("primitive", "hi", false).to_string();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (url, body) = (url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let (s, _, b) = post(&url, body, &[]).await;
            (s.as_u16(), b, started.elapsed())
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    let statuses: Vec<u16> = got.iter().map(|g| g.0).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        2,
        "{statuses:?}"
    );
    let (_, b, took) = got.iter().find(|g| g.0 == 503).unwrap();
    assert_eq!(json(b)["error"]["code"], "upstream_saturated");
    assert!(
        *took < Duration::from_millis(300),
        "rejected at once, not after queueing"
    );
}

#[tokio::test]
async fn a_stream_that_stalls_ends_with_an_error_event_and_is_counted() {
    // Events: role, "Hello", ", world", finish, [DONE]; stalls before the third.
    let local = MockSpec::new()
        .stall_after(2, Duration::from_secs(5))
        .start()
        .await;
    let frontier = MockSpec::new().start().await;
    let text = policy(&local, &frontier, "").replacen(
        "timeouts: { connect: 1s, first_byte: 5s, total: 30s }",
        "timeouts: { connect: 1s, first_byte: 5s, idle: 200ms, total: 30s }",
        1,
    );
    let gw = Gateway::start(&text).await;
    let mut s = StreamReply::open(
        gw.addr,
        "/v1/chat/completions",
        &chat_body("primitive", "hi", true),
    )
    .await;
    assert_eq!(s.status, 200);
    let mut data = Vec::new();
    while let Some(d) = s.next_data().await {
        data.push(d);
    }
    assert_eq!(data.len(), 3, "{data:?}");
    let err = json(data[2].as_bytes());
    assert_eq!(err["error"]["code"], "upstream_idle_timeout", "{err}");
    assert_eq!(err["error"]["type"], "server_error");
    let labels = [("upstream", "local"), ("reason", "idle_timeout")];
    wait_for(&gw, "tiergate_stream_errors_total", &labels, |v| v == 1.0).await;
}

#[tokio::test]
async fn a_stream_cut_mid_event_never_reaches_the_client_half_an_event() {
    let spec = MockSpec::new();
    let local = MockUpstream::start(move |r| {
        let Reply::Sse(ev) = spec.reply(r) else {
            unreachable!()
        };
        let mut ev: Vec<String> = ev.into_iter().map(|(_, e)| e).take(2).collect();
        ev.push("data: {\"choices\":[{\"TRUNC".into());
        Reply::Truncated(ev)
    })
    .await;
    let frontier = MockSpec::new().start().await;
    let gw = Gateway::start(&policy(&local, &frontier, "")).await;
    let (s, _, body) = post(
        &gw.url("/v1/chat/completions"),
        chat_body("primitive", "hi", true).to_string(),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        !text.contains("TRUNC"),
        "half an event was forwarded: {text}"
    );
    assert!(text.contains("local-model"), "served by local: {text}");
    let data = sse_data(&body);
    assert_eq!(data.len(), 3, "{text}");
    assert_eq!(
        json(data[2].as_bytes())["error"]["code"],
        "upstream_stream_broken"
    );
}

#[tokio::test]
async fn a_stream_broken_before_its_first_event_falls_back() {
    let local = MockUpstream::start(|_| Reply::Truncated(vec!["data: {\"id".into()])).await;
    let frontier = MockSpec::new().start().await;
    let gw = Gateway::start(&policy(&local, &frontier, "")).await;
    let (s, h, body) = post(
        &gw.url("/v1/chat/completions"),
        chat_body("primitive", "hi", true).to_string(),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-tiergate-upstream"], "frontier");
    assert_eq!(sse_data(&body).last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn retries_go_to_the_same_upstream_within_the_policy() {
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let spec = MockSpec::new();
    let local = {
        let n = n.clone();
        MockUpstream::start(move |r| {
            if n.fetch_add(1, Ordering::SeqCst) < 2 {
                Reply::Json(
                    503,
                    serde_json::json!({"error": {"message": "busy", "type": "server_error"}}),
                )
            } else {
                spec.reply(r)
            }
        })
        .await
    };
    let frontier = MockSpec::new().start().await;
    let gw = Gateway::start(&policy(
        &local,
        &frontier,
        "    retry: { attempts: 2, backoff: 5ms }\n",
    ))
    .await;
    assert_eq!(ask(&gw).await.1, "local");
    assert_eq!(local.requests().len(), 3);
    assert_eq!(
        metric_sum(&gw, "tiergate_retries_total", &[("upstream", "local")]).await,
        Some(2.0)
    );
}

/// A policy file for reload tests: the primitive tier goes to `to`.
fn routed_to(a: &MockUpstream, b: &MockUpstream, to: &str) -> String {
    format!(
        "upstreams:\n{}{}tiers:\n  - name: primitive\n    upstreams: [{to}]\n  - name: architecture\n    upstreams: [b]\n",
        upstream_yaml("a", a, "{}"),
        upstream_yaml("b", b, "{}"),
    )
}

#[tokio::test]
async fn reload_swaps_good_policies_keeps_requests_in_flight_and_rejects_bad_ones() {
    let a = MockSpec::new()
        .chunk_delay(Duration::from_millis(150))
        .start()
        .await;
    let b = MockSpec::new().start().await;
    let path = std::env::temp_dir().join(format!("tiergate-reload-{}.yaml", fastrand::u64(..)));
    std::fs::write(&path, routed_to(&a, &b, "a")).unwrap();
    let gw = Gateway::start(&std::fs::read_to_string(&path).unwrap()).await;
    // A stream in flight on the old policy (to a: ~0.6 s).
    let mut s = StreamReply::open(
        gw.addr,
        "/v1/chat/completions",
        &chat_body("primitive", "hi", true),
    )
    .await;
    assert_eq!(s.headers["x-tiergate-upstream"], "a");
    std::fs::write(&path, routed_to(&a, &b, "b")).unwrap();
    tiergate::reload::reload(&gw.app, Some(&path)).unwrap();
    assert_eq!(ask(&gw).await.1, "b", "new requests take the new policy");
    let mut data = Vec::new();
    while let Some(d) = s.next_data().await {
        data.push(d);
    }
    assert_eq!(
        data.last().unwrap(),
        "[DONE]",
        "the stream in flight finished: {data:?}"
    );
    // A bad file is refused with its place, and the policy stays.
    std::fs::write(&path, routed_to(&a, &b, "nowhere")).unwrap();
    let e = tiergate::reload::reload(&gw.app, Some(&path)).unwrap_err();
    assert!(e.contains("nowhere") && e.contains(":"), "{e}");
    assert_eq!(ask(&gw).await.1, "b");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn breaker_state_survives_a_reload_for_upstreams_that_keep_their_name() {
    let failing = Arc::new(AtomicBool::new(true));
    let local = switchable(failing).await;
    let frontier = MockSpec::new().start().await;
    let text = policy(
        &local,
        &frontier,
        "    breaker: { consecutive_failures: 2, cool_down: 60s }\n",
    );
    let path = std::env::temp_dir().join(format!("tiergate-reload-{}.yaml", fastrand::u64(..)));
    std::fs::write(&path, &text).unwrap();
    let gw = Gateway::start(&text).await;
    ask(&gw).await;
    ask(&gw).await;
    assert_eq!(readyz_upstream(&gw, "local").await["circuit"], "open");
    std::fs::write(
        &path,
        text.replace(
            "cool_down: 60s }\n",
            "cool_down: 60s }\n    max_concurrency: 8\n",
        ),
    )
    .unwrap();
    tiergate::reload::reload(&gw.app, Some(&path)).unwrap();
    assert_eq!(readyz_upstream(&gw, "local").await["circuit"], "open");
    assert_eq!(ask(&gw).await.1, "frontier");
    assert_eq!(local.requests().len(), 2);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_slow_client_is_cut_off_and_a_slow_body_gets_408() {
    let a = MockSpec::new().start().await;
    let yaml = upstream_yaml("a", &a, "{}");
    let gw = Gateway::start(&format!(
        "server:\n  limits: {{ header_read_timeout: 300ms, body_read_timeout: 300ms, max_header_bytes: 8192 }}\nupstreams:\n{yaml}tiers:\n  - name: primitive\n    upstreams: [a]\n  - name: architecture\n    upstreams: [a]\n"
    ))
    .await;
    // Half a head, then silence: the connection is closed.
    let mut sock = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    sock.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), sock.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "a slow head kept its connection");
    // A head, then a body that never comes: 408 in OpenAI's shape.
    let mut sock = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    sock.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\"")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), sock.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    // A head larger than the limit is refused.
    let mut sock = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let big = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = sock.write_all(big.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), sock.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}
