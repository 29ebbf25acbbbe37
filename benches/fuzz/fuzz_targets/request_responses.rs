//! Responses API requests (Codex CLI): the head, the conversation (instructions, input,
//! tools) and its classification, the typed request and its translation to chat.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiergate::protocol::openai::RequestHead;
use tiergate::routing::Conversation;
use tiergate::translate::responses::request::{ResponsesRequest, translate};

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = RequestHead::parse(data)
        && let Some(input) = head.input
        && let Ok(conv) = Conversation::from_responses(head.instructions, input, head.tools)
    {
        let c = tiergate::routing::classifier::classify(&conv, &tiergate_fuzz::POLICY.classifier);
        assert!((0.0..=1.0).contains(&c.score), "score {}", c.score);
    }
    if let Ok(req) = serde_json::from_slice::<ResponsesRequest>(data)
        && let Ok(t) = translate(req)
    {
        let _ = serde_json::to_vec(&t.chat);
    }
});
