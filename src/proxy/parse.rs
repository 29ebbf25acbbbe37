//! Reading and parsing a request in the client's wire format: the body within its limits,
//! the fields routing needs (borrowed, nothing copied), the conversation the classifier
//! reads, and the client headers that go on to Anthropic.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::config::schema::ServerConfig;
use crate::error::GatewayError;
use crate::protocol::Format;
use crate::protocol::anthropic::API_VERSION;
use crate::protocol::openai::RequestHead;
use crate::provider::anthropic::{BETA, VERSION};
use crate::routing::Conversation;
use crate::translate::chat_via_anthropic::request::allowed_betas;

/// Reads the whole request body, refusing more than `max_body_bytes` and a client slower
/// than `limits.body_read_timeout`.
pub async fn read_body(body: Incoming, server: &ServerConfig) -> Result<Bytes, GatewayError> {
    let (limit, within) = (server.max_body_bytes, server.limits.body_read_timeout);
    let Ok(read) = tokio::time::timeout(within, Limited::new(body, limit).collect()).await else {
        return Err(GatewayError::RequestTimeout(within));
    };
    match read {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::BodyTooLarge(limit))
        }
        Err(e) => Err(GatewayError::BodyRead(e.to_string())),
    }
}

/// What routing and the upstreams need of the client's headers, taken before the body is
/// read.
pub struct ClientHeaders {
    /// `x-tiergate-tier`.
    pub tier: Option<String>,
    /// `anthropic-version` (Anthropic's own when the client sent none) and `anthropic-beta`.
    pub anthropic: Vec<(HeaderName, HeaderValue)>,
    /// The `anthropic-beta` values a translated request may carry.
    pub betas: Option<String>,
}

impl ClientHeaders {
    pub fn of(format: Format, headers: &HeaderMap) -> Self {
        let mut anthropic = Vec::new();
        if matches!(format, Format::Messages | Format::CountTokens) {
            let version = headers
                .get(VERSION)
                .cloned()
                .unwrap_or(HeaderValue::from_static(API_VERSION));
            anthropic.push((VERSION, version));
            anthropic.extend(headers.get(BETA).map(|v| (BETA, v.clone())));
        }
        let betas = match format {
            Format::Chat => {
                allowed_betas(headers.get_all(BETA).iter().filter_map(|v| v.to_str().ok()))
            }
            _ => None,
        };
        ClientHeaders {
            tier: crate::http::header_tier(headers),
            anthropic,
            betas,
        }
    }
}

/// A request parsed in its format: the fields routing needs, borrowed from the body.
pub struct Parsed<'a> {
    pub format: Format,
    pub head: RequestHead<'a>,
    pub model: Cow<'a, str>,
}

impl<'a> Parsed<'a> {
    /// Parses `body` and checks the fields `format` requires.
    pub fn parse(format: Format, body: &'a [u8]) -> Result<Self, GatewayError> {
        // JSON is UTF-8, but the head parser skips the strings it does not read without
        // checking them: a stray byte would otherwise be forwarded (found by fuzzing).
        if let Err(e) = std::str::from_utf8(body) {
            return Err(GatewayError::InvalidJson(format!(
                "the body is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            )));
        }
        let head =
            RequestHead::parse(body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
        let model = head
            .model_name()
            .ok_or(GatewayError::MissingField("model"))?;
        let required = match format {
            Format::Chat | Format::Messages | Format::CountTokens => ("messages", head.messages),
            Format::Completions => ("prompt", head.prompt),
            Format::Responses => ("input", head.input),
        };
        if required.1.is_none() {
            return Err(GatewayError::MissingField(required.0));
        }
        Ok(Parsed {
            format,
            head,
            model,
        })
    }

    pub fn stream(&self) -> bool {
        self.head.is_stream()
    }

    /// Bytes of what the model reads, the same on every path: the raw JSON of the
    /// conversation fields (messages, system, instructions, input, prompt, suffix) and of
    /// the tools.
    pub fn prompt_bytes(&self) -> usize {
        let h = &self.head;
        [
            h.messages,
            h.system,
            h.instructions,
            h.input,
            h.prompt,
            h.suffix,
            h.tools,
        ]
        .iter()
        .flatten()
        .map(|r| r.get().len())
        .sum()
    }

    /// The conversation the classifier reads.
    pub fn conversation(&self) -> Result<Conversation<'a>, GatewayError> {
        let h = &self.head;
        let invalid = |param| {
            move |e: serde_json::Error| GatewayError::InvalidField {
                param,
                message: e.to_string(),
            }
        };
        match self.format {
            Format::Chat => Conversation::from_openai(field(h.messages, "messages")?, h.tools)
                .map_err(invalid("messages")),
            Format::Messages | Format::CountTokens => {
                Conversation::from_anthropic(h.system, field(h.messages, "messages")?, h.tools)
                    .map_err(invalid("messages"))
            }
            Format::Responses => {
                Conversation::from_responses(h.instructions, field(h.input, "input")?, h.tools)
                    .map_err(invalid("input"))
            }
            Format::Completions => {
                let prompt = h
                    .prompt
                    .map(|p| serde_json::from_str::<Cow<'a, str>>(p.get()));
                let prompt = match prompt {
                    Some(Ok(p)) => p,
                    // An array of prompts or token ids: classify on its raw text.
                    Some(Err(_)) => h.prompt.map_or("".into(), |p| p.get().into()),
                    None => "".into(),
                };
                let fim = h.suffix.is_some_and(|s| s.get() != "null");
                Ok(Conversation::from_prompt(prompt, fim))
            }
        }
    }
}

fn field<'a>(
    v: Option<&'a serde_json::value::RawValue>,
    name: &'static str,
) -> Result<&'a serde_json::value::RawValue, GatewayError> {
    v.ok_or(GatewayError::MissingField(name))
}
