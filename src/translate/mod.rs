//! Pure conversions between the OpenAI chat-completions format and the Anthropic Messages
//! format, whole bodies and streams. No I/O: the proxy feeds bytes in and sends bytes out.
//!
//! Two pairings, one folder each:
//! - `chat_via_anthropic`: an OpenAI chat request served by an Anthropic upstream
//!   (request out, response and stream back).
//! - `messages_via_openai`: an Anthropic `/v1/messages` request (Claude Code, the Anthropic
//!   SDKs) served by an OpenAI-compatible upstream (the local Qwen, OpenAI).
//! - `responses`: a Responses API request (Codex CLI) served by a chat-completions upstream,
//!   or by Anthropic through `chat_via_anthropic`.
//!
//! Plus `errors` (error bodies and statuses both ways) and `count_tokens` (an estimate for
//! upstreams that cannot count).
//!
//! What is translated is translated completely; what has no equivalent is either dropped on
//! purpose (listed in each module's doc) or refused as `Untranslatable`, which becomes a
//! 400 naming the field. Never half.

pub mod anthropic_passthrough;
pub mod chat_via_anthropic;
pub mod count_tokens;
pub mod errors;
pub mod messages_via_openai;
pub mod responses;

use crate::error::GatewayError;

/// A request that cannot be translated faithfully: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslatable {
    pub param: &'static str,
    pub message: String,
}

impl Untranslatable {
    pub fn new(param: &'static str, message: impl Into<String>) -> Self {
        Untranslatable {
            param,
            message: message.into(),
        }
    }
}

impl From<Untranslatable> for GatewayError {
    fn from(r: Untranslatable) -> Self {
        GatewayError::InvalidField {
            param: r.param,
            message: r.message,
        }
    }
}

/// A streaming translation: whole upstream SSE events in, the client's SSE bytes out.
pub trait StreamTranslator: Send {
    /// One complete upstream event (as cut by `SseSplitter`); appends what the client gets.
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>);
    /// The upstream ended; closes the client's stream properly, or with an error event when
    /// the upstream stopped short. True when the upstream's answer was whole.
    fn finish(&mut self, out: &mut Vec<u8>) -> bool;
    /// The upstream broke off (`code` and `message` say why): ends the client's stream with
    /// an error event in the client's format, unless it has ended already.
    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>);
    /// Usage in OpenAI terms, once the upstream reported it.
    fn usage(&self) -> Option<crate::protocol::openai::Usage>;
}

/// How a stream passed through in the client's own format ends: `ended` is whether its
/// final event came. One that did not ends with an error event in `format` (`fail`), so the
/// client never sees a cut stream.
pub(crate) struct PassthroughEnd {
    pub ended: bool,
    pub format: crate::protocol::Format,
}

impl PassthroughEnd {
    pub fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        let whole = self.ended;
        self.fail(
            "upstream_stream_truncated",
            "the upstream stream ended before the answer was complete",
            out,
        );
        whole
    }

    pub fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        if !self.ended {
            out.extend(self.format.stream_error(code, message));
            self.ended = true;
        }
    }
}

/// Parses a JSON object from tool-call `arguments`; an empty string is an empty object.
pub(crate) fn parse_arguments(args: &str) -> Result<serde_json::Value, serde_json::Error> {
    if args.trim().is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_str(args)
}

#[cfg(test)]
pub(crate) mod testutil {
    use bytes::Bytes;

    use super::StreamTranslator;
    use crate::protocol::sse::SseSplitter;

    /// Feeds `input` cut at `cuts` through a splitter and `t`, as the proxy does; returns the
    /// client's bytes.
    pub fn run(t: &mut dyn StreamTranslator, input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut splitter = SseSplitter::new();
        let mut out = Vec::new();
        let mut prev = 0;
        let mut events = Vec::new();
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            let c = c.clamp(prev, input.len());
            splitter.push(Bytes::copy_from_slice(&input[prev..c]), &mut events);
            prev = c;
            for e in events.drain(..) {
                t.event(&e, &mut out);
            }
        }
        // An unterminated last event is incomplete: the translator only learns the end.
        t.finish(&mut out);
        out
    }

    /// The JSON data of each SSE event in `bytes` (skipping `[DONE]`), with its event name.
    pub fn events(bytes: &[u8]) -> Vec<(Option<String>, serde_json::Value)> {
        let mut splitter = SseSplitter::new();
        let mut evs = Vec::new();
        splitter.push(Bytes::copy_from_slice(bytes), &mut evs);
        assert!(splitter.take_rest().is_none(), "output ends mid-event");
        evs.iter()
            .filter_map(|e| {
                let data = crate::protocol::sse::data_of(e)?;
                if data.as_ref() == b"[DONE]" {
                    return None;
                }
                let name = crate::protocol::sse::event_name(e).map(str::to_owned);
                Some((
                    name,
                    serde_json::from_slice(&data).expect("event data is JSON"),
                ))
            })
            .collect()
    }
}
