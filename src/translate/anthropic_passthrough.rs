//! An Anthropic stream passed to an Anthropic client unchanged; only its usage is read, from
//! `message_start` (input and cache counts) and `message_delta` (cumulative counts), so the
//! ledger records what the upstream reported. Other events are not parsed at all.

use crate::protocol::anthropic::{StreamEvent, Usage};
use crate::protocol::sse::{data_of, event_name};
use crate::translate::StreamTranslator;

pub struct AnthropicPassthrough {
    usage: Option<Usage>,
    /// `message_stop` (or an `error` event) came: the stream ended as Anthropic ends one.
    end: crate::translate::PassthroughEnd,
}

impl AnthropicPassthrough {
    pub fn new() -> Self {
        Self {
            usage: None,
            end: crate::translate::PassthroughEnd {
                ended: false,
                format: crate::protocol::Format::Messages,
            },
        }
    }
}

impl Default for AnthropicPassthrough {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamTranslator for AnthropicPassthrough {
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(event);
        match event_name(event) {
            Some("message_start" | "message_delta") => {}
            Some("message_stop" | "error") => {
                self.end.ended = true;
                return;
            }
            _ => return,
        }
        let Some(data) = data_of(event) else { return };
        match serde_json::from_slice::<StreamEvent>(&data) {
            Ok(StreamEvent::MessageStart { message }) => self.usage = Some(message.usage),
            Ok(StreamEvent::MessageDelta { usage, .. }) => {
                self.usage.get_or_insert_default().merge(&usage)
            }
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        self.end.finish(out)
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.end.fail(code, message, out);
    }

    fn usage(&self) -> Option<crate::protocol::openai::Usage> {
        self.usage.map(Usage::to_openai)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::testutil::run;

    #[test]
    fn bytes_pass_unchanged_and_usage_is_read() {
        let input = include_bytes!("../../tests/fixtures/anthropic/stream_tool_use.sse");
        let mut t = AnthropicPassthrough::new();
        let out = run(&mut t, input, &[7, 100, 1000]);
        assert_eq!(out, input.to_vec());
        let u = t.usage().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens()),
            (772, 89, 200)
        );
    }
}
