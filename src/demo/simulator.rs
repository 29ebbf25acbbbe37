//! Simulated upstreams on 127.0.0.1 that behave like the real ones on the wire: an
//! OpenAI-compatible local Qwen server (free, slower per stream as more streams share the
//! GPU, writes tool calls as text the way Qwen does) and frontier APIs (OpenAI chat
//! completions, Anthropic Messages: a time to first token of a few hundred milliseconds,
//! prompt caching on OpenAI). All of them stream and report usage.
//!
//! Token rates are about four times those of the real services so that a demo run is short;
//! the proportions (who is faster, who slows under load) are kept.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

type SimBody = BoxBody<Bytes, Infallible>;

/// Which API a simulator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
}

/// How a simulated model behaves.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: &'static str,
    pub wire: Wire,
    pub model: &'static str,
    /// Time to first token before prefill, drawn uniformly from this range.
    pub ttft: (Duration, Duration),
    /// Prompt tokens read per second (adds to the time to first token).
    pub prefill_tokens_per_second: f64,
    /// Output tokens per second of one stream on an idle server.
    pub tokens_per_second: f64,
    /// Each further concurrent request slows every stream by this share (a shared GPU).
    pub slowdown_per_request: f64,
    /// Requests must carry a key (frontier APIs).
    pub needs_key: bool,
    /// Repeated long prompt prefixes are reported as cached (OpenAI's automatic caching).
    pub caches_prompts: bool,
    /// Writes tool calls as text in `<tool_call>` tags instead of `tool_calls` (Qwen on a
    /// server without a tool parser); the gateway repairs them.
    pub tool_calls_as_text: bool,
}

impl Profile {
    pub fn local_qwen() -> Profile {
        Profile {
            name: "local Qwen (simulated)",
            wire: Wire::OpenAi,
            model: "qwen2.5-coder-7b-instruct",
            ttft: (Duration::from_millis(40), Duration::from_millis(90)),
            prefill_tokens_per_second: 40_000.0,
            tokens_per_second: 420.0,
            slowdown_per_request: 0.3,
            needs_key: false,
            caches_prompts: false,
            tool_calls_as_text: true,
        }
    }

    pub fn openai() -> Profile {
        Profile {
            name: "OpenAI API (simulated)",
            wire: Wire::OpenAi,
            model: "gpt-4o",
            ttft: (Duration::from_millis(250), Duration::from_millis(500)),
            prefill_tokens_per_second: 200_000.0,
            tokens_per_second: 320.0,
            slowdown_per_request: 0.0,
            needs_key: true,
            caches_prompts: true,
            tool_calls_as_text: false,
        }
    }

    pub fn anthropic() -> Profile {
        Profile {
            name: "Anthropic API (simulated)",
            wire: Wire::Anthropic,
            model: "claude-sonnet-4-5",
            ttft: (Duration::from_millis(300), Duration::from_millis(650)),
            prefill_tokens_per_second: 200_000.0,
            tokens_per_second: 280.0,
            slowdown_per_request: 0.0,
            needs_key: true,
            caches_prompts: false,
            tool_calls_as_text: false,
        }
    }
}

struct Shared {
    profile: Profile,
    active: AtomicUsize,
    served: AtomicU64,
    /// Hashes of prompt prefixes already seen (for cached-token reports).
    seen_prefixes: Mutex<HashSet<u64>>,
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    pub addr: SocketAddr,
    pub profile: Profile,
    shared: Arc<Shared>,
    _stop: watch::Sender<bool>,
}

impl Simulator {
    pub async fn start(profile: Profile) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            profile: profile.clone(),
            active: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            seen_prefixes: Mutex::new(HashSet::new()),
        });
        let (stop, mut stopped) = watch::channel(false);
        let s = shared.clone();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            loop {
                let stream = tokio::select! {
                    a = listener.accept() => match a {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = stopped.changed() => break,
                };
                let _ = stream.set_nodelay(true);
                let s = s.clone();
                let svc = service_fn(move |req| {
                    let s = s.clone();
                    async move { Ok::<_, Infallible>(handle(s, req).await) }
                });
                let conn = builder
                    .serve_connection(TokioIo::new(stream), svc)
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(Simulator {
            addr,
            profile,
            shared,
            _stop: stop,
        })
    }

    /// The base URL a policy points at: with `/v1` for OpenAI-compatible servers, without
    /// for Anthropic (the gateway adds `/v1/messages`).
    pub fn base_url(&self) -> String {
        match self.profile.wire {
            Wire::OpenAi => format!("http://{}/v1", self.addr),
            Wire::Anthropic => format!("http://{}", self.addr),
        }
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }
}

async fn handle(s: Arc<Shared>, req: Request<Incoming>) -> Response<SimBody> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    if s.profile.needs_key && !has_key(&parts.headers, s.profile.wire) {
        return error(&s.profile, 401, "authentication_error", "missing API key");
    }
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(&s.profile, 400, "invalid_request_error", "unreadable body"),
    };
    let json: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) if parts.method == Method::GET => Value::Null,
        Err(e) => return error(&s.profile, 400, "invalid_request_error", &e.to_string()),
    };
    match (s.profile.wire, &parts.method, path.as_str()) {
        (Wire::OpenAi, &Method::GET, "/v1/models") => {
            let b = json!({"object": "list", "data": [{"id": s.profile.model, "object": "model", "created": 0, "owned_by": "sim"}]});
            whole(200, b)
        }
        (Wire::OpenAi, &Method::POST, "/v1/chat/completions") => {
            answer(s, &json, body.len(), Shape::Chat).await
        }
        (Wire::OpenAi, &Method::POST, "/v1/completions") => {
            answer(s, &json, body.len(), Shape::Legacy).await
        }
        (Wire::Anthropic, &Method::POST, "/v1/messages") => {
            if !parts.headers.contains_key("anthropic-version") {
                return error(
                    &s.profile,
                    400,
                    "invalid_request_error",
                    "anthropic-version header is required",
                );
            }
            answer(s, &json, body.len(), Shape::Messages).await
        }
        (Wire::Anthropic, &Method::POST, "/v1/messages/count_tokens") => {
            whole(200, json!({"input_tokens": tokens_of_bytes(body.len())}))
        }
        _ => error(&s.profile, 404, "not_found_error", "unknown path"),
    }
}

fn has_key(h: &http::HeaderMap, wire: Wire) -> bool {
    let nonempty = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().len() > "Bearer ".len())
    };
    match wire {
        Wire::OpenAi => nonempty("authorization"),
        Wire::Anthropic => h.get("x-api-key").is_some_and(|v| !v.is_empty()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Chat,
    Legacy,
    Messages,
}

/// What the simulated model says: text, or a call of one of the offered tools.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Text(String),
    Tool { name: String, arguments: Value },
}

/// About four bytes per token, as for code and English.
fn tokens_of_bytes(bytes: usize) -> u64 {
    bytes.div_ceil(4) as u64
}

/// Marks a request in progress for the load model; released on drop.
struct Busy(Arc<Shared>);

impl Busy {
    fn new(s: &Arc<Shared>) -> Busy {
        s.active.fetch_add(1, Ordering::SeqCst);
        Busy(s.clone())
    }

    /// Seconds per output token now, given how many requests share the server.
    fn per_token(&self) -> f64 {
        let p = &self.0.profile;
        let others = self.0.active.load(Ordering::SeqCst).saturating_sub(1) as f64;
        (1.0 + p.slowdown_per_request * others) / p.tokens_per_second
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.served.fetch_add(1, Ordering::Relaxed);
    }
}

async fn answer(s: Arc<Shared>, req: &Value, body_len: usize, shape: Shape) -> Response<SimBody> {
    let busy = Busy::new(&s);
    let p = &s.profile;
    let prompt_tokens = tokens_of_bytes(body_len.saturating_sub(60)).max(1);
    let cached = if p.caches_prompts {
        cached_tokens(&s, req)
    } else {
        0
    };
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let max_tokens = ["max_tokens", "max_completion_tokens"]
        .iter()
        .find_map(|k| req.get(k).and_then(Value::as_u64))
        .unwrap_or(u64::MAX);
    let ask = last_user_text(req, shape);
    let answer = match offered_tool(req, shape) {
        Some((name, schema)) if wants_tool(req, shape) => Answer::Tool {
            name,
            arguments: arguments_for(&schema, &ask),
        },
        _ => Answer::Text(compose(&ask, shape == Shape::Legacy, max_tokens)),
    };
    let text = render(&answer, p.tool_calls_as_text);
    let completion_tokens = tokens_of_bytes(text.len()).max(1);
    let (lo, hi) = p.ttft;
    let jitter = (hi.saturating_sub(lo)).mul_f64(fastrand::f64());
    let ttft =
        lo + jitter + Duration::from_secs_f64(prompt_tokens as f64 / p.prefill_tokens_per_second);
    let usage = UsageOut {
        prompt: prompt_tokens,
        completion: completion_tokens,
        cached,
    };
    let id = format!("{:016x}", fastrand::u64(..));
    let model = p.model;
    if !stream {
        tokio::time::sleep(ttft).await;
        let decode = busy.per_token() * completion_tokens as f64;
        tokio::time::sleep(Duration::from_secs_f64(decode)).await;
        drop(busy);
        let body = match shape {
            Shape::Chat => chat_body(&id, model, &answer, &text, &usage, p.tool_calls_as_text),
            Shape::Legacy => legacy_body(&id, model, &text, &usage),
            Shape::Messages => messages_body(&id, model, &answer, &text, &usage),
        };
        return whole(200, body);
    }
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let events = match shape {
        Shape::Chat => chat_events(
            &id,
            model,
            &answer,
            &text,
            &usage,
            include_usage,
            p.tool_calls_as_text,
        ),
        Shape::Legacy => legacy_events(&id, model, &text, &usage, include_usage),
        Shape::Messages => messages_events(&id, model, &answer, &text, &usage),
    };
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        tokio::time::sleep(ttft).await;
        for e in events {
            if e.tokens > 0 {
                let d = busy.per_token() * e.tokens as f64;
                tokio::time::sleep(Duration::from_secs_f64(d)).await;
            }
            // The client hung up: stop generating, as a real server does.
            if tx.send(Ok(Frame::data(Bytes::from(e.text)))).await.is_err() {
                return;
            }
        }
        drop(busy);
    });
    let body = StreamBody::new(ReceiverStream(rx)).boxed();
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    r
}

struct ReceiverStream(mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);

impl futures_util::Stream for ReceiverStream {
    type Item = Result<Frame<Bytes>, Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// OpenAI-style automatic prompt caching: the system prompt of a long request, once seen,
/// is served from cache (in 128-token steps, from 1024 tokens on).
fn cached_tokens(s: &Shared, req: &Value) -> u64 {
    let Some(system) = req
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.first())
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("system"))
        .map(|m| m.to_string())
    else {
        return 0;
    };
    let tokens = tokens_of_bytes(system.len());
    if tokens < 1024 {
        return 0;
    }
    let hash = fnv(system.as_bytes());
    let mut seen = s.seen_prefixes.lock().unwrap_or_else(|p| p.into_inner());
    if seen.insert(hash) {
        0
    } else {
        tokens / 128 * 128
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100000001b3)
    })
}

/// Text of a message's content (a string or a list of blocks).
fn content_text(c: Option<&Value>) -> String {
    match c {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn last_user_text(req: &Value, shape: Shape) -> String {
    if shape == Shape::Legacy {
        return req
            .get("prompt")
            .map(|p| content_text(Some(p)))
            .unwrap_or_default();
    }
    req.get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default()
}

/// The first offered tool: its name and parameter schema.
fn offered_tool(req: &Value, shape: Shape) -> Option<(String, Value)> {
    let t = req.get("tools")?.as_array()?.first()?;
    let (name, schema) = match shape {
        Shape::Messages => (t.get("name")?, t.get("input_schema")),
        _ => {
            let f = t.get("function")?;
            (f.get("name")?, f.get("parameters"))
        }
    };
    Some((
        name.as_str()?.to_string(),
        schema.cloned().unwrap_or(json!({})),
    ))
}

/// An agent's first turn is answered with a tool call; after a tool result, with text.
fn wants_tool(req: &Value, shape: Shape) -> bool {
    let Some(last) = req
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
    else {
        return false;
    };
    match shape {
        Shape::Messages => !last
            .get("content")
            .and_then(Value::as_array)
            .is_some_and(|b| {
                b.iter()
                    .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            }),
        _ => last.get("role").and_then(Value::as_str) == Some("user"),
    }
}

/// Arguments that satisfy the schema's required string properties.
fn arguments_for(schema: &Value, ask: &str) -> Value {
    let mut args = serde_json::Map::new();
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for name in required.iter().filter_map(Value::as_str) {
        let value = match name {
            "path" | "file_path" => {
                if ask.to_lowercase().contains("migration") {
                    "db/migrations"
                } else {
                    "src/services/billing/mod.rs"
                }
            }
            "command" => "git ls-files | head -50",
            "regex" | "pattern" | "query" => "BillingService",
            _ => "",
        };
        args.insert(name.to_string(), Value::String(value.to_string()));
    }
    Value::Object(args)
}

/// The tool call as Qwen writes it in text, or the answer's text.
fn render(a: &Answer, tool_calls_as_text: bool) -> String {
    match a {
        Answer::Text(t) => t.clone(),
        Answer::Tool { name, arguments } => {
            let call = json!({"name": name, "arguments": arguments}).to_string();
            if tool_calls_as_text {
                format!("<tool_call>\n{call}\n</tool_call>")
            } else {
                arguments.to_string()
            }
        }
    }
}

/// A plausible answer for the ask, about as long as such answers are.
fn compose(ask: &str, completion: bool, max_tokens: u64) -> String {
    let a = ask.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| a.contains(w));
    let (body, tokens) = if completion {
        (FIM_ANSWER, 24 + fastrand::u64(..40))
    } else if has(&[
        "service",
        "migrat",
        "architect",
        "monolith",
        "schema",
        "design",
        "multi-tenant",
        "event",
        "repository",
        "across",
        "modules",
        "kafka",
        "grpc",
    ]) {
        (ARCHITECTURE_ANSWER, 550 + fastrand::u64(..450))
    } else if has(&["canvas", "animation", "html"]) {
        (CANVAS_ANSWER, 260 + fastrand::u64(..180))
    } else if has(&["regex", "regular expression", "pattern"]) {
        (REGEX_ANSWER, 90 + fastrand::u64(..90))
    } else {
        (FUNCTION_ANSWER, 140 + fastrand::u64(..160))
    };
    let target = (tokens.min(max_tokens) * 4) as usize;
    let mut out = String::with_capacity(target + 64);
    let mut part = 1;
    while out.len() < target {
        if part > 1 {
            out.push_str(&format!("\n\n// part {part}\n"));
        }
        out.push_str(body);
        part += 1;
    }
    let mut end = target.min(out.len());
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    out
}

const FIM_ANSWER: &str = "if (items.length === 0) {\n    return null;\n  }\n  const sorted = [...items].sort((a, b) => a.score - b.score);\n  return sorted[Math.floor(sorted.length / 2)];\n";

const FUNCTION_ANSWER: &str = "Here is a small, tested implementation:\n\n```python\nfrom collections import OrderedDict\n\n\nclass LRUCache:\n    \"\"\"A fixed-size cache that evicts the least recently used key.\"\"\"\n\n    def __init__(self, capacity: int) -> None:\n        if capacity <= 0:\n            raise ValueError(\"capacity must be positive\")\n        self.capacity = capacity\n        self._data: OrderedDict = OrderedDict()\n\n    def get(self, key):\n        if key not in self._data:\n            return None\n        self._data.move_to_end(key)\n        return self._data[key]\n\n    def put(self, key, value) -> None:\n        self._data[key] = value\n        self._data.move_to_end(key)\n        if len(self._data) > self.capacity:\n            self._data.popitem(last=False)\n```\n\nBoth operations are O(1); `move_to_end` keeps the order of use.";

const REGEX_ANSWER: &str = "Use this pattern:\n\n```\n^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-([0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*))?(?:\\+([0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*))?$\n```\n\nThe three numeric groups reject leading zeros; group 4 is the pre-release, group 5 the build metadata.";

const CANVAS_ANSWER: &str = "```html\n<!doctype html>\n<html>\n<body style=\"margin:0;background:#111\">\n<canvas id=\"c\"></canvas>\n<script>\nconst c = document.getElementById('c');\nconst ctx = c.getContext('2d');\nfunction resize() { c.width = innerWidth; c.height = innerHeight; }\naddEventListener('resize', resize); resize();\nconst balls = Array.from({ length: 40 }, () => ({\n  x: Math.random() * c.width, y: Math.random() * c.height,\n  vx: (Math.random() - 0.5) * 6, vy: (Math.random() - 0.5) * 6,\n  r: 6 + Math.random() * 14, hue: Math.random() * 360,\n}));\nfunction frame() {\n  ctx.fillStyle = 'rgba(17,17,17,0.25)';\n  ctx.fillRect(0, 0, c.width, c.height);\n  for (const b of balls) {\n    b.x += b.vx; b.y += b.vy;\n    if (b.x < b.r || b.x > c.width - b.r) b.vx *= -1;\n    if (b.y < b.r || b.y > c.height - b.r) b.vy *= -1;\n    ctx.beginPath();\n    ctx.arc(b.x, b.y, b.r, 0, Math.PI * 2);\n    ctx.fillStyle = `hsl(${b.hue}, 80%, 60%)`;\n    ctx.fill();\n  }\n  requestAnimationFrame(frame);\n}\nframe();\n</script>\n</body>\n</html>\n```";

const ARCHITECTURE_ANSWER: &str = "## Plan\n\n1. **Draw the boundary.** List every table the billing code reads and writes; anything shared with orders becomes an API call or an event, never a join.\n2. **Strangle, do not rewrite.** Put a `BillingClient` interface in front of the current module; the monolith calls the interface, first in process, then over gRPC.\n3. **Move the data.** Create the new schema, dual-write from the monolith behind a flag, backfill in batches of 10k rows, and compare checksums nightly until they match for a week.\n4. **Switch reads, then writes.** Reads go to the service first; writes follow once the outbox shows no lag over 5 s at peak.\n5. **Events.** Publish `InvoiceIssued` and `PaymentSettled` through a transactional outbox; consumers must be idempotent on the event id.\n\n## Risks\n\n- Distributed transactions: replace them with sagas and compensating actions.\n- Latency: the extra hop adds 2-5 ms; cache customer plans for 60 s.\n- Rollback: keep the in-process path until the new service has run a full billing cycle.\n\n## Files to change\n\n- `billing/service.py`, `billing/models.py`, `orders/checkout.py`\n- `deploy/billing.yaml`, `migrations/0042_billing_split.sql`";

struct UsageOut {
    prompt: u64,
    completion: u64,
    cached: u64,
}

impl UsageOut {
    fn openai(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached},
        })
    }

    /// Anthropic counts cached prompt tokens apart from `input_tokens`.
    fn anthropic(&self, output: u64) -> Value {
        json!({
            "input_tokens": self.prompt - self.cached,
            "cache_read_input_tokens": self.cached,
            "cache_creation_input_tokens": 0,
            "output_tokens": output,
        })
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn chat_body(
    id: &str,
    model: &str,
    answer: &Answer,
    text: &str,
    usage: &UsageOut,
    as_text: bool,
) -> Value {
    let (message, finish) = match answer {
        Answer::Tool { name, .. } if !as_text => (
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": format!("call_{id}"), "type": "function",
                "function": {"name": name, "arguments": text}}]}),
            "tool_calls",
        ),
        _ => (json!({"role": "assistant", "content": text}), "stop"),
    };
    json!({
        "id": format!("chatcmpl-{id}"), "object": "chat.completion", "created": now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage.openai(),
    })
}

fn legacy_body(id: &str, model: &str, text: &str, usage: &UsageOut) -> Value {
    json!({
        "id": format!("cmpl-{id}"), "object": "text_completion", "created": now(),
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": null}],
        "usage": usage.openai(),
    })
}

fn messages_body(id: &str, model: &str, answer: &Answer, text: &str, usage: &UsageOut) -> Value {
    let (content, stop) = match answer {
        Answer::Tool { name, arguments } => (
            json!([{"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": arguments}]),
            "tool_use",
        ),
        Answer::Text(_) => (json!([{"type": "text", "text": text}]), "end_turn"),
    };
    json!({
        "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": usage.anthropic(usage.completion),
    })
}

/// One server-sent event and the output tokens generated before it is sent.
struct Event {
    text: String,
    tokens: u64,
}

fn data(v: &Value, tokens: u64) -> Event {
    Event {
        text: format!("data: {v}\n\n"),
        tokens,
    }
}

fn named(name: &str, v: &Value, tokens: u64) -> Event {
    Event {
        text: format!("event: {name}\ndata: {v}\n\n"),
        tokens,
    }
}

/// The text in pieces of about `tokens_per_piece` tokens, cut on char boundaries.
fn pieces(text: &str, tokens_per_piece: usize) -> Vec<(&str, u64)> {
    let size = tokens_per_piece * 4;
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push((&text[start..end], tokens_of_bytes(end - start)));
        start = end;
    }
    out
}

const TOKENS_PER_EVENT: usize = 6;

fn chat_events(
    id: &str,
    model: &str,
    answer: &Answer,
    text: &str,
    usage: &UsageOut,
    include_usage: bool,
    as_text: bool,
) -> Vec<Event> {
    let created = now();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion.chunk", "created": created,
               "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut out = vec![data(
        &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        0,
    )];
    let finish = match answer {
        Answer::Tool { name, .. } if !as_text => {
            out.push(data(
                &chunk(
                    json!({"tool_calls": [{"index": 0, "id": format!("call_{id}"), "type": "function",
                                            "function": {"name": name, "arguments": ""}}]}),
                    Value::Null,
                ),
                1,
            ));
            for (p, t) in pieces(text, TOKENS_PER_EVENT) {
                let d = json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]});
                out.push(data(&chunk(d, Value::Null), t));
            }
            "tool_calls"
        }
        _ => {
            for (p, t) in pieces(text, TOKENS_PER_EVENT) {
                out.push(data(&chunk(json!({"content": p}), Value::Null), t));
            }
            "stop"
        }
    };
    out.push(data(&chunk(json!({}), json!(finish)), 0));
    if include_usage {
        let u = json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion.chunk",
                       "created": created, "model": model, "choices": [], "usage": usage.openai()});
        out.push(data(&u, 0));
    }
    out.push(Event {
        text: "data: [DONE]\n\n".into(),
        tokens: 0,
    });
    out
}

fn legacy_events(
    id: &str,
    model: &str,
    text: &str,
    usage: &UsageOut,
    include_usage: bool,
) -> Vec<Event> {
    let created = now();
    let chunk = |t: &str, finish: Value| {
        json!({"id": format!("cmpl-{id}"), "object": "text_completion", "created": created,
               "model": model, "choices": [{"index": 0, "text": t, "finish_reason": finish, "logprobs": null}]})
    };
    let mut out: Vec<Event> = pieces(text, TOKENS_PER_EVENT)
        .into_iter()
        .map(|(p, t)| data(&chunk(p, Value::Null), t))
        .collect();
    out.push(data(&chunk("", json!("stop")), 0));
    if include_usage {
        let u = json!({"id": format!("cmpl-{id}"), "object": "text_completion", "created": created,
                       "model": model, "choices": [], "usage": usage.openai()});
        out.push(data(&u, 0));
    }
    out.push(Event {
        text: "data: [DONE]\n\n".into(),
        tokens: 0,
    });
    out
}

fn messages_events(
    id: &str,
    model: &str,
    answer: &Answer,
    text: &str,
    usage: &UsageOut,
) -> Vec<Event> {
    let start = json!({"type": "message_start", "message": {
        "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage.anthropic(1)}});
    let mut out = vec![named("message_start", &start, 0)];
    let (block, delta_kind, field, stop) = match answer {
        Answer::Tool { name, .. } => (
            json!({"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": {}}),
            "input_json_delta",
            "partial_json",
            "tool_use",
        ),
        Answer::Text(_) => (
            json!({"type": "text", "text": ""}),
            "text_delta",
            "text",
            "end_turn",
        ),
    };
    out.push(named(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0, "content_block": block}),
        0,
    ));
    out.push(named("ping", &json!({"type": "ping"}), 0));
    for (p, t) in pieces(text, TOKENS_PER_EVENT) {
        let d = json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": delta_kind, field: p}});
        out.push(named("content_block_delta", &d, t));
    }
    out.push(named(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
        0,
    ));
    out.push(named(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": {"output_tokens": usage.completion}}),
        0,
    ));
    out.push(named("message_stop", &json!({"type": "message_stop"}), 0));
    out
}

fn whole(status: u16, v: Value) -> Response<SimBody> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(p: &Profile, status: u16, kind: &str, message: &str) -> Response<SimBody> {
    let body = match p.wire {
        Wire::OpenAi => {
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        Wire::Anthropic => {
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    };
    whole(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_text_and_count_its_tokens() {
        let text = "héllo wörld, this is a stream of text";
        let p = pieces(text, 2);
        assert_eq!(p.iter().map(|(s, _)| *s).collect::<String>(), text);
        assert!(
            p.iter()
                .all(|(s, _)| s.len() >= 8 || std::ptr::eq(*s, p.last().unwrap().0))
        );
        let tokens: u64 = p.iter().map(|(_, t)| t).sum();
        assert!(tokens >= tokens_of_bytes(text.len()));
    }

    #[test]
    fn answers_fit_the_ask_and_max_tokens() {
        let arch = compose("Split the billing module into a service", false, u64::MAX);
        assert!(arch.starts_with("## Plan") && arch.len() >= 550 * 4);
        let canvas = compose("a canvas animation", false, 100);
        assert!(canvas.starts_with("```html") && canvas.len() == 400);
    }

    #[test]
    fn agent_first_turns_get_a_tool_call_with_the_required_arguments() {
        let req = json!({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "look"}],
            "tools": [{"type": "function", "function": {"name": "read_file",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]});
        let (name, schema) = offered_tool(&req, Shape::Chat).unwrap();
        assert_eq!(name, "read_file");
        assert!(wants_tool(&req, Shape::Chat));
        let args = arguments_for(&schema, "look");
        assert!(args["path"].as_str().unwrap().starts_with("src/"));
        let qwen = render(
            &Answer::Tool {
                name,
                arguments: args,
            },
            true,
        );
        assert!(
            qwen.starts_with("<tool_call>\n{") && qwen.ends_with("}\n</tool_call>"),
            "{qwen}"
        );
        assert!(qwen.contains("\"name\":\"read_file\""), "{qwen}");
        let after = json!({"messages": [{"role": "user", "content": "look"},
            {"role": "assistant", "content": null}, {"role": "tool", "content": "fn main() {}"}]});
        assert!(!wants_tool(&after, Shape::Chat));
    }

    #[tokio::test]
    async fn frontier_simulators_want_a_key_and_report_usage() {
        let sim = Simulator::start(Profile::anthropic()).await.unwrap();
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Full<Bytes>>();
        let send = |key: Option<&str>| {
            let mut b = Request::post(format!("{}/v1/messages", sim.base_url()))
                .header("anthropic-version", "2023-06-01")
                .header("content-type", "application/json");
            if let Some(k) = key {
                b = b.header("x-api-key", k);
            }
            let body = json!({"model": "m", "max_tokens": 50,
                "messages": [{"role": "user", "content": "write a regex for semver"}]});
            client.request(b.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        };
        assert_eq!(send(None).await.unwrap().status(), 401);
        let r = send(Some("k")).await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value =
            serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(v["type"], "message");
        let out = v["usage"]["output_tokens"].as_u64().unwrap();
        assert!((1..=50).contains(&out), "{v}");
        assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
        assert_eq!(sim.served(), 1);
    }
}
