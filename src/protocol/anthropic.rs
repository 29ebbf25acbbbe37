//! Anthropic Messages API wire types (`POST /v1/messages`, its SSE events, its errors), as the
//! API reference describes them. Fields tiergate does not translate are kept in `extra` maps
//! or as raw JSON values so that nothing is lost when a body is read and written again.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The API version tiergate speaks to Anthropic upstreams.
pub const API_VERSION: &str = "2023-06-01";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Content>,
    /// Required by the API; optional here so that a missing value gets a clear error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    /// Everything else (`output_config`, `context_management`, `service_tier`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `user` or `assistant`; Claude Code also sends `system` mid-conversation.
    pub role: String,
    pub content: Content,
}

/// A string or a list of content blocks (messages, `system`, tool results).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

impl Content {
    pub fn into_blocks(self) -> Vec<Block> {
        match self {
            Content::Text(t) if t.is_empty() => Vec::new(),
            Content::Text(text) => vec![Block::Text {
                text,
                cache_control: None,
            }],
            Content::Blocks(b) => b,
        }
    }

    pub fn blocks(&self) -> Vec<&Block> {
        match self {
            Content::Text(_) => Vec::new(),
            Content::Blocks(b) => b.iter().collect(),
        }
    }

    /// The text blocks joined by blank lines (or the string itself).
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Blocks(b) => b
                .iter()
                .filter_map(|b| match b {
                    Block::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n\n"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Image {
        source: ImageSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Content>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Thinking {
        thinking: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
    /// Any other block type (document, server tool use, search results, ...).
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    /// Absent or `custom` for client tools; a dated type (`web_search_20250305`) for server tools.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// `cache_control`, `defer_loading`, ...
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Tool {
    pub fn is_deferred(&self) -> bool {
        self.extra
            .get("defer_loading")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

/// A whole (non-streamed) response, also the `message` of `message_start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    pub id: String,
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    #[serde(default = "assistant")]
    pub role: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub content: Vec<Block>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: Usage,
}

fn message_type() -> String {
    "message".into()
}

fn assistant() -> String {
    "assistant".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// In OpenAI terms: every prompt token once (fresh + cache writes + cache reads), with the
    /// cache reads as `cached_tokens`.
    pub fn to_openai(self) -> crate::protocol::openai::Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens + self.cache_creation_input_tokens.unwrap_or(0) + read;
        crate::protocol::openai::Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens,
            prompt_tokens_details: Some(crate::protocol::openai::PromptDetails {
                cached_tokens: Some(read),
            }),
        }
    }

    /// Folds in a `message_delta` usage: its counts are cumulative, and only the fields it
    /// carries are replaced.
    pub fn merge(&mut self, d: &DeltaUsage) {
        if let Some(v) = d.input_tokens {
            self.input_tokens = v;
        }
        if let Some(v) = d.output_tokens {
            self.output_tokens = v;
        }
        if d.cache_creation_input_tokens.is_some() {
            self.cache_creation_input_tokens = d.cache_creation_input_tokens;
        }
        if d.cache_read_input_tokens.is_some() {
            self.cache_read_input_tokens = d.cache_read_input_tokens;
        }
    }
}

/// The usage of `message_delta`: cumulative counts, any of which may be absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

/// One SSE event of a streamed response (its `data`; the `event:` line repeats `type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: MessagesResponse,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block,
    },
    ContentBlockDelta {
        index: usize,
        delta: Delta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: DeltaUsage,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorDetail,
    },
    #[serde(other)]
    Other,
}

impl StreamEvent {
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
            StreamEvent::Other => "other",
        }
    }

    /// The event as SSE: `event: <type>\ndata: <json>\n\n`.
    pub fn to_sse(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(self.name().as_bytes());
        out.extend_from_slice(b"\ndata: ");
        // Serialising these plain types cannot fail.
        let _ = serde_json::to_writer(&mut *out, self);
        out.extend_from_slice(b"\n\n");
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// `{"type": "error", "error": {"type", "message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type", default = "error_type")]
    pub kind: String,
    pub error: ErrorDetail,
}

fn error_type() -> String {
    "error".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

impl ErrorBody {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            kind: "error".into(),
            error: ErrorDetail {
                kind: kind.into(),
                message: message.into(),
            },
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keeps_unknown_fields_and_reads_claude_code_shapes() {
        let body = r#"{"model":"claude-opus-5-5","max_tokens":32000,"stream":true,
            "system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}],
            "messages":[{"role":"user","content":[{"type":"text","text":"task"}]},{"role":"system","content":"env"}],
            "tools":[{"name":"Write","input_schema":{"type":"object"}},{"name":"X","input_schema":{},"defer_loading":true}],
            "output_config":{"effort":"high"},"context_management":{"edits":[]}}"#;
        let r: MessagesRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.messages[1].role, "system");
        assert!(
            r.extra.contains_key("output_config") && r.extra.contains_key("context_management")
        );
        assert!(
            !r.tools.as_ref().unwrap()[0].is_deferred()
                && r.tools.as_ref().unwrap()[1].is_deferred()
        );
        let again: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(again["system"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(again["output_config"]["effort"], "high");
    }

    #[test]
    fn unknown_blocks_and_events_are_recognised_not_fatal() {
        let c: Content =
            serde_json::from_str(r#"[{"type":"document","source":{}},{"type":"text","text":"x"}]"#)
                .unwrap();
        assert_eq!(c.blocks()[0], &Block::Other);
        let e: StreamEvent = serde_json::from_str(r#"{"type":"something_new","x":1}"#).unwrap();
        assert_eq!(e, StreamEvent::Other);
    }

    #[test]
    fn usage_converts_without_double_counting() {
        let u = Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_creation_input_tokens: Some(100),
            cache_read_input_tokens: Some(1000),
        };
        let o = u.to_openai();
        assert_eq!(
            (o.prompt_tokens, o.completion_tokens, o.cached_tokens()),
            (1110, 5, 1000)
        );
    }
}
