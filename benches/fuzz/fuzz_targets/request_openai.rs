//! OpenAI chat and completions requests: the borrowed head the router reads, the body
//! rewrite, the conversation and its classification, the typed request and its
//! translation to Anthropic. Bad input is an error, never a panic; a rewritten body is JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiergate::protocol::openai::{RequestHead, rewrite_body, usage_of_body};
use tiergate::routing::Conversation;

fuzz_target!(|data: &[u8]| {
    let _ = usage_of_body(data);
    // The head borrows from the body it is rewritten in, as in the proxy.
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok(head) = RequestHead::parse(&body) {
        let _ = (head.model_name(), head.is_stream(), head.wants_stream_usage());
        let out = rewrite_body(&body, &head, "fuzz-model", true);
        assert!(
            serde_json::from_slice::<serde_json::Value>(&out).is_ok(),
            "rewrite made bad JSON of {:?}: {:?}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&out)
        );
        if let Some(messages) = head.messages
            && let Ok(conv) = Conversation::from_openai(messages, head.tools)
        {
            let c = tiergate::routing::classifier::classify(&conv, &tiergate_fuzz::POLICY.classifier);
            assert!((0.0..=1.0).contains(&c.score), "score {}", c.score);
        }
        if let Some(prompt) = head.prompt {
            let conv = Conversation::from_prompt(prompt.get(), head.suffix.is_some());
            let _ = tiergate::routing::classifier::classify(&conv, &tiergate_fuzz::POLICY.classifier);
        }
    }
    if let Ok(req) = serde_json::from_slice::<tiergate::protocol::openai_chat::ChatRequest>(data) {
        let _ = req.wants_stream_usage();
        if let Ok(m) = tiergate::translate::chat_via_anthropic::request::translate(req) {
            let _ = serde_json::to_vec(&m);
        }
    }
});
