//! Simulated upstreams on 127.0.0.1 that behave like the real ones on the wire: an
//! OpenAI-compatible local Qwen server (free, slower per stream as more streams share the
//! GPU, writes tool calls as text the way Qwen does) and frontier APIs (OpenAI chat
//! completions, Anthropic Messages: a time to first token of a few hundred milliseconds,
//! prompt caching on OpenAI). All of them stream and report usage.
//!
//! Token rates are about four times those of the real services so that a demo run is short;
//! the proportions (who is faster, who slows under load) are kept.
//!
//! `answer` writes what a simulated model says; `wire` puts it in each API's bodies and
//! events.

mod answer;
mod wire;

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

type SimBody = BoxBody<Bytes, Infallible>;

use answer::*;
use wire::*;

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
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

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
