//! An Anthropic Messages request (Claude Code, the Anthropic SDKs) -> an OpenAI chat request
//! for an OpenAI-compatible upstream (vLLM, llama.cpp, Ollama, OpenAI).
//!
//! - `system` (string or text blocks) becomes the leading system message. Claude Code's
//!   `role: "system"` messages after the user turn (environment, date, deferred tools) are
//!   folded into that leading system message, in order: every chat template accepts a
//!   leading system message, not all accept one mid-conversation.
//! - A user turn: its `tool_result` blocks become `tool` messages (first, as OpenAI wants
//!   them right after the assistant's `tool_calls`), its text and images one user message.
//!   Tool results carry text only in chat completions, so images inside a tool result go to
//!   that user message; `is_error: true` prefixes the result with `[tool error] `.
//! - An assistant turn: text -> `content`, `tool_use` -> `tool_calls`; thinking and
//!   redacted thinking are dropped (an OpenAI-compatible model cannot verify signatures).
//! - Tools -> function tools (`input_schema` -> `parameters`); tools with
//!   `defer_loading: true` are dropped (Claude Code loads them on demand through its tool
//!   search; the model cannot call them before that); server tools (a dated `type` such as
//!   `web_search_20250305`) are refused: nothing would run them.
//! - tool_choice auto/any/tool/none -> auto/required/function/none;
//!   `disable_parallel_tool_use` -> `parallel_tool_calls: false`.
//! - max_tokens, temperature, top_p, stop_sequences -> stop; streams ask for usage.
//! - Dropped on purpose: `cache_control` (OpenAI-compatible servers cache prefixes on their
//!   own), `thinking`, `metadata`, `output_config`, `context_management`, `service_tier`,
//!   `top_k`, and other top-level fields OpenAI does not know.
//! - Untranslatable with a 400: content blocks other than text, image, tool_use, tool_result and
//!   thinking (documents, server tool results, ...), file image sources, non-empty
//!   `mcp_servers`, unknown roles.

use serde_json::{Value, json};

use crate::protocol::anthropic::{Block, Content, ImageSource, MessagesRequest, ToolChoice};
use crate::protocol::openai_chat::{
    ChatContent, ChatMessage, ChatRequest, ChatTool, ChatToolChoice, FunctionDef, ImageUrl,
    NamedFunction, NamedToolChoice, Part, Stop, ToolCall,
};
use crate::translate::Untranslatable;

/// Translates `req`; the caller sets `model` per upstream.
pub fn translate(req: MessagesRequest) -> Result<ChatRequest, Untranslatable> {
    if req
        .extra
        .get("mcp_servers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(Untranslatable::new(
            "mcp_servers",
            "MCP servers run on Anthropic's side; they are not available through an OpenAI-compatible upstream",
        ));
    }
    let mut system: Vec<String> = Vec::new();
    if let Some(s) = &req.system {
        push_text(&mut system, s.text());
    }
    let mut messages: Vec<ChatMessage> = Vec::new();
    for (i, m) in req.messages.into_iter().enumerate() {
        match m.role.as_str() {
            "system" => push_text(&mut system, m.content.text()),
            "user" => user_turn(m.content, i, &mut messages)?,
            "assistant" => messages.extend(assistant_turn(m.content, i)?),
            other => {
                return Err(Untranslatable::new(
                    "messages",
                    format!("messages.{i}.role: unknown role {other:?}"),
                ));
            }
        }
    }
    if !system.is_empty() {
        messages.insert(
            0,
            message("system", Some(ChatContent::Text(system.join("\n\n")))),
        );
    }

    let tools: Vec<ChatTool> = req
        .tools
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !t.is_deferred())
        .map(|t| match t.kind.as_deref() {
            None | Some("custom") => Ok(ChatTool {
                kind: "function".into(),
                function: Some(FunctionDef {
                    name: t.name,
                    description: t.description,
                    parameters: Some(t.input_schema.unwrap_or_else(|| json!({"type": "object", "properties": {}}))),
                    strict: None,
                }),
            }),
            Some(kind) => Err(Untranslatable::new("tools", format!("tool {} is an Anthropic server tool ({kind}); it cannot run on an OpenAI-compatible upstream", t.name))),
        })
        .collect::<Result<_, _>>()?;
    let (tool_choice, parallel) = match (&req.tool_choice, tools.is_empty()) {
        (_, true) | (None, _) => (None, None),
        (Some(c), false) => {
            let (choice, no_parallel) = match c {
                ToolChoice::Auto {
                    disable_parallel_tool_use: d,
                } => (ChatToolChoice::Mode("auto".into()), *d),
                ToolChoice::Any {
                    disable_parallel_tool_use: d,
                } => (ChatToolChoice::Mode("required".into()), *d),
                ToolChoice::None => (ChatToolChoice::Mode("none".into()), None),
                ToolChoice::Tool {
                    name,
                    disable_parallel_tool_use: d,
                } => (
                    ChatToolChoice::Named(NamedToolChoice {
                        kind: "function".into(),
                        function: NamedFunction { name: name.clone() },
                    }),
                    *d,
                ),
            };
            (Some(choice), no_parallel.filter(|d| *d).map(|_| false))
        }
    };
    let stream = req.stream.unwrap_or(false);
    Ok(ChatRequest {
        model: String::new(),
        messages,
        max_tokens: req.max_tokens,
        max_completion_tokens: None,
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req.stop_sequences.filter(|s| !s.is_empty()).map(Stop::Many),
        stream: stream.then_some(true),
        stream_options: stream.then(|| json!({"include_usage": true})),
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        parallel_tool_calls: parallel,
        user: None,
        extra: Default::default(),
    })
}

fn push_text(into: &mut Vec<String>, text: String) {
    if !text.is_empty() {
        into.push(text);
    }
}

fn message(role: &str, content: Option<ChatContent>) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content,
        ..Default::default()
    }
}

fn image_url(source: ImageSource, i: usize) -> Result<Part, Untranslatable> {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url,
        ImageSource::Other => {
            return Err(Untranslatable::new(
                "messages",
                format!("messages.{i}: only base64 and url image sources are translated"),
            ));
        }
    };
    Ok(Part::ImageUrl {
        image_url: ImageUrl { url, detail: None },
    })
}

fn unsupported_block(i: usize) -> Untranslatable {
    Untranslatable::new(
        "messages",
        format!(
            "messages.{i}: a content block type that is not translated for OpenAI-compatible upstreams (only text, image, tool_use, tool_result and thinking are)"
        ),
    )
}

/// Text parts as a plain string when there is only text, else parts.
fn parts_content(parts: Vec<Part>) -> Option<ChatContent> {
    if parts.is_empty() {
        return None;
    }
    if parts.iter().all(|p| matches!(p, Part::Text { .. })) {
        let texts: Vec<String> = parts
            .into_iter()
            .filter_map(|p| {
                if let Part::Text { text } = p {
                    Some(text)
                } else {
                    None
                }
            })
            .collect();
        return Some(ChatContent::Text(texts.join("\n\n")));
    }
    Some(ChatContent::Parts(parts))
}

fn user_turn(content: Content, i: usize, out: &mut Vec<ChatMessage>) -> Result<(), Untranslatable> {
    let mut parts: Vec<Part> = Vec::new();
    let mut results: Vec<ChatMessage> = Vec::new();
    for block in content.into_blocks() {
        match block {
            Block::Text { text, .. } => parts.push(Part::Text { text }),
            Block::Image { source, .. } => parts.push(image_url(source, i)?),
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
                ..
            } => {
                let mut texts: Vec<String> = Vec::new();
                for b in content.map(Content::into_blocks).unwrap_or_default() {
                    match b {
                        Block::Text { text, .. } => texts.push(text),
                        Block::Image { source, .. } => parts.push(image_url(source, i)?),
                        _ => return Err(unsupported_block(i)),
                    }
                }
                let mut text = texts.join("\n\n");
                if is_error == Some(true) {
                    text.insert_str(0, "[tool error] ");
                }
                results.push(ChatMessage {
                    tool_call_id: Some(tool_use_id),
                    ..message("tool", Some(ChatContent::Text(text)))
                });
            }
            Block::Thinking { .. } | Block::RedactedThinking { .. } => {}
            Block::ToolUse { .. } | Block::Other => return Err(unsupported_block(i)),
        }
    }
    out.extend(results);
    if let Some(c) = parts_content(parts) {
        out.push(message("user", Some(c)));
    }
    Ok(())
}

fn assistant_turn(content: Content, i: usize) -> Result<Option<ChatMessage>, Untranslatable> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in content.into_blocks() {
        match block {
            Block::Text { text: t, .. } => text.push_str(&t),
            Block::ToolUse {
                id, name, input, ..
            } => calls.push(ToolCall::function(id, name, input.to_string())),
            Block::Thinking { .. } | Block::RedactedThinking { .. } => {}
            _ => return Err(unsupported_block(i)),
        }
    }
    if text.is_empty() && calls.is_empty() {
        return Ok(None);
    }
    Ok(Some(ChatMessage {
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..message(
            "assistant",
            (!text.is_empty()).then_some(ChatContent::Text(text)),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(body: &str) -> Result<Value, Untranslatable> {
        let req: MessagesRequest = serde_json::from_str(body).unwrap();
        translate(req).map(|r| serde_json::to_value(r).unwrap())
    }

    #[test]
    fn recorded_claude_code_request_translates() {
        let got = tr(include_str!(
            "../../../tests/fixtures/anthropic/claude_code_request.json"
        ))
        .unwrap();
        let want: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/anthropic/claude_code_request.openai.json"
        ))
        .unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn tool_results_come_first_with_errors_marked_and_images_moved() {
        let v = tr(r#"{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"s"},{"type":"tool_use","id":"t1","name":"Read","input":{"p":"a.png"}}]},
            {"role":"user","content":[{"type":"text","text":"next"},{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"text","text":"boom"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAA"}}]}]}]}"#).unwrap();
        assert_eq!(
            v["messages"][0],
            json!({"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"Read","arguments":"{\"p\":\"a.png\"}"}}]})
        );
        assert_eq!(
            v["messages"][1],
            json!({"role":"tool","content":"[tool error] boom","tool_call_id":"t1"})
        );
        assert_eq!(
            v["messages"][2]["content"],
            json!([{"type":"text","text":"next"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA"}}])
        );
    }

    #[test]
    fn choices_and_refusals() {
        let base = r#""model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{"type":"object"}}]"#;
        let v = tr(&format!(
            r#"{{{base},"tool_choice":{{"type":"any","disable_parallel_tool_use":true}}}}"#
        ))
        .unwrap();
        assert_eq!(
            (v["tool_choice"].clone(), v["parallel_tool_calls"].clone()),
            (json!("required"), json!(false))
        );
        let v = tr(&format!(
            r#"{{{base},"tool_choice":{{"type":"tool","name":"f"}}}}"#
        ))
        .unwrap();
        assert_eq!(
            v["tool_choice"],
            json!({"type":"function","function":{"name":"f"}})
        );
        let e = tr(r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}"#).unwrap_err();
        assert_eq!(e.param, "tools");
        let e = tr(r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","data":"x"}}]}]}"#).unwrap_err();
        assert_eq!(e.param, "messages");
    }
}
