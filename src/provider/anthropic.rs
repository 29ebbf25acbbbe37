//! Anthropic upstreams: `x-api-key` authentication; Messages and count_tokens natively (the
//! client's `anthropic-version` and `anthropic-beta` go along); chat completions and the
//! Responses API translated to Messages (with `anthropic-version` and the allowed betas).
//! Legacy completions are not served.

use http::{HeaderName, HeaderValue};

use super::openai::to_bytes;
use super::{Adapter, ClientRequest, Outgoing, Reply, StreamWay, Translations, Uris, Way, uri};
use crate::config::Upstream;
use crate::protocol::Format;
use crate::protocol::anthropic::{API_VERSION, MessagesResponse};
use crate::protocol::openai::rewrite_body;
use crate::translate::anthropic_passthrough::AnthropicPassthrough;
use crate::translate::chat_via_anthropic::{self, stream::ChatFromAnthropic};
use crate::translate::errors;
use crate::translate::responses::chain::Chain;
use crate::translate::responses::response;
use crate::translate::responses::stream::ResponsesFromChat;

pub const VERSION: HeaderName = HeaderName::from_static("anthropic-version");
pub const BETA: HeaderName = HeaderName::from_static("anthropic-beta");

pub fn way(format: Format) -> Way {
    match format {
        Format::Messages | Format::CountTokens => Way::Native,
        Format::Chat | Format::Responses => Way::ViaMessages,
        Format::Completions => Way::Unserved,
    }
}

/// The base URL may or may not end in `/v1`.
pub fn uris(up: &Upstream) -> Result<Uris, String> {
    let v1 = if up.base_url.ends_with("/v1") {
        ""
    } else {
        "/v1"
    };
    let messages = uri(up, &format!("{v1}/messages"))?;
    Ok(Uris {
        chat: messages.clone(),
        completions: messages.clone(),
        responses: messages.clone(),
        count_tokens: uri(up, &format!("{v1}/messages/count_tokens"))?,
        messages,
    })
}

pub fn auth(key: &str) -> (HeaderName, String) {
    (HeaderName::from_static("x-api-key"), key.to_string())
}

pub fn outgoing(
    up: &Upstream,
    uris: &Uris,
    way: Way,
    req: &ClientRequest<'_>,
    t: &Translations,
) -> Option<Outgoing> {
    match way {
        Way::Native => Some(Outgoing {
            uri: uris.native(req.format).clone(),
            body: rewrite_body(req.body, req.head, &up.model, false),
            headers: req.anthropic_headers.to_vec(),
        }),
        Way::ViaMessages => {
            let mut m = t.messages.clone()?;
            m.model = up.model.clone();
            m.max_tokens.get_or_insert(up.default_max_tokens);
            let mut headers = vec![(VERSION, HeaderValue::from_static(API_VERSION))];
            headers.extend(
                req.betas
                    .and_then(|b| HeaderValue::from_str(b).ok())
                    .map(|v| (BETA, v)),
            );
            Some(Outgoing {
                uri: uris.messages.clone(),
                body: to_bytes(&m).ok()?,
                headers,
            })
        }
        Way::ViaChat | Way::Estimate | Way::Unserved => None,
    }
}

pub fn adapter(way: Way, reply: Reply) -> Adapter {
    match (way, reply.format) {
        (Way::ViaMessages, Format::Responses) => {
            let env = reply.envelope.unwrap_or_else(|| {
                response::Envelope::new(fastrand::u64(..), super::now_secs(), "", Vec::new())
            });
            Adapter {
                stream: StreamWay::Translated(Box::new(Chain::new(
                    Box::new(ChatFromAnthropic::new(env.created_at, true)),
                    Box::new(ResponsesFromChat::new(env.clone())),
                ))),
                whole: Box::new(move |b| {
                    let resp: MessagesResponse =
                        serde_json::from_slice(&b).map_err(|e| e.to_string())?;
                    let usage = resp.usage.to_openai();
                    let chat = chat_via_anthropic::response::translate(resp, env.created_at);
                    let (out, _) = response::translate(chat, &env);
                    Ok((to_bytes(&out)?, Some(usage)))
                }),
                error: errors::anthropic_to_openai,
                native: false,
                bills: true,
            }
        }
        (Way::ViaMessages, _) => Adapter {
            stream: StreamWay::Translated(Box::new(ChatFromAnthropic::new(
                super::now_secs(),
                reply.wants_usage,
            ))),
            whole: Box::new(|b| {
                let resp: MessagesResponse =
                    serde_json::from_slice(&b).map_err(|e| e.to_string())?;
                let usage = resp.usage.to_openai();
                let out = chat_via_anthropic::response::translate(resp, super::now_secs());
                Ok((to_bytes(&out)?, Some(usage)))
            }),
            error: errors::anthropic_to_openai,
            native: false,
            bills: true,
        },
        // Messages and count_tokens in their own format.
        (_, format) => Adapter {
            stream: StreamWay::Translated(Box::new(AnthropicPassthrough::new())),
            whole: Box::new(|b| {
                let usage = serde_json::from_slice::<MessagesResponse>(&b)
                    .ok()
                    .map(|r| r.usage.to_openai());
                Ok((b, usage))
            }),
            error: errors::unchanged,
            native: true,
            bills: format != Format::CountTokens,
        },
    }
}
