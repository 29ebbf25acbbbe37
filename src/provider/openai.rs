//! OpenAI-compatible upstreams (OpenAI, and the local servers: vLLM, llama.cpp, Ollama,
//! SGLang): Bearer authentication; chat and legacy completions natively; the Responses API
//! natively where the upstream speaks it (api.openai.com, or `responses_api: true`), else
//! through chat; Anthropic Messages through chat; token counts estimated by tiergate.

use bytes::Bytes;
use http::HeaderName;

use super::{Adapter, ClientRequest, Outgoing, Reply, StreamWay, Translations, Uris, Way, uri};
use crate::config::Upstream;
use crate::protocol::Format;
use crate::protocol::openai::{PromptDetails, Usage, rewrite_body, usage_of_body};
use crate::protocol::openai_chat::ChatCompletion;
use crate::translate::errors;
use crate::translate::messages_via_openai::{self, stream::MessagesFromOpenAi};
use crate::translate::responses::passthrough::{ResponsesPassthrough, usage_of_response};
use crate::translate::responses::response;
use crate::translate::responses::stream::ResponsesFromChat;

/// Whether `up` speaks the Responses API: as its policy says, else when it is OpenAI's own.
pub fn speaks_responses(up: &Upstream) -> bool {
    up.responses_api.unwrap_or_else(|| {
        up.base_url
            .parse::<http::Uri>()
            .is_ok_and(|u| u.host() == Some("api.openai.com"))
    })
}

pub fn way(format: Format, up: &Upstream) -> Way {
    match format {
        Format::Chat | Format::Completions => Way::Native,
        Format::Responses if speaks_responses(up) => Way::Native,
        Format::Responses | Format::Messages => Way::ViaChat,
        Format::CountTokens => Way::Estimate,
    }
}

/// The base URL ends in `/v1` (or the server's own prefix).
pub fn uris(up: &Upstream) -> Result<Uris, String> {
    Ok(Uris {
        chat: uri(up, "/chat/completions")?,
        completions: uri(up, "/completions")?,
        responses: uri(up, "/responses")?,
        messages: uri(up, "/messages")?,
        count_tokens: uri(up, "/messages/count_tokens")?,
    })
}

pub fn auth(key: &str) -> (HeaderName, String) {
    (http::header::AUTHORIZATION, format!("Bearer {key}"))
}

pub fn outgoing(
    up: &Upstream,
    uris: &Uris,
    way: Way,
    req: &ClientRequest<'_>,
    t: &Translations,
) -> Option<Outgoing> {
    match way {
        Way::Native => {
            let force = req.force_usage && matches!(req.format, Format::Chat | Format::Completions);
            Some(Outgoing {
                uri: uris.native(req.format).clone(),
                body: rewrite_body(req.body, req.head, &up.model, force),
                headers: Vec::new(),
            })
        }
        Way::ViaChat => Some(Outgoing {
            uri: uris.chat.clone(),
            body: super::with_model(t.chat.as_ref()?, &up.model),
            headers: Vec::new(),
        }),
        Way::ViaMessages | Way::Estimate | Way::Unserved => None,
    }
}

pub fn adapter(way: Way, reply: Reply) -> Adapter {
    match (way, reply.format) {
        (Way::Native, Format::Responses) => Adapter {
            stream: StreamWay::Translated(Box::new(ResponsesPassthrough::new())),
            whole: Box::new(|b| {
                let usage = usage_of_response(&b);
                Ok((b, usage))
            }),
            error: errors::unchanged,
            native: true,
            bills: true,
        },
        (Way::ViaChat, Format::Messages) => Adapter {
            stream: StreamWay::Translated(Box::new(MessagesFromOpenAi::new())),
            whole: Box::new(|b| {
                let resp: ChatCompletion = serde_json::from_slice(&b).map_err(|e| e.to_string())?;
                let usage = resp.usage.map(|u| Usage {
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                    prompt_tokens_details: Some(PromptDetails {
                        cached_tokens: Some(u.cached()),
                    }),
                });
                let out = messages_via_openai::response::translate(resp);
                Ok((to_bytes(&out)?, usage))
            }),
            error: errors::openai_to_anthropic,
            native: false,
            bills: true,
        },
        (Way::ViaChat, Format::Responses) => {
            let env = reply.envelope.unwrap_or_else(|| {
                response::Envelope::new(fastrand::u64(..), super::now_secs(), "", Vec::new())
            });
            Adapter {
                stream: StreamWay::Translated(Box::new(ResponsesFromChat::new(env.clone()))),
                whole: Box::new(move |b| {
                    let resp: ChatCompletion =
                        serde_json::from_slice(&b).map_err(|e| e.to_string())?;
                    let (out, usage) = response::translate(resp, &env);
                    Ok((to_bytes(&out)?, usage))
                }),
                error: errors::unchanged,
                native: false,
                bills: true,
            }
        }
        // Chat and legacy completions in their own format.
        _ => Adapter {
            stream: StreamWay::Chat {
                strip_usage: reply.forced_usage,
            },
            whole: Box::new(|b| {
                let usage = usage_of_body(&b);
                Ok((b, usage))
            }),
            error: errors::unchanged,
            native: true,
            bills: true,
        },
    }
}

pub(super) fn to_bytes(v: &impl serde::Serialize) -> Result<Bytes, String> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}
