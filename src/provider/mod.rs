//! How tiergate speaks to each kind of upstream: one adapter per provider, in its own file
//! (`openai`, `anthropic`), each with its authentication header, its URIs, the outgoing
//! request for every client format, and the adapter that turns its answer back into the
//! client's format. Adding a provider is one file here and one arm in each `match` below.
//!
//! Formats meet through chat completions: a provider serves a client format natively or
//! through a translation (`Way`), built once per request by the pipeline.

pub mod anthropic;
pub mod openai;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Uri};

use crate::config::{Upstream, UpstreamKind};
use crate::protocol::Format;
use crate::protocol::openai::Usage;
use crate::translate::StreamTranslator;
use crate::translate::errors::TranslatedError;

/// How an upstream serves a client format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// In the client's own format: the client's bytes, only `model` rewritten.
    Native,
    /// Translated to chat completions (OpenAI-compatible upstreams).
    ViaChat,
    /// Translated to Anthropic Messages.
    ViaMessages,
    /// Not sent at all: tiergate answers itself (token counts for upstreams that cannot).
    Estimate,
    /// This upstream cannot serve the format.
    Unserved,
}

pub fn way(format: Format, up: &Upstream) -> Way {
    match up.kind {
        UpstreamKind::Openai => openai::way(format, up),
        UpstreamKind::Anthropic => anthropic::way(format),
    }
}

/// The URIs of an upstream, by endpoint.
pub struct Uris {
    pub chat: Uri,
    pub completions: Uri,
    pub responses: Uri,
    pub messages: Uri,
    pub count_tokens: Uri,
}

impl Uris {
    pub fn of(up: &Upstream) -> Result<Uris, String> {
        match up.kind {
            UpstreamKind::Openai => openai::uris(up),
            UpstreamKind::Anthropic => anthropic::uris(up),
        }
    }

    /// The URI of `format`'s own endpoint.
    pub fn native(&self, format: Format) -> &Uri {
        match format {
            Format::Chat => &self.chat,
            Format::Completions => &self.completions,
            Format::Responses => &self.responses,
            Format::Messages => &self.messages,
            Format::CountTokens => &self.count_tokens,
        }
    }
}

/// `{base_url}{path}` as a URI.
fn uri(up: &Upstream, path: &str) -> Result<Uri, String> {
    format!("{}{path}", up.base_url)
        .parse()
        .map_err(|e| format!("upstream {}: bad URL: {e}", up.name))
}

/// The header that authenticates to `up` (marked sensitive, so it is never logged), if it
/// has a key.
pub fn auth(up: &Upstream) -> Result<Option<(HeaderName, HeaderValue)>, String> {
    if up.api_key.is_empty() {
        return Ok(None);
    }
    let (name, value) = match up.kind {
        UpstreamKind::Openai => openai::auth(up.api_key.expose()),
        UpstreamKind::Anthropic => anthropic::auth(up.api_key.expose()),
    };
    let mut value = HeaderValue::from_str(&value).map_err(|_| {
        format!(
            "upstream {}: the API key has characters not allowed in a header",
            up.name
        )
    })?;
    value.set_sensitive(true);
    Ok(Some((name, value)))
}

/// One attempt's request: where it goes, its body, and the headers of its wire format
/// (authentication is added by the forwarder).
pub struct Outgoing {
    pub uri: Uri,
    pub body: Bytes,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Reads a whole successful upstream body: the client's body and the usage it reports.
/// Boxed so that a translation may carry request state (the Responses envelope).
pub type WholeFn = Box<dyn FnOnce(Bytes) -> Result<(Bytes, Option<Usage>), String> + Send>;

/// How a streamed success reaches the client.
pub enum StreamWay {
    /// A chat-completions stream in the client's own format, metered as it passes;
    /// `strip_usage` when tiergate asked for the usage chunk and the client did not.
    Chat { strip_usage: bool },
    /// Events rewritten (or only read) by a translator.
    Translated(Box<dyn StreamTranslator>),
}

/// How to turn one upstream answer into the client's.
pub struct Adapter {
    pub stream: StreamWay,
    pub whole: WholeFn,
    /// For an error status: the client's status, body and whether to retry.
    pub error: fn(u16, &[u8]) -> TranslatedError,
    /// The answer is in the client's format already: the provider's own headers go along.
    pub native: bool,
    /// Whether the answer is generated text that bills (token counts do not).
    pub bills: bool,
}

/// What the adapters need to know of the client's request.
pub struct Reply {
    pub format: Format,
    /// The client asked for the usage chunk of a chat stream.
    pub wants_usage: bool,
    /// tiergate asked for it on the client's behalf.
    pub forced_usage: bool,
    /// The Responses API's envelope (id, time, model, flattened tool namespaces).
    pub envelope: Option<crate::translate::responses::response::Envelope>,
}

/// The adapter for an answer of `up` served the `way` it was.
pub fn adapter(up: &Upstream, way: Way, reply: Reply) -> Adapter {
    match up.kind {
        UpstreamKind::Openai => openai::adapter(way, reply),
        UpstreamKind::Anthropic => anthropic::adapter(way, reply),
    }
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the client sent, as the outgoing requests need it.
pub struct ClientRequest<'a> {
    pub format: Format,
    pub body: &'a Bytes,
    pub head: &'a crate::protocol::openai::RequestHead<'a>,
    /// Ask for usage in a chat stream the client did not ask it for.
    pub force_usage: bool,
    /// The client's `anthropic-version` and `anthropic-beta`, passed on to Anthropic as sent.
    pub anthropic_headers: &'a [(HeaderName, HeaderValue)],
    /// The client's `anthropic-beta` values that may go along with a translated request.
    pub betas: Option<&'a str>,
}

/// The client's request in the other formats, translated once per request for the
/// upstreams of its route that need it.
#[derive(Default)]
pub struct Translations {
    /// A chat-completions body, written with an empty model.
    pub chat: Option<Bytes>,
    /// A Messages request, without model and maybe without `max_tokens`.
    pub messages: Option<crate::protocol::anthropic::MessagesRequest>,
    /// Tool namespaces the Responses translation flattened.
    pub namespaces: Vec<String>,
}

impl Translations {
    /// Whether what `way` needs is at hand.
    pub fn serves(&self, way: Way) -> bool {
        match way {
            Way::Native | Way::Estimate => true,
            Way::ViaChat => self.chat.is_some(),
            Way::ViaMessages => self.messages.is_some(),
            Way::Unserved => false,
        }
    }
}

/// One attempt's request to `up`, served the `way` given; None when the way is not one that
/// sends anything (or its translation is missing).
pub fn outgoing(
    up: &Upstream,
    uris: &Uris,
    way: Way,
    req: &ClientRequest<'_>,
    t: &Translations,
) -> Option<Outgoing> {
    match up.kind {
        UpstreamKind::Openai => openai::outgoing(up, uris, way, req, t),
        UpstreamKind::Anthropic => anthropic::outgoing(up, uris, way, req, t),
    }
}

/// A body written by tiergate with an empty model, given `model`.
fn with_model(body: &Bytes, model: &str) -> Bytes {
    use crate::protocol::openai::{RequestHead, rewrite_body};
    match RequestHead::parse(body) {
        Ok(head) => rewrite_body(body, &head, model, false),
        Err(_) => body.clone(),
    }
}
