//! Test support: mock upstreams on 127.0.0.1:0, an in-process gateway, and a small HTTP client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod binary;
pub mod prices;
pub mod prompts;
pub mod spec;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

type MockBody = BoxBody<Bytes, std::io::Error>;

/// A child process that is killed and reaped when dropped: also when the test panics.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a mock upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How a mock answers one request.
pub enum Reply {
    Json(u16, serde_json::Value),
    /// SSE events, each sent as its own chunk after its delay.
    Sse(Vec<(Duration, String)>),
    /// Chunks pulled from a channel: the test decides when each is sent.
    Channel(mpsc::UnboundedReceiver<Bytes>),
    /// Wait this long before answering with the inner reply.
    Delay(Duration, Box<Reply>),
    /// Close the connection without an answer.
    Reset,
    /// An SSE head and these chunks, then the connection breaks (no clean end).
    Truncated(Vec<String>),
}

type Handler = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

pub struct MockUpstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Notified each time a response body is dropped before it was fully sent.
    pub body_dropped: Arc<Notify>,
    pub dropped_count: Arc<Mutex<usize>>,
    /// Connections that have ended, from either side.
    pub closed: Arc<std::sync::atomic::AtomicUsize>,
}

impl MockUpstream {
    pub fn connections_closed(&self) -> usize {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub async fn start(
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let body_dropped = Arc::new(Notify::new());
        let dropped_count = Arc::new(Mutex::new(0));
        let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let closed_in = closed.clone();
        let handler: Handler = Arc::new(handler);
        let (rec, dropped, count) = (
            received.clone(),
            body_dropped.clone(),
            dropped_count.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, rec, dropped, count) =
                    (handler.clone(), rec.clone(), dropped.clone(), count.clone());
                let closed = closed_in.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (handler, rec, dropped, count) =
                            (handler.clone(), rec.clone(), dropped.clone(), count.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let r = Received {
                                path: parts.uri.path().to_string(),
                                headers: parts.headers,
                                body,
                            };
                            rec.lock().unwrap().push(r.clone());
                            let reply = handler(&r);
                            respond(reply, dropped, count)
                                .await
                                .ok_or_else(|| std::io::Error::other("mock reset"))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        MockUpstream {
            addr,
            received,
            body_dropped,
            dropped_count,
            closed,
        }
    }
}

/// Sets a flag on drop unless the stream finished: how a mock sees a cancelled download.
struct DropGuard {
    finished: bool,
    notify: Arc<Notify>,
    count: Arc<Mutex<usize>>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.finished {
            *self.count.lock().unwrap() += 1;
            self.notify.notify_waiters();
            self.notify.notify_one();
        }
    }
}

fn respond(
    reply: Reply,
    dropped: Arc<Notify>,
    count: Arc<Mutex<usize>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Response<MockBody>>> + Send>> {
    Box::pin(async move {
        match reply {
            Reply::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                respond(*inner, dropped, count).await
            }
            Reply::Json(status, v) => Some(
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(
                        Full::new(Bytes::from(v.to_string()))
                            .map_err(|e| match e {})
                            .boxed(),
                    )
                    .unwrap(),
            ),
            Reply::Reset => None,
            Reply::Truncated(chunks) => {
                use futures_util::StreamExt;
                let frames = futures_util::stream::iter(
                    chunks.into_iter().map(|c| Ok(Frame::data(Bytes::from(c)))),
                )
                .chain(futures_util::stream::once(async {
                    // Let the chunks reach the reader before the connection breaks.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    Err(std::io::Error::other("mock truncation"))
                }));
                Some(
                    Response::builder()
                        .status(200)
                        .header("content-type", "text/event-stream")
                        .body(BodyExt::boxed(StreamBody::new(frames)))
                        .unwrap(),
                )
            }
            Reply::Sse(events) => {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(async move {
                    for (d, e) in events {
                        if !d.is_zero() {
                            tokio::time::sleep(d).await;
                        }
                        if tx.send(Bytes::from(e)).is_err() {
                            return;
                        }
                    }
                });
                Some(sse_response(rx, dropped, count))
            }
            Reply::Channel(rx) => Some(sse_response(rx, dropped, count)),
        }
    })
}

fn sse_response(
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    notify: Arc<Notify>,
    count: Arc<Mutex<usize>>,
) -> Response<MockBody> {
    let stream = async_stream(
        move |tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>| async move {
            let mut guard = DropGuard {
                finished: false,
                notify,
                count,
            };
            loop {
                // Watch for the connection going away even while no event is due.
                let b = tokio::select! {
                    b = rx.recv() => b,
                    () = tx.closed() => return,
                };
                let Some(b) = b else { break };
                if tx.send(Ok(Frame::data(b))).await.is_err() {
                    return;
                }
            }
            guard.finished = true;
            drop(guard);
        },
    );
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(stream).map_err(|e| match e {}).boxed())
        .unwrap()
}

/// A body stream fed by a task; dropping the receiver (the connection went away) makes the
/// task's next send fail, which drops the task's state (and its DropGuard).
fn async_stream<F, Fut>(f: F) -> ReceiverStream<Result<Frame<Bytes>, Infallible>>
where
    F: FnOnce(mpsc::Sender<Result<Frame<Bytes>, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(1);
    let fut = f(tx);
    tokio::spawn(fut);
    ReceiverStream::new(rx)
}

/// A chat completion body as OpenAI returns it.
pub fn completion(
    model: &str,
    text: &str,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
    })
}

/// SSE events of a streamed completion of `words`, with a usage chunk when `usage` is given.
pub fn stream_events(model: &str, words: &[&str], usage: Option<(u64, u64)>) -> Vec<String> {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let v = serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {v}\n\n")
    };
    let mut out = vec![chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    )];
    out.extend(
        words
            .iter()
            .map(|w| chunk(serde_json::json!({"content": w}), None)),
    );
    out.push(chunk(serde_json::json!({}), Some("stop")));
    if let Some((p, c)) = usage {
        let v = serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}});
        out.push(format!("data: {v}\n\n"));
    }
    out.push("data: [DONE]\n\n".to_string());
    out
}

/// The gateway, in process, on 127.0.0.1:0.
pub struct Gateway {
    pub addr: SocketAddr,
    pub app: Arc<tiergate::app::App>,
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    pub async fn start(policy_yaml: &str) -> Gateway {
        let policy = tiergate::config::parse("test.yaml", policy_yaml, |_| None).unwrap();
        let app = tiergate::app::App::new(tiergate::app::Runtime::new(policy).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(tiergate::server::serve(
            app.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
            Duration::from_secs(5),
        ));
        Gateway {
            addr,
            app,
            stop: Some(tx),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting and waits for the drain to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    pub fn metrics(&self) -> String {
        String::from_utf8(self.app.metrics.render()).unwrap()
    }
}

/// A policy with two upstreams, `a` (tier primitive) and `b` (tier architecture), both keyed.
pub fn two_tier_policy(a: &str, b: &str) -> String {
    format!(
        r#"
upstreams:
  - name: a
    kind: openai
    base_url: {a}
    api_key: key-a
    model: model-a
    timeouts: {{ connect: 1s, first_byte: 2s, total: 10s }}
    price: {{ input_per_mtok: 0, output_per_mtok: 0 }}
  - name: b
    kind: openai
    base_url: {b}
    api_key: key-b
    model: model-b
    timeouts: {{ connect: 1s, first_byte: 2s, total: 10s }}
    price: {{ input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 }}
tiers:
  - name: primitive
    upstreams: [a, b]
  - name: architecture
    upstreams: [b]
reference_upstream: b
"#
    )
}

/// Value of a sample line in Prometheus text, e.g. `tiergate_cost_usd_total{tier="x",upstream="y"}`.
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)
            .and_then(|v| v.trim().parse().ok())
    })
}

pub type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

pub fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// POSTs JSON (as given, so tests can send broken bodies) and reads the whole answer.
pub async fn post(
    url: &str,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    send(&client(), url, body, headers).await
}

pub async fn send(
    c: &Client,
    url: &str,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let resp = c.request(request(url, body, headers)).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

pub fn request(
    url: &str,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut b = Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).unwrap()
}

pub async fn get(url: &str) -> (StatusCode, Bytes) {
    let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let resp = client().request(req).await.unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

pub fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(b)))
}

pub fn chat(model: &str, text: &str) -> String {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]}).to_string()
}
