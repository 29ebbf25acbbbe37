//! The mock upstreams: OpenAI chat completions on 127.0.0.1:0, whole or streamed, each
//! attempt drawing a fault from the mix (a fixed seed per attempt number, so runs compare).
//! What each request (by its `x-request-id`) met is kept for the report.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type MockBody = BoxBody<Bytes, std::io::Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// HTTP 500 with an OpenAI error body.
    Status500,
    /// No answer for 10 minutes (or until the gateway closes the connection).
    Hang,
    /// The connection is closed without an answer.
    Reset,
    /// The answer breaks off: a stream after two events, a whole body halfway.
    Truncate,
}

/// Rates of each fault, the rest answered well.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mix {
    pub status500: f64,
    pub hang: f64,
    pub reset: f64,
    pub truncate: f64,
}

impl Mix {
    fn draw(&self, x: f64) -> Option<Fault> {
        let mut edge = 0.0;
        for (rate, f) in [
            (self.status500, Fault::Status500),
            (self.hang, Fault::Hang),
            (self.reset, Fault::Reset),
            (self.truncate, Fault::Truncate),
        ] {
            edge += rate;
            if x < edge {
                return Some(f);
            }
        }
        None
    }
}

/// How a healthy answer is paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub first_byte: Duration,
    pub between_chunks: Duration,
}

/// Per request id: the faults its attempts met, and whether one was a stream's.
#[derive(Debug, Default, Clone)]
pub struct Met {
    pub faults: Vec<Fault>,
    pub stream: bool,
}

pub struct Mock {
    pub addr: SocketAddr,
    pub attempts: Arc<AtomicU64>,
    pub met: Arc<Mutex<HashMap<String, Met>>>,
}

struct Shared {
    mix: Mix,
    pace: Pace,
    seed: u64,
    /// Keep every request's record (fault runs), or only those that met a fault (soak).
    keep_all: bool,
    attempts: Arc<AtomicU64>,
    met: Arc<Mutex<HashMap<String, Met>>>,
}

pub const CONTENT: &str = "def add(a, b):\n    return a + b\n";
const CHUNKS: usize = 8;

pub async fn start(mix: Mix, pace: Pace, seed: u64, keep_all: bool) -> std::io::Result<Mock> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let attempts = Arc::new(AtomicU64::new(0));
    let met = Arc::new(Mutex::new(HashMap::new()));
    let shared = Arc::new(Shared {
        mix,
        pace,
        seed,
        keep_all,
        attempts: attempts.clone(),
        met: met.clone(),
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(shared.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(Mock {
        addr,
        attempts,
        met,
    })
}

fn full(status: u16, body: String) -> Response<MockBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn completion() -> String {
    serde_json::json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": "mock",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": CONTENT}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}
    })
    .to_string()
}

fn events() -> Vec<String> {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let v = serde_json::json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
            "model": "mock", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {v}\n\n")
    };
    let mut out = vec![chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    )];
    let bytes = CONTENT.as_bytes();
    let step = bytes.len().div_ceil(CHUNKS);
    for piece in bytes.chunks(step) {
        let text = String::from_utf8_lossy(piece);
        out.push(chunk(serde_json::json!({"content": text}), None));
    }
    out.push(chunk(serde_json::json!({}), Some("stop")));
    let usage = serde_json::json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
        "model": "mock", "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}});
    out.push(format!("data: {usage}\n\n"));
    out.push("data: [DONE]\n\n".into());
    out
}

/// An SSE answer: `events`, paced, then an error (a broken connection) when `cut`.
fn sse(events: Vec<String>, gap: Duration, cut: bool) -> Response<MockBody> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        for (i, e) in events.into_iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if tx.send(Ok(Frame::data(Bytes::from(e)))).await.is_err() {
                return;
            }
        }
        if cut {
            let _ = tx.send(Err(std::io::Error::other("mock truncation"))).await;
        }
    });
    let body = StreamBody::new(frames(rx)).boxed();
    let mut r = Response::new(body);
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/event-stream"),
    );
    r
}

/// A channel as a stream of frames.
fn frames(
    mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn handle(
    s: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, std::io::Error> {
    if req.method() == http::Method::GET {
        // Health checks and model lists.
        return Ok(full(
            200,
            r#"{"object":"list","data":[{"id":"mock","object":"model"}]}"#.into(),
        ));
    }
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let stream = memchr::memmem::find(&body, b"\"stream\":true").is_some();
    let n = s.attempts.fetch_add(1, Ordering::Relaxed);
    let fault = s
        .mix
        .draw(fastrand::Rng::with_seed(s.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).f64());
    if (s.keep_all || fault.is_some())
        && let Ok(mut met) = s.met.lock()
    {
        let m = met.entry(id).or_default();
        m.stream |= stream;
        m.faults.extend(fault);
    }
    match fault {
        Some(Fault::Status500) => Ok(full(
            500,
            r#"{"error":{"message":"mock fault","type":"server_error","param":null,"code":null}}"#
                .into(),
        )),
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(full(200, completion()))
        }
        Some(Fault::Reset) => Err(std::io::Error::other("mock reset")),
        Some(Fault::Truncate) if stream => {
            tokio::time::sleep(s.pace.first_byte).await;
            Ok(sse(
                events().into_iter().take(2).collect(),
                s.pace.between_chunks,
                true,
            ))
        }
        Some(Fault::Truncate) => {
            tokio::time::sleep(s.pace.first_byte).await;
            let whole = completion();
            let half = Bytes::from(whole.as_bytes()[..whole.len() / 2].to_vec());
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            let _ = tx.try_send(Ok(Frame::data(half)));
            let _ = tx.try_send(Err(std::io::Error::other("mock truncation")));
            let mut r = Response::new(StreamBody::new(frames(rx)).boxed());
            r.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/json"),
            );
            r.headers_mut()
                .insert("content-length", http::HeaderValue::from(whole.len()));
            Ok(r)
        }
        None if stream => {
            tokio::time::sleep(s.pace.first_byte).await;
            Ok(sse(events(), s.pace.between_chunks, false))
        }
        None => {
            tokio::time::sleep(s.pace.first_byte).await;
            Ok(full(200, completion()))
        }
    }
}
