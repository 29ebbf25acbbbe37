//! A mock upstream described by data (`MockSpec`: status, content, usage, streaming
//! behaviour, delays) on top of `MockUpstream`, plus what tests of accounting need: sums of
//! Prometheus samples by label subset, waiting for a stream to be recorded, an SSE reader
//! that can hang up, and the gateway's token estimate.
//!
//! ```ignore
//! let local = MockSpec::new().usage(1000, 200, 400).content(["Hel", "lo"]).start().await;
//! let gw = Gateway::start(&format!("upstreams:\n{}...", upstream_yaml("local", &local, "{}"))).await;
//! assert_eq!(wait_metric(&gw, "tiergate_input_tokens_total", &[("upstream", "local")]).await, 1000.0);
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use super::{Gateway, MockUpstream, Received, Reply};

/// Token usage a mock reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockUsage {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
}

/// What a mock upstream answers to `POST /v1/chat/completions` (and `/v1/completions`,
/// with `text` choices). Build with `MockSpec::new()` and the setters, then `start()`.
#[derive(Debug, Clone)]
pub struct MockSpec {
    /// Status of every answer; anything but 200 gets an OpenAI-shaped error body.
    pub status: u16,
    /// Usage reported in whole bodies and, when the request asks with
    /// `stream_options.include_usage`, in a final usage-only stream chunk. None: never.
    pub usage: Option<MockUsage>,
    /// When false, streams never carry the usage chunk even if asked (servers that ignore
    /// `include_usage`).
    pub stream_usage: bool,
    /// The answer, one piece per stream chunk; joined for whole answers.
    pub content: Vec<String>,
    /// Wait before the response head.
    pub first_byte_delay: Duration,
    /// Wait before each stream event after the first.
    pub chunk_delay: Duration,
    /// Wait `stall` before event number `stall_after` (0-based). A stream's events are: the
    /// role chunk, one chunk per content piece, the finish chunk, the usage chunk (when asked
    /// for, `usage` is set and `stream_usage` holds), `[DONE]`.
    pub stall_after: Option<usize>,
    pub stall: Duration,
}

impl Default for MockSpec {
    fn default() -> Self {
        MockSpec {
            status: 200,
            usage: None,
            stream_usage: true,
            content: vec!["Hello".into(), ", world".into()],
            first_byte_delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            stall_after: None,
            stall: Duration::ZERO,
        }
    }
}

impl MockSpec {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
    pub fn usage(mut self, prompt: u64, completion: u64, cached: u64) -> Self {
        self.usage = Some(MockUsage {
            prompt,
            completion,
            cached,
        });
        self
    }
    pub fn no_stream_usage(mut self) -> Self {
        self.stream_usage = false;
        self
    }
    pub fn content<S: Into<String>>(mut self, pieces: impl IntoIterator<Item = S>) -> Self {
        self.content = pieces.into_iter().map(Into::into).collect();
        self
    }
    pub fn first_byte_delay(mut self, d: Duration) -> Self {
        self.first_byte_delay = d;
        self
    }
    pub fn chunk_delay(mut self, d: Duration) -> Self {
        self.chunk_delay = d;
        self
    }
    pub fn stall_after(mut self, event: usize, d: Duration) -> Self {
        self.stall_after = Some(event);
        self.stall = d;
        self
    }

    /// Serves the spec on 127.0.0.1:0. `MockUpstream::requests` has what it received and
    /// `dropped_count` the streams whose reader left before the end.
    pub async fn start(self) -> MockUpstream {
        MockUpstream::start(move |r| self.reply(r)).await
    }

    /// The answer to one request.
    pub fn reply(&self, r: &Received) -> Reply {
        let reply = self.answer(r);
        if self.first_byte_delay.is_zero() {
            reply
        } else {
            Reply::Delay(self.first_byte_delay, Box::new(reply))
        }
    }

    fn answer(&self, r: &Received) -> Reply {
        if self.status != 200 {
            let e = json!({"error": {"message": format!("mock answers {}", self.status), "type": "server_error", "param": null, "code": null}});
            return Reply::Json(self.status, e);
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let legacy = !r.path.ends_with("/chat/completions");
        let model = body["model"].clone();
        if body["stream"] != json!(true) {
            let text: String = self.content.concat();
            let choice = if legacy {
                json!({"index": 0, "text": text, "finish_reason": "stop"})
            } else {
                json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"})
            };
            let mut out = json!({"id": "mock-1", "object": "chat.completion", "created": 1, "model": model, "choices": [choice]});
            if let Some(u) = self.usage {
                out["usage"] = usage_json(u);
            }
            return Reply::Json(200, out);
        }
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "mock-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        events.extend(
            self.content
                .iter()
                .map(|p| chunk(json!({"content": p}), Value::Null)),
        );
        events.push(chunk(json!({}), json!("stop")));
        let asked = body["stream_options"]["include_usage"] == json!(true);
        if let (true, true, Some(u)) = (asked, self.stream_usage, self.usage) {
            events.push(json!({"id": "mock-1", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage_json(u)}));
        }
        let mut frames: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        frames.push("data: [DONE]\n\n".into());
        let timed = frames
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let wait = match (self.stall_after == Some(i), i) {
                    (true, _) => self.stall,
                    (false, 0) => Duration::ZERO,
                    (false, _) => self.chunk_delay,
                };
                (wait, f)
            })
            .collect();
        Reply::Sse(timed)
    }
}

fn usage_json(u: MockUsage) -> Value {
    json!({"prompt_tokens": u.prompt, "completion_tokens": u.completion, "total_tokens": u.prompt + u.completion,
           "prompt_tokens_details": {"cached_tokens": u.cached}})
}

/// A policy upstream entry (kind openai, no key, short timeouts) for a mock, with `price`
/// as a YAML flow map.
pub fn upstream_yaml(name: &str, mock: &MockUpstream, price: &str) -> String {
    format!(
        "  - name: {name}\n    kind: openai\n    base_url: \"{}\"\n    key_required: false\n    model: {name}-model\n    timeouts: {{ connect: 1s, first_byte: 5s, total: 30s }}\n    price: {price}\n",
        mock.base_url()
    )
}

/// An OpenAI chat request with one user message.
pub fn chat_body(model: &str, prompt: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream})
}

/// `ceil(bytes / 4)`: the gateway's estimate of the tokens in `bytes` bytes of text.
pub fn est(bytes: usize) -> u64 {
    bytes.div_ceil(4) as u64
}

/// The body of `GET /metrics`, over HTTP.
pub async fn scrape(gw: &Gateway) -> String {
    let (status, body) = super::get(&gw.url("/metrics")).await;
    assert_eq!(status, 200);
    String::from_utf8(body.to_vec()).unwrap()
}

/// The sum of the samples of `name` whose labels include every pair of `labels` (Prometheus
/// text format); None when none matches.
pub fn sample_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, ls) = match series.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
            None => (series, Vec::new()),
        };
        if n != name
            || !labels
                .iter()
                .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
        {
            continue;
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad sample {line}"));
        *found.get_or_insert(0.0) += v;
    }
    found
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((k, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut end = after.len();
        let mut chars = after.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((k.trim_start_matches(',').trim().to_string(), value));
        rest = &after[end..];
    }
    out
}

/// `sample_sum` over a fresh scrape.
pub async fn metric_sum(gw: &Gateway, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample_sum(&scrape(gw).await, name, labels)
}

/// Polls `/metrics` until `pred` holds for `metric_sum(name, labels)`, for at most 5 s (a
/// stream is recorded when its body ends, a moment after the client saw the end).
pub async fn wait_for(
    gw: &Gateway,
    name: &str,
    labels: &[(&str, &str)],
    pred: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = metric_sum(gw, name, labels).await
            && pred(v)
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} not as expected within 5s:\n{}",
            scrape(gw).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until a series exists and returns its value.
pub async fn wait_metric(gw: &Gateway, name: &str, labels: &[(&str, &str)]) -> f64 {
    wait_for(gw, name, labels, |_| true).await
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|e| {
            e.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_string)
        })
        .collect()
}

/// A streamed answer read event by event on its own connection; dropping it hangs up.
pub struct StreamReply {
    pub status: u16,
    pub headers: HeaderMap,
    body: Incoming,
    buf: String,
    _sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl StreamReply {
    pub async fn open(addr: SocketAddr, path: &str, body: &Value) -> StreamReply {
        let sock = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(sock))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::post(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        StreamReply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            buf: String::new(),
            _sender: sender,
        }
    }

    /// The next event's `data:` payload; None at the end of the stream.
    pub async fn next_data(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..i + 2).collect();
                if let Some(d) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return Some(d.to_string());
                }
                continue;
            }
            match self.body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&d));
                    }
                }
                _ => return None,
            }
        }
    }
}
