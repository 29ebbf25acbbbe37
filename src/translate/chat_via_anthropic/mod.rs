//! An OpenAI chat-completions request served by an Anthropic upstream: the request goes out
//! as a Messages request (`request`), the answer comes back as a chat completion
//! (`response`) or a stream of chunks (`stream`).

pub mod request;
pub mod response;
pub mod stream;

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`. `pause_turn` (a server tool paused
/// a long turn) ends the chat turn as `stop`; `refusal` is OpenAI's `content_filter`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}
