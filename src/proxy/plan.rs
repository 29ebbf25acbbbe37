//! Planning the upstreams of a decided request: which upstreams of the route may serve it,
//! in order, how each serves the client's format (`provider::Way`), and the translations
//! those ways need, made once. A request that cannot be translated for one way skips the
//! upstreams that need it when its route has another way to offer, and is refused (400)
//! when it has not.

use bytes::Bytes;

use crate::error::GatewayError;
use crate::protocol::Format;
use crate::protocol::anthropic::MessagesRequest;
use crate::protocol::openai_chat::ChatRequest;
use crate::provider::{self, Translations, Way};
use crate::routing::Decision;
use crate::translate::responses::request::{self as responses_request, ResponsesRequest};
use crate::translate::{Untranslatable, chat_via_anthropic, messages_via_openai};
use crate::upstream::Runtime;

/// The upstreams to try, in order, before any filtering by format.
pub fn candidates(rt: &Runtime, d: &Decision) -> Vec<usize> {
    match d.upstream {
        Some(u) if rt.policy.upstreams[u].is_enabled() => vec![u],
        Some(_) => Vec::new(),
        None => rt.policy.route(d.tier).collect(),
    }
}

pub struct Plan {
    /// The upstreams to try, in order, with the way each serves the request.
    pub order: Vec<(usize, Way)>,
    pub translations: Translations,
}

impl Plan {
    pub fn new(
        rt: &Runtime,
        decision: &Decision,
        format: Format,
        body: &[u8],
    ) -> Result<Plan, GatewayError> {
        let ups = &rt.policy.upstreams;
        let ways: Vec<(usize, Way)> = candidates(rt, decision)
            .into_iter()
            .map(|u| (u, provider::way(format, &ups[u])))
            .filter(|(_, w)| *w != Way::Unserved)
            .collect();
        let has = |w: Way| ways.iter().any(|&(_, x)| x == w);
        let translations = translate(format, body, has(Way::ViaChat), has(Way::ViaMessages))?;
        // An untranslatable request may still go the other ways.
        let t = &translations;
        let servable: Vec<(usize, Way)> =
            ways.iter().copied().filter(|&(_, w)| t.serves(w)).collect();
        if servable.is_empty()
            && let Some(e) = t.refusal.clone()
        {
            return Err(e.into());
        }
        Ok(Plan {
            order: servable,
            translations: translations.done,
        })
    }

    /// The upstreams that are sent the request (token counts of upstreams that cannot count
    /// are estimated, not sent).
    pub fn sent(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for &(u, w) in &self.order {
            if w == Way::Estimate {
                // The first that estimates ends the list: what comes after it is never asked.
                break;
            }
            out.push(u);
        }
        out
    }
}

struct Made {
    done: Translations,
    /// Why a translation was refused, when one was.
    refusal: Option<Untranslatable>,
}

impl std::ops::Deref for Made {
    type Target = Translations;
    fn deref(&self) -> &Translations {
        &self.done
    }
}

fn invalid_json(e: serde_json::Error) -> GatewayError {
    GatewayError::InvalidJson(e.to_string())
}

fn chat_bytes(chat: &impl serde::Serialize) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(chat)
        .map(Bytes::from)
        .map_err(|e| GatewayError::Internal(format!("cannot encode the chat translation: {e}")))
}

/// The translations of `body` the route needs: to chat (`via_chat`) and to Messages
/// (`via_messages`).
fn translate(
    format: Format,
    body: &[u8],
    via_chat: bool,
    via_messages: bool,
) -> Result<Made, GatewayError> {
    let mut made = Made {
        done: Translations::default(),
        refusal: None,
    };
    if !via_chat && !via_messages {
        return Ok(made);
    }
    match format {
        Format::Chat if via_messages => {
            let req: ChatRequest = serde_json::from_slice(body).map_err(invalid_json)?;
            match chat_via_anthropic::request::translate(req) {
                Ok(m) => made.done.messages = Some(m),
                Err(r) => made.refusal = Some(r),
            }
        }
        Format::Messages if via_chat => {
            let req: MessagesRequest = serde_json::from_slice(body).map_err(invalid_json)?;
            match messages_via_openai::request::translate(req) {
                Ok(chat) => made.done.chat = Some(chat_bytes(&chat)?),
                Err(r) => made.refusal = Some(r),
            }
        }
        Format::Responses => {
            let req: ResponsesRequest = serde_json::from_slice(body).map_err(invalid_json)?;
            let t = match responses_request::translate(req) {
                Ok(t) => t,
                Err(r) => {
                    made.refusal = Some(r);
                    return Ok(made);
                }
            };
            if via_messages {
                match chat_via_anthropic::request::translate(t.chat.clone()) {
                    Ok(m) => made.done.messages = Some(m),
                    Err(r) => made.refusal = Some(r),
                }
            }
            if via_chat {
                made.done.chat = Some(chat_bytes(&t.chat)?);
            }
            made.done.namespaces = t.namespaces;
        }
        _ => {}
    }
    Ok(made)
}
