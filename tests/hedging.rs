#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hedging and the adaptive first-byte deadline, against mock upstreams on 127.0.0.1: a
//! local server that hangs is covered by the tier's next upstream long before its
//! `first_byte` ceiling; the attempt that loses is cancelled (its connection closed); and an
//! upstream that has shown fast first bytes gets a deadline near them, not the ceiling.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::spec::{MockSpec, chat_body, metric_sum, sse_data, upstream_yaml};
use common::{Gateway, MockUpstream, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a raw upstream does once it has read a request.
#[derive(Clone)]
enum Act {
    /// Sends nothing, ever.
    Hang,
    /// Answers a chat completion with `content` after the delay.
    Answer(Duration, &'static str),
}

/// An upstream on a bare socket, so that a test sees exactly when the gateway closes the
/// connection of an attempt it gave up.
struct Raw {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicUsize>,
    /// Connections the gateway closed before they were answered.
    closed_unanswered: Arc<AtomicUsize>,
}

impl Raw {
    async fn start(act: Act) -> Raw {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (r, c) = (requests.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s, act.clone(), r.clone(), c.clone()));
            }
        });
        Raw {
            addr,
            requests,
            closed_unanswered: closed,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    async fn wait_closed(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.closed_unanswered.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "the cancelled attempt's connection was not closed within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Reads one request (head and Content-Length body): false when the peer closed first.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                buf.drain(..end + 4 + len);
                return true;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn serve(mut s: TcpStream, act: Act, requests: Arc<AtomicUsize>, closed: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    while read_request(&mut s, &mut buf).await {
        requests.fetch_add(1, Ordering::SeqCst);
        let (wait, content) = match act {
            Act::Hang => (Duration::from_secs(3600), ""),
            Act::Answer(d, c) => (d, c),
        };
        let mut probe = [0u8; 1];
        tokio::select! {
            // Anything read while waiting is the gateway closing (it sends nothing more).
            _ = s.read(&mut probe) => {
                closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            () = tokio::time::sleep(wait) => {}
        }
        let body = serde_json::json!({
            "id": "raw", "object": "chat.completion", "created": 0, "model": "raw",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        })
        .to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if s.write_all(head.as_bytes()).await.is_err()
            || s.write_all(body.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

fn raw_yaml(name: &str, raw: &Raw, extra: &str) -> String {
    format!(
        "  - name: {name}\n    kind: openai\n    base_url: \"{}\"\n    key_required: false\n    model: {name}-model\n    timeouts: {{ connect: 1s, first_byte: 20s, total: 60s }}\n{extra}",
        raw.base_url()
    )
}

fn two_step(first: &str, second: &str) -> String {
    format!(
        "upstreams:\n{first}{second}tiers:\n  - name: primitive\n    upstreams: [local, fallback]\n  - name: architecture\n    upstreams: [fallback]\n"
    )
}

async fn hedges(gw: &Gateway, upstream: &str, outcome: &str) -> f64 {
    let labels = [
        ("tier", "primitive"),
        ("upstream", upstream),
        ("outcome", outcome),
    ];
    metric_sum(gw, "tiergate_hedges_total", &labels)
        .await
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_hung_local_is_covered_by_the_fallback_long_before_first_byte_and_then_cancelled() {
    let local = Raw::start(Act::Hang).await;
    let fallback = MockSpec::new().start().await;
    let policy = two_step(
        &raw_yaml(
            "local",
            &local,
            "    hedge: { after: 200ms, whole: true }\n",
        ),
        &upstream_yaml("fallback", &fallback, "{}"),
    );
    let gw = Gateway::start(&policy).await;
    for (i, stream) in [false, true].into_iter().enumerate() {
        let t0 = Instant::now();
        let (status, headers, body) = common::post(
            &gw.url("/v1/chat/completions"),
            chat_body("primitive", "write a function", stream).to_string(),
            &[],
        )
        .await;
        let took = t0.elapsed();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(headers["x-tiergate-upstream"], "fallback");
        // local's first_byte is 20 s: the answer came from the hedge, not after a timeout.
        assert!(took < Duration::from_secs(10), "answered after {took:?}");
        if stream {
            let data = sse_data(&body);
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
        } else {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
        }
        // The hung attempt was given up: its connection is closed, not left to hang.
        local.wait_closed(i + 1, Duration::from_secs(2)).await;
    }
    assert_eq!(local.requests.load(Ordering::SeqCst), 2);
    assert_eq!(hedges(&gw, "fallback", "won").await, 2.0);
    assert_eq!(hedges(&gw, "fallback", "lost").await, 0.0);
    // The cancelled attempt is not a failure of local, and nothing of it is metered.
    let local_errors = metric_sum(
        &gw,
        "tiergate_upstream_errors_total",
        &[("upstream", "local")],
    )
    .await;
    assert_eq!(local_errors, Some(0.0));
    let local_requests = metric_sum(&gw, "tiergate_requests_total", &[("upstream", "local")]).await;
    assert_eq!(local_requests, Some(0.0));
    gw.shutdown().await;
}

#[tokio::test]
async fn the_first_answer_wins_and_the_slower_hedge_is_cancelled() {
    let local = Raw::start(Act::Answer(Duration::from_millis(600), "from local")).await;
    let fallback = Raw::start(Act::Hang).await;
    let policy = two_step(
        &raw_yaml(
            "local",
            &local,
            "    hedge: { after: 100ms, whole: true }\n",
        ),
        &raw_yaml("fallback", &fallback, ""),
    );
    let gw = Gateway::start(&policy).await;
    let (status, headers, body) = common::post(
        &gw.url("/v1/chat/completions"),
        chat_body("primitive", "write a function", false).to_string(),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-tiergate-upstream"], "local");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "from local");
    // The hedge was sent, then given up when local answered.
    assert_eq!(fallback.requests.load(Ordering::SeqCst), 1);
    fallback.wait_closed(1, Duration::from_secs(2)).await;
    assert_eq!(hedges(&gw, "fallback", "lost").await, 1.0);
    assert_eq!(hedges(&gw, "fallback", "won").await, 0.0);
    let fallback_requests =
        metric_sum(&gw, "tiergate_requests_total", &[("upstream", "fallback")]).await;
    assert_eq!(fallback_requests, Some(0.0), "the loser is not metered");
    gw.shutdown().await;
}

/// By default only streams are hedged: a whole answer's first byte is its last, and a slow
/// local answer must not be asked again of a paid upstream.
#[tokio::test]
async fn a_slow_whole_answer_is_not_hedged_by_default() {
    let local = Raw::start(Act::Answer(Duration::from_millis(600), "from local")).await;
    let fallback = Raw::start(Act::Hang).await;
    let policy = two_step(
        &raw_yaml("local", &local, "    hedge: { after: 100ms }\n"),
        &raw_yaml("fallback", &fallback, ""),
    );
    let gw = Gateway::start(&policy).await;
    let (status, headers, body) = common::post(
        &gw.url("/v1/chat/completions"),
        chat_body("primitive", "write a function", false).to_string(),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-tiergate-upstream"], "local");
    assert_eq!(fallback.requests.load(Ordering::SeqCst), 0, "no hedge");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_failed_hedge_leaves_the_first_attempt_to_answer() {
    let local = Raw::start(Act::Answer(Duration::from_millis(600), "from local")).await;
    let fallback = MockSpec::new().status(500).start().await;
    let policy = two_step(
        &raw_yaml(
            "local",
            &local,
            "    hedge: { after: 100ms, whole: true }\n",
        ),
        &upstream_yaml("fallback", &fallback, "{}"),
    );
    let gw = Gateway::start(&policy).await;
    let (status, headers, _) = common::post(
        &gw.url("/v1/chat/completions"),
        chat_body("primitive", "write a function", false).to_string(),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-tiergate-upstream"], "local");
    assert_eq!(fallback.requests().len(), 1);
    assert_eq!(hedges(&gw, "fallback", "failed").await, 1.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_first_byte_deadline_follows_the_upstreams_recent_first_bytes() {
    // Fast answers first; from the 21st request on, local hangs.
    let n = Arc::new(AtomicUsize::new(0));
    let spec = MockSpec::new();
    let local = {
        let (spec, n) = (spec.clone(), n.clone());
        MockUpstream::start(move |r| {
            let good = spec.reply(r);
            if n.fetch_add(1, Ordering::SeqCst) < 20 {
                good
            } else {
                Reply::Delay(Duration::from_secs(30), Box::new(good))
            }
        })
        .await
    };
    let fallback = MockSpec::new().start().await;
    // No hedging: only the deadline can move this request on. The ceiling is 30 s; the
    // adaptive deadline is 4 x the recent p99 (a few ms here), at least the 300 ms floor.
    let local_yaml = upstream_yaml("local", &local, "{}")
        .replace("first_byte: 5s", "first_byte: 30s")
        + "    hedge: { enabled: false }\n    first_byte_adaptive: { multiplier: 4, floor: 300ms }\n";
    let gw = Gateway::start(&two_step(
        &local_yaml,
        &upstream_yaml("fallback", &fallback, "{}"),
    ))
    .await;
    let url = gw.url("/v1/chat/completions");
    for _ in 0..20 {
        let (status, headers, _) =
            common::post(&url, chat_body("primitive", "hi", false).to_string(), &[]).await;
        assert_eq!(
            (status.as_u16(), &headers["x-tiergate-upstream"]),
            (200, &"local".parse().unwrap())
        );
    }
    let t0 = Instant::now();
    let (status, headers, _) =
        common::post(&url, chat_body("primitive", "hi", false).to_string(), &[]).await;
    let took = t0.elapsed();
    assert_eq!(status, 200);
    assert_eq!(headers["x-tiergate-upstream"], "fallback");
    assert!(
        took < Duration::from_secs(10),
        "the 30 s ceiling held: {took:?}"
    );
    let timeouts = metric_sum(
        &gw,
        "tiergate_upstream_errors_total",
        &[("upstream", "local"), ("type", "timeout")],
    )
    .await;
    assert_eq!(timeouts, Some(1.0));
    gw.shutdown().await;
}

#[tokio::test]
async fn an_attempt_sent_before_anything_was_known_ends_once_the_answers_show_it_hung() {
    // The very first request hangs; all others are answered at once.
    let n = Arc::new(AtomicUsize::new(0));
    let spec = MockSpec::new();
    let local = {
        let (spec, n) = (spec.clone(), n.clone());
        MockUpstream::start(move |r| {
            let good = spec.reply(r);
            if n.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::Delay(Duration::from_secs(60), Box::new(good))
            } else {
                good
            }
        })
        .await
    };
    let fallback = MockSpec::new().start().await;
    // No hedging, a 60 s ceiling: when the first request is sent nothing is known of local,
    // so its deadline starts at the ceiling.
    let local_yaml = upstream_yaml("local", &local, "{}")
        .replace("first_byte: 5s", "first_byte: 60s")
        .replace("total: 30s", "total: 120s")
        + "    hedge: { enabled: false }\n    first_byte_adaptive: { multiplier: 4, floor: 300ms }\n";
    let gw = Gateway::start(&two_step(
        &local_yaml,
        &upstream_yaml("fallback", &fallback, "{}"),
    ))
    .await;
    let url = gw.url("/v1/chat/completions");
    let t0 = Instant::now();
    let first = {
        let url = url.clone();
        tokio::spawn(async move {
            common::post(&url, chat_body("primitive", "hi", false).to_string(), &[]).await
        })
    };
    while n.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..20 {
        let (status, headers, _) =
            common::post(&url, chat_body("primitive", "hi", false).to_string(), &[]).await;
        assert_eq!(
            (status.as_u16(), &headers["x-tiergate-upstream"]),
            (200, &"local".parse().unwrap())
        );
    }
    let (status, headers, body) = first.await.unwrap();
    let took = t0.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-tiergate-upstream"], "fallback");
    assert!(
        took < Duration::from_secs(20),
        "the 60 s ceiling held: {took:?}"
    );
    let timeouts = metric_sum(
        &gw,
        "tiergate_upstream_errors_total",
        &[("upstream", "local"), ("type", "timeout")],
    )
    .await;
    assert_eq!(timeouts, Some(1.0));
    gw.shutdown().await;
}

#[test]
fn hedging_is_on_by_default_for_local_servers_and_off_for_keyed_apis() {
    let policy = tiergate::config::parse(
        "p.yaml",
        "upstreams:\n  - { name: local, kind: openai, base_url: \"http://127.0.0.1:1/v1\", key_required: false, model: m }\n  - { name: paid, kind: openai, base_url: \"http://127.0.0.1:2/v1\", api_key: sk-x, model: m }\n  - { name: paid-hedged, kind: openai, base_url: \"http://127.0.0.1:3/v1\", api_key: sk-y, model: m, hedge: { enabled: true, after: 3s } }\ntiers:\n  - { name: primitive, upstreams: [local, paid] }\n  - { name: architecture, upstreams: [paid-hedged, paid] }\n",
        |_| None,
    )
    .unwrap();
    let after: Vec<_> = policy.upstreams.iter().map(|u| u.hedge_after).collect();
    assert_eq!(
        after,
        [
            Some(Duration::from_secs(2)),
            None,
            Some(Duration::from_secs(3))
        ]
    );
    let bad = "upstreams:\n  - { name: l, kind: openai, base_url: \"http://127.0.0.1:1/v1\", key_required: false, model: m, first_byte_adaptive: { multiplier: 0.5 } }\ntiers:\n  - { name: primitive, upstreams: [l] }\n  - { name: architecture, upstreams: [l] }\n";
    let e = tiergate::config::parse("p.yaml", bad, |_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("first_byte_adaptive"), "{e}");
}
