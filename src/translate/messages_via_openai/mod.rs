//! An Anthropic `/v1/messages` request served by an OpenAI-compatible upstream: the request
//! goes out as a chat request (`request`), the answer comes back as an Anthropic message
//! (`response`) or the Anthropic event sequence (`stream`).

pub mod request;
pub mod response;
pub mod stream;

use crate::protocol::anthropic::Usage;
use crate::protocol::openai_chat::UsageOut;

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`. Tool calls win over `stop`:
/// several OpenAI-compatible servers say `stop` after a tool call.
pub fn stop_reason(finish: Option<&str>, has_tool_calls: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        Some("tool_calls" | "function_call") => "tool_use",
        _ if has_tool_calls => "tool_use",
        _ => "end_turn",
    }
}

/// OpenAI usage in Anthropic terms: cached prompt tokens are cache reads, the rest input.
pub fn usage_of(u: &UsageOut) -> Usage {
    let cached = u.cached().min(u.prompt_tokens);
    Usage {
        input_tokens: u.prompt_tokens - cached,
        output_tokens: u.completion_tokens,
        cache_creation_input_tokens: Some(0),
        cache_read_input_tokens: Some(cached),
    }
}

/// An Anthropic-looking message id for an OpenAI completion id.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_string()
    } else {
        format!("msg_{id}")
    }
}
