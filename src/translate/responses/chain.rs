//! Two stream translations in a row: the first one's SSE output is cut into events again and
//! fed to the second (Anthropic -> chat chunks -> Responses events).

use bytes::Bytes;

use crate::protocol::openai::Usage;
use crate::protocol::sse::SseSplitter;
use crate::translate::StreamTranslator;

pub struct Chain {
    first: Box<dyn StreamTranslator>,
    splitter: SseSplitter,
    second: Box<dyn StreamTranslator>,
}

impl Chain {
    pub fn new(first: Box<dyn StreamTranslator>, second: Box<dyn StreamTranslator>) -> Self {
        Chain {
            first,
            splitter: SseSplitter::new(),
            second,
        }
    }

    fn pass(&mut self, mid: Vec<u8>, out: &mut Vec<u8>) {
        if mid.is_empty() {
            return;
        }
        let mut events = Vec::new();
        self.splitter.push(Bytes::from(mid), &mut events);
        for e in &events {
            self.second.event(e, out);
        }
    }
}

impl StreamTranslator for Chain {
    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        let mut mid = Vec::new();
        self.first.event(event, &mut mid);
        self.pass(mid, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        let mut mid = Vec::new();
        let first = self.first.finish(&mut mid);
        self.pass(mid, out);
        self.second.finish(out) && first
    }

    /// The second translation speaks to the client.
    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.second.fail(code, message, out);
    }

    /// The first translation's usage: it is read off the upstream's own events.
    fn usage(&self) -> Option<Usage> {
        self.first.usage().or_else(|| self.second.usage())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::chat_via_anthropic::stream::ChatFromAnthropic;
    use crate::translate::responses::response::Envelope;
    use crate::translate::responses::stream::ResponsesFromChat;
    use crate::translate::testutil::{events, run};

    fn chain() -> Chain {
        Chain::new(
            Box::new(ChatFromAnthropic::new(1, true)),
            Box::new(ResponsesFromChat::new(Envelope::new(1, 1, "m", vec![]))),
        )
    }

    #[test]
    fn anthropic_tool_use_becomes_a_function_call_item() {
        let input = include_bytes!("../../../tests/fixtures/anthropic/stream_tool_use.sse");
        let mut t = chain();
        let out = run(&mut t, input, &[3, 333]);
        let evs = events(&out);
        let last = &evs.last().unwrap().1;
        assert_eq!(last["type"], "response.completed", "{evs:?}");
        let output = last["response"]["output"].as_array().unwrap();
        assert!(output.iter().any(|i| i["type"] == "function_call"));
        assert_eq!(t.usage().unwrap().prompt_tokens, 772);
        // Byte splits do not change the result.
        let whole = run(&mut chain(), input, &[]);
        for cut in (0..input.len()).step_by(17) {
            assert_eq!(run(&mut chain(), input, &[cut]), whole);
        }
    }
}
