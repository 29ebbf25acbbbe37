//! A Responses API stream passed to the client unchanged (an upstream that speaks the
//! Responses API); only the usage is read, from `response.completed` / `incomplete` /
//! `failed`. Other events are not parsed at all.

use serde::Deserialize;

use crate::protocol::openai::{PromptDetails, Usage};
use crate::protocol::sse::data_of;
use crate::translate::StreamTranslator;

pub struct ResponsesPassthrough {
    usage: Option<Usage>,
    /// A final event came (`response.completed`, `incomplete` or `failed`).
    end: crate::translate::PassthroughEnd,
}

impl ResponsesPassthrough {
    pub fn new() -> Self {
        Self {
            usage: None,
            end: crate::translate::PassthroughEnd {
                ended: false,
                format: crate::protocol::Format::Responses,
            },
        }
    }
}

#[derive(Deserialize)]
struct ResponsesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<ResponsesUsage>,
}

#[derive(Deserialize)]
struct Final {
    response: WithUsage,
}

impl From<ResponsesUsage> for Usage {
    fn from(u: ResponsesUsage) -> Self {
        Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            prompt_tokens_details: Some(PromptDetails {
                cached_tokens: u.input_tokens_details.and_then(|d| d.cached_tokens),
            }),
        }
    }
}

/// The usage of a whole Response object.
pub fn usage_of_response(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<WithUsage>(body)
        .ok()?
        .usage
        .map(Usage::from)
}

/// Whether an event's data is a final event (found without parsing JSON).
fn is_final(data: &[u8]) -> bool {
    let head = &data[..data.len().min(64)];
    [
        &b"\"response.completed\""[..],
        b"\"response.incomplete\"",
        b"\"response.failed\"",
    ]
    .iter()
    .any(|k| head.windows(k.len()).any(|w| w == *k))
}

impl Default for ResponsesPassthrough {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamTranslator for ResponsesPassthrough {
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(event);
        let Some(data) = data_of(event) else { return };
        if !is_final(&data) {
            return;
        }
        self.end.ended = true;
        if let Ok(f) = serde_json::from_slice::<Final>(&data)
            && let Some(u) = f.response.usage
        {
            self.usage = Some(u.into());
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        self.end.finish(out)
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.end.fail(code, message, out);
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::testutil::run;

    #[test]
    fn bytes_pass_unchanged_and_usage_is_read() {
        let input = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"usage\":null}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"usage\":{\"input_tokens\":12,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":3,\"total_tokens\":15}}}\n\n";
        let mut t = ResponsesPassthrough::new();
        let out = run(&mut t, input, &[5, 90, 200]);
        assert_eq!(out, input.to_vec());
        let u = t.usage().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens()),
            (12, 3, 4)
        );
        assert_eq!(
            usage_of_response(br#"{"usage":{"input_tokens":1,"output_tokens":2}}"#)
                .unwrap()
                .completion_tokens,
            2
        );
    }
}
