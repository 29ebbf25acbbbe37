//! The client side: chat completions to the gateway (model `primitive`), whole or streamed,
//! each under the client timeout, judged on what came back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::mock::CONTENT;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(http)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A complete, correct answer.
    Success,
    /// A well-formed error: an OpenAI error body, or a stream ending in an error event.
    Error,
    /// Neither a correct answer nor a well-formed error.
    Malformed,
    /// No complete answer within the client timeout.
    Timeout,
    /// The connection failed (no HTTP answer).
    Transport,
    /// The client hung up on purpose.
    HungUp,
}

/// One request; `hang_up`: leave early (a stream after its first chunk, a whole answer
/// before it came).
pub async fn one(
    c: &HttpClient,
    url: &str,
    id: &str,
    stream: bool,
    timeout: Duration,
    hang_up: bool,
) -> Outcome {
    let body = serde_json::json!({
        "model": "primitive",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are a careful coding assistant."},
            {"role": "user", "content": "Write a Python function add(a, b) that returns the sum of two numbers."}
        ]
    })
    .to_string();
    let req = Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-bench")
        .header("x-request-id", id)
        .body(Full::new(Bytes::from(body)));
    let Ok(req) = req else {
        return Outcome::Transport;
    };
    let run = async {
        if hang_up && !stream {
            // Leave before the answer: the gateway sees the client go while it waits.
            let _ = tokio::time::timeout(Duration::from_millis(10), c.request(req)).await;
            return Outcome::HungUp;
        }
        let resp = match c.request(req).await {
            Ok(r) => r,
            Err(_) => return Outcome::Transport,
        };
        let status = resp.status();
        let mut body = resp.into_body();
        if hang_up {
            // Leave once a chunk arrived: the gateway sees the client go mid-stream.
            let _ = body.frame().await;
            return Outcome::HungUp;
        }
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Outcome::Malformed,
        };
        judge(status.as_u16(), stream, &bytes)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(o) => o,
        Err(_) => Outcome::Timeout,
    }
}

fn is_error(v: &serde_json::Value) -> bool {
    v["error"]["message"].is_string()
}

fn judge(status: u16, stream: bool, body: &[u8]) -> Outcome {
    if status != 200 {
        return match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) if is_error(&v) => Outcome::Error,
            _ => Outcome::Malformed,
        };
    }
    if !stream {
        return match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) if v["choices"][0]["message"]["content"] == CONTENT => Outcome::Success,
            _ => Outcome::Malformed,
        };
    }
    let text = String::from_utf8_lossy(body);
    if !text.ends_with("\n\n") {
        return Outcome::Malformed;
    }
    let data: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .collect();
    let Some((last, rest)) = data.split_last() else {
        return Outcome::Malformed;
    };
    let mut content = String::new();
    for d in rest {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(d) else {
            return Outcome::Malformed;
        };
        if is_error(&v) {
            return Outcome::Malformed;
        }
        content.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
    }
    if *last == "[DONE]" && content == CONTENT {
        Outcome::Success
    } else if serde_json::from_str::<serde_json::Value>(last).is_ok_and(|v| is_error(&v)) {
        Outcome::Error
    } else {
        Outcome::Malformed
    }
}

/// Counts of outcomes, and the slowest answer.
#[derive(Default)]
pub struct Tally {
    pub counts: [AtomicU64; 6],
    pub slowest_ms: AtomicU64,
}

impl Tally {
    pub fn add(&self, o: Outcome, took: Duration) {
        self.counts[o as usize].fetch_add(1, Ordering::Relaxed);
        self.slowest_ms
            .fetch_max(took.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn get(&self, o: Outcome) -> u64 {
        self.counts[o as usize].load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// One result per request, for the fault run's report.
pub struct Record {
    pub id: String,
    pub stream: bool,
    pub outcome: Outcome,
    pub took: Duration,
}

/// `n` requests (`None`: until `until`) at concurrency `c`, every other one streamed; a
/// fixed draw per request at rate `hang_ups` picks those that hang up. Records each result
/// when `keep`, else only the failed ones.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    url: Arc<str>,
    n: Option<u64>,
    until: Option<Instant>,
    concurrency: usize,
    timeout: Duration,
    hang_ups: f64,
    tally: Arc<Tally>,
    keep: bool,
) -> Vec<Record> {
    let next = Arc::new(AtomicU64::new(0));
    let c = client();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (url, next, tally, c) = (url.clone(), next.clone(), tally.clone(), c.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if n.is_some_and(|n| i >= n) || until.is_some_and(|u| Instant::now() >= u) {
                    return out;
                }
                let stream = i % 2 == 0;
                let hang_up = fastrand::Rng::with_seed(i ^ 0x5eed).f64() < hang_ups;
                let id = format!("bench-{i}");
                let t0 = Instant::now();
                let outcome = one(&c, &url, &id, stream, timeout, hang_up).await;
                let took = t0.elapsed();
                tally.add(outcome, took);
                let bad = !matches!(outcome, Outcome::Success | Outcome::HungUp);
                if keep || bad {
                    out.push(Record {
                        id,
                        stream,
                        outcome,
                        took,
                    });
                }
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        if let Ok(mut r) = w.await {
            all.append(&mut r);
        }
    }
    all
}
