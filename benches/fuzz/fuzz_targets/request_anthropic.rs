//! Anthropic Messages requests: the head, the conversation (system, messages, tools) and its
//! classification, the typed request, its token estimate and its translation to OpenAI chat.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiergate::protocol::openai::RequestHead;
use tiergate::routing::Conversation;

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = RequestHead::parse(data)
        && let Some(messages) = head.messages
        && let Ok(conv) = Conversation::from_anthropic(head.system, messages, head.tools)
    {
        let c = tiergate::routing::classifier::classify(&conv, &tiergate_fuzz::POLICY.classifier);
        assert!((0.0..=1.0).contains(&c.score), "score {}", c.score);
    }
    if let Ok(req) = serde_json::from_slice::<tiergate::protocol::anthropic::MessagesRequest>(data) {
        let _ = tiergate::translate::count_tokens::estimate(&req);
        if let Ok(chat) = tiergate::translate::messages_via_openai::request::translate(req) {
            let _ = serde_json::to_vec(&chat);
        }
    }
});
