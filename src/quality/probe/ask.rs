//! One probe task sent to one upstream as a plain non-streamed chat request (translated for
//! Anthropic upstreams), over the upstream's own pooled client; the answer comes back as an
//! OpenAI chat completion body.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::config::{Upstream, UpstreamKind};
use crate::protocol::anthropic::{API_VERSION, MessagesResponse};
use crate::protocol::openai::Usage;
use crate::protocol::openai_chat::ChatRequest;
use crate::translate::chat_via_anthropic::{request, response};
use crate::upstream::UpstreamRuntime;

pub struct Reply {
    /// An OpenAI chat completion.
    pub body: Vec<u8>,
    pub latency: Duration,
    pub usage: Usage,
}

/// The message of an upstream's error body, else its first bytes.
fn error_text(status: u16, body: &[u8]) -> String {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let msg = v
        .as_ref()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.get("message")))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    format!("status {status}: {msg}")
}

pub async fn ask(
    up: &Upstream,
    rt: &UpstreamRuntime,
    prompt: &str,
    max_tokens: u64,
) -> Result<Reply, String> {
    let chat = json!({
        "model": up.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": false,
    });
    send(up, rt, chat).await
}

/// Sends a non-streamed chat request body (its `model` and `stream` set here) to `up`.
pub async fn send(up: &Upstream, rt: &UpstreamRuntime, mut chat: Value) -> Result<Reply, String> {
    if let Some(o) = chat.as_object_mut() {
        o.insert("model".into(), Value::from(up.model.as_str()));
        o.insert("stream".into(), Value::Bool(false));
        o.remove("stream_options");
    }
    let max_tokens = chat
        .get("max_tokens")
        .or_else(|| chat.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(up.default_max_tokens);
    let (uri, body) = match up.kind {
        UpstreamKind::Openai => (rt.uris.chat.clone(), chat.to_string()),
        UpstreamKind::Anthropic => {
            let req: ChatRequest = serde_json::from_value(chat).map_err(|e| e.to_string())?;
            let mut m = request::translate(req).map_err(|e| e.message)?;
            m.model = up.model.clone();
            m.max_tokens = Some(max_tokens);
            (
                rt.uris.messages.clone(),
                serde_json::to_string(&m).map_err(|e| e.to_string())?,
            )
        }
    };
    let mut req = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    if up.kind == UpstreamKind::Anthropic {
        req.headers_mut().insert(
            "anthropic-version",
            http::HeaderValue::from_static(API_VERSION),
        );
    }
    if let Some((name, value)) = &rt.auth {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    let started = Instant::now();
    let call = async {
        let resp = rt
            .client
            .request(req)
            .await
            .map_err(|e| format!("cannot reach {}: {e}", up.name))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{}: the answer broke off: {e}", up.name))?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(up.timeouts.total, call)
        .await
        .map_err(|_| format!("{}: no answer within {:?}", up.name, up.timeouts.total))??;
    let latency = started.elapsed();
    if !(200..300).contains(&status) {
        return Err(error_text(status, &bytes));
    }
    let body = match up.kind {
        UpstreamKind::Openai if up.repair => {
            crate::local::fix_body(status, &bytes, &up.model, None).body
        }
        UpstreamKind::Openai => bytes.to_vec(),
        UpstreamKind::Anthropic => {
            let m: MessagesResponse =
                serde_json::from_slice(&bytes).map_err(|e| format!("unreadable answer: {e}"))?;
            let created = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            serde_json::to_vec(&response::translate(m, created)).map_err(|e| e.to_string())?
        }
    };
    let usage = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("usage").cloned())
        .and_then(|u| serde_json::from_value::<Usage>(u).ok())
        .unwrap_or_default();
    Ok(Reply {
        body,
        latency,
        usage,
    })
}
