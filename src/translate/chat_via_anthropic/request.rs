//! An OpenAI chat request -> an Anthropic Messages request.
//!
//! - `system` and `developer` messages, wherever they sit, become the top-level `system`
//!   (text blocks, in order): the Messages API has no system turn.
//! - Consecutive turns of one role are merged (the API wants user and assistant to
//!   alternate); `tool` messages become `tool_result` blocks of a user turn, and within a user
//!   turn tool results are put first, as the API requires.
//! - Text and image parts (data URLs -> base64 source, http(s) URLs -> url source); assistant
//!   `tool_calls` -> `tool_use` blocks (arguments must be JSON objects); `tools` and
//!   `tool_choice` (auto, none, required -> any, a named function -> tool);
//!   `parallel_tool_calls: false` -> `disable_parallel_tool_use`.
//! - `max_completion_tokens`, else `max_tokens`, else the upstream's `default_max_tokens`;
//!   temperature (0..1 only), top_p, stop -> stop_sequences, user -> metadata.user_id.
//! - Dropped on purpose (no Anthropic equivalent, no effect on the answer's shape): seed,
//!   store, metadata, service_tier, reasoning_effort, verbosity, prompt_cache_key,
//!   safety_identifier, message `name`, tool `strict`, image `detail`, `stream_options` (the
//!   usage chunk is produced by the stream translation).
//! - Untranslatable with a 400: n > 1, logprobs, top_logprobs, audio output, response_format other
//!   than text, logit_bias, non-zero presence/frequency penalties, prediction,
//!   web_search_options, legacy functions/function_call, audio and file parts, non-function
//!   tools, temperature above 1.

use serde_json::{Value, json};

use crate::protocol::anthropic::{
    Block, Content, ImageSource, Message, MessagesRequest, Tool, ToolChoice,
};
use crate::protocol::openai_chat::{
    ChatContent, ChatMessage, ChatRequest, ChatToolChoice, Part, Stop,
};
use crate::translate::{Untranslatable, parse_arguments};

/// `anthropic-beta` values a chat client may pass through to an Anthropic upstream.
pub const ALLOWED_BETAS: &[&str] = &[
    "prompt-caching-2024-07-31",
    "extended-cache-ttl-2025-04-11",
    "token-efficient-tools-2025-02-19",
    "fine-grained-tool-streaming-2025-05-14",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "context-1m-2025-08-07",
];

/// The allowed betas among the client's `anthropic-beta` header values, comma-joined.
pub fn allowed_betas<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut kept: Vec<&str> = Vec::new();
    for v in values.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
        if ALLOWED_BETAS.contains(&v) && !kept.contains(&v) {
            kept.push(v);
        }
    }
    (!kept.is_empty()).then(|| kept.join(","))
}

/// Translates `req`; `model` is left empty, and `max_tokens` unset when the client gave
/// none, for the caller to set per upstream (its `default_max_tokens`).
pub fn translate(req: ChatRequest) -> Result<MessagesRequest, Untranslatable> {
    refuse_unsupported(&req)?;
    let mut system: Vec<Block> = Vec::new();
    let mut turns: Vec<Message> = Vec::new();
    for (i, m) in req.messages.into_iter().enumerate() {
        match m.role.as_str() {
            "system" | "developer" => system.extend(text_of_system(m.content, i)?),
            "user" => push(&mut turns, "user", user_blocks(m.content, i)?),
            "assistant" => push(&mut turns, "assistant", assistant_blocks(m, i)?),
            "tool" => {
                let id = m.tool_call_id.ok_or_else(|| {
                    Untranslatable::new(
                        "messages",
                        format!("messages[{i}]: a tool message needs tool_call_id"),
                    )
                })?;
                let content = tool_content(m.content, i)?;
                push(
                    &mut turns,
                    "user",
                    vec![Block::ToolResult {
                        tool_use_id: id,
                        content,
                        is_error: None,
                        cache_control: None,
                    }],
                );
            }
            "function" => {
                return Err(Untranslatable::new(
                    "messages",
                    format!(
                        "messages[{i}]: legacy function messages are not translated to Anthropic; use tools"
                    ),
                ));
            }
            other => {
                return Err(Untranslatable::new(
                    "messages",
                    format!("messages[{i}]: unknown role {other:?}"),
                ));
            }
        }
    }
    for t in turns.iter_mut().filter(|t| t.role == "user") {
        if let Content::Blocks(blocks) = &mut t.content {
            // Stable: tool results first, in order, then the rest.
            blocks.sort_by_key(|b| !matches!(b, Block::ToolResult { .. }));
        }
    }
    if turns.is_empty() {
        return Err(Untranslatable::new(
            "messages",
            "no user or assistant message to send",
        ));
    }

    let tools = match req.tools {
        Some(tools) if !tools.is_empty() => Some(
            tools
                .into_iter()
                .enumerate()
                .map(|(i, t)| match (t.kind.as_str(), t.function) {
                    ("function", Some(f)) => Ok(Tool {
                        name: f.name,
                        kind: None,
                        description: f.description,
                        input_schema: Some(f.parameters.unwrap_or_else(|| json!({"type": "object", "properties": {}}))),
                        extra: Default::default(),
                    }),
                    (kind, _) => Err(Untranslatable::new("tools", format!("tools[{i}]: only function tools are translated to Anthropic, not {kind:?}"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => None,
    };
    let no_parallel = (req.parallel_tool_calls == Some(false)).then_some(true);
    let tool_choice = match (&tools, req.tool_choice) {
        (None, _) => None,
        (Some(_), None) => no_parallel.map(|d| ToolChoice::Auto {
            disable_parallel_tool_use: Some(d),
        }),
        (Some(_), Some(ChatToolChoice::Mode(m))) => Some(match m.as_str() {
            "auto" => ToolChoice::Auto {
                disable_parallel_tool_use: no_parallel,
            },
            "required" => ToolChoice::Any {
                disable_parallel_tool_use: no_parallel,
            },
            "none" => ToolChoice::None,
            other => {
                return Err(Untranslatable::new(
                    "tool_choice",
                    format!("unknown tool_choice {other:?}"),
                ));
            }
        }),
        (Some(_), Some(ChatToolChoice::Named(n))) => Some(ToolChoice::Tool {
            name: n.function.name,
            disable_parallel_tool_use: no_parallel,
        }),
    };
    let stop_sequences = match req.stop {
        Some(Stop::One(s)) => Some(vec![s]),
        Some(Stop::Many(v)) if !v.is_empty() => Some(v),
        _ => None,
    };
    Ok(MessagesRequest {
        model: String::new(),
        messages: turns,
        system: (!system.is_empty()).then_some(Content::Blocks(system)),
        max_tokens: req.max_completion_tokens.or(req.max_tokens),
        stop_sequences,
        stream: req.stream.filter(|s| *s),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: None,
        tools,
        tool_choice,
        metadata: req.user.map(|u| json!({ "user_id": u })),
        thinking: None,
        extra: Default::default(),
    })
}

fn refuse_unsupported(req: &ChatRequest) -> Result<(), Untranslatable> {
    let x = &req.extra;
    let set = |k: &str| x.get(k).is_some_and(|v| !v.is_null());
    if x.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(Untranslatable::new(
            "n",
            "n > 1 is not supported by Anthropic upstreams",
        ));
    }
    if x.get("logprobs").and_then(Value::as_bool) == Some(true) || set("top_logprobs") {
        return Err(Untranslatable::new(
            "logprobs",
            "logprobs are not supported by Anthropic upstreams",
        ));
    }
    let audio_out = x
        .get("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|v| v == "audio"));
    if set("audio") || audio_out {
        return Err(Untranslatable::new(
            "audio",
            "audio output is not supported by Anthropic upstreams",
        ));
    }
    if let Some(rf) = x.get("response_format").filter(|v| !v.is_null())
        && rf.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(Untranslatable::new(
            "response_format",
            "only response_format text is translated to Anthropic upstreams",
        ));
    }
    if x.get("logit_bias")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        return Err(Untranslatable::new(
            "logit_bias",
            "logit_bias is not supported by Anthropic upstreams",
        ));
    }
    for k in ["presence_penalty", "frequency_penalty"] {
        if x.get(k).and_then(Value::as_f64).is_some_and(|p| p != 0.0) {
            let param = if k == "presence_penalty" {
                "presence_penalty"
            } else {
                "frequency_penalty"
            };
            return Err(Untranslatable::new(
                param,
                format!("{k} is not supported by Anthropic upstreams"),
            ));
        }
    }
    for (k, param) in [
        ("prediction", "prediction"),
        ("web_search_options", "web_search_options"),
        ("functions", "functions"),
        ("function_call", "function_call"),
    ] {
        if set(k) {
            return Err(Untranslatable::new(
                param,
                format!("{k} is not supported by Anthropic upstreams"),
            ));
        }
    }
    if req.temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err(Untranslatable::new(
            "temperature",
            "Anthropic upstreams take a temperature between 0 and 1",
        ));
    }
    Ok(())
}

fn push(turns: &mut Vec<Message>, role: &str, blocks: Vec<Block>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => {
            if let Content::Blocks(b) = &mut last.content {
                b.extend(blocks);
            }
        }
        _ => turns.push(Message {
            role: role.to_string(),
            content: Content::Blocks(blocks),
        }),
    }
}

fn text_block(text: String) -> Option<Block> {
    // The API refuses empty text blocks.
    (!text.is_empty()).then_some(Block::Text {
        text,
        cache_control: None,
    })
}

fn text_of_system(content: Option<ChatContent>, i: usize) -> Result<Vec<Block>, Untranslatable> {
    match content {
        None => Ok(Vec::new()),
        Some(ChatContent::Text(t)) => Ok(text_block(t).into_iter().collect()),
        Some(ChatContent::Parts(parts)) => parts
            .into_iter()
            .filter_map(|p| match p {
                Part::Text { text } => text_block(text).map(Ok),
                _ => Some(Err(Untranslatable::new(
                    "messages",
                    format!("messages[{i}]: a system message may hold text only"),
                ))),
            })
            .collect(),
    }
}

fn user_blocks(content: Option<ChatContent>, i: usize) -> Result<Vec<Block>, Untranslatable> {
    match content {
        None => Ok(Vec::new()),
        Some(ChatContent::Text(t)) => Ok(text_block(t).into_iter().collect()),
        Some(ChatContent::Parts(parts)) => parts
            .into_iter()
            .filter_map(|p| match p {
                Part::Text { text } => text_block(text).map(Ok),
                Part::ImageUrl { image_url } => Some(image(&image_url.url, i)),
                Part::Refusal { .. } | Part::Other => Some(Err(unsupported_part(i))),
            })
            .collect(),
    }
}

fn unsupported_part(i: usize) -> Untranslatable {
    Untranslatable::new(
        "messages",
        format!(
            "messages[{i}]: only text and image_url content parts are translated to Anthropic (not audio or files)"
        ),
    )
}

fn image(url: &str, i: usize) -> Result<Block, Untranslatable> {
    let source = if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or_else(|| {
            Untranslatable::new("messages", format!("messages[{i}]: malformed data URL"))
        })?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            Untranslatable::new(
                "messages",
                format!("messages[{i}]: only base64 data URLs are translated"),
            )
        })?;
        ImageSource::Base64 {
            media_type: media_type.to_string(),
            data: data.to_string(),
        }
    } else if url.starts_with("https://") || url.starts_with("http://") {
        ImageSource::Url {
            url: url.to_string(),
        }
    } else {
        return Err(Untranslatable::new(
            "messages",
            format!("messages[{i}]: an image URL must be a data: or http(s): URL"),
        ));
    };
    Ok(Block::Image {
        source,
        cache_control: None,
    })
}

fn assistant_blocks(m: ChatMessage, i: usize) -> Result<Vec<Block>, Untranslatable> {
    let mut blocks: Vec<Block> = match m.content {
        None => Vec::new(),
        Some(ChatContent::Text(t)) => text_block(t).into_iter().collect(),
        Some(ChatContent::Parts(parts)) => parts
            .into_iter()
            .filter_map(|p| match p {
                Part::Text { text } | Part::Refusal { refusal: text } => text_block(text).map(Ok),
                _ => Some(Err(unsupported_part(i))),
            })
            .collect::<Result<_, _>>()?,
    };
    for call in m.tool_calls.unwrap_or_default() {
        let input = parse_arguments(&call.function.arguments)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| {
                Untranslatable::new(
                    "messages",
                    format!(
                        "messages[{i}]: the arguments of tool call {} are not a JSON object",
                        call.id
                    ),
                )
            })?;
        blocks.push(Block::ToolUse {
            id: call.id,
            name: call.function.name,
            input,
            cache_control: None,
        });
    }
    Ok(blocks)
}

fn tool_content(content: Option<ChatContent>, i: usize) -> Result<Option<Content>, Untranslatable> {
    Ok(match content {
        None => None,
        Some(ChatContent::Text(t)) => Some(Content::Text(t)),
        Some(ChatContent::Parts(parts)) => Some(Content::Blocks(
            parts
                .into_iter()
                .filter_map(|p| match p {
                    Part::Text { text } => text_block(text).map(Ok),
                    Part::ImageUrl { image_url } => Some(image(&image_url.url, i)),
                    _ => Some(Err(unsupported_part(i))),
                })
                .collect::<Result<_, _>>()?,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(body: &str) -> Result<Value, Untranslatable> {
        let req: ChatRequest = serde_json::from_str(body).unwrap();
        translate(req).map(|r| serde_json::to_value(r).unwrap())
    }

    #[test]
    fn recorded_tool_conversation_translates() {
        let req = include_str!("../../../tests/fixtures/anthropic/chat_request_tools.json");
        let want: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/anthropic/chat_request_tools.anthropic.json"
        ))
        .unwrap();
        let mut got = tr(req).unwrap();
        got["model"] = want["model"].clone();
        assert_eq!(got, want);
    }

    #[test]
    fn system_goes_top_level_and_same_roles_merge() {
        let v = tr(r#"{"model":"auto","messages":[{"role":"system","content":"S1"},{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b"}]},{"role":"developer","content":"S2"}]}"#).unwrap();
        assert_eq!(
            v["system"],
            json!([{"type":"text","text":"S1"},{"type":"text","text":"S2"}])
        );
        assert_eq!(
            v["messages"],
            json!([{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}])
        );
        assert!(
            v.get("max_tokens").is_none(),
            "left to the upstream's default"
        );
    }

    #[test]
    fn parameters_map() {
        let v = tr(r#"{"model":"auto","messages":[{"role":"user","content":"a"}],"max_tokens":10,"max_completion_tokens":20,"temperature":0.5,"top_p":0.9,"stop":["x","y"],"stream":true,"user":"u1","seed":3,
            "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required","parallel_tool_calls":false}"#).unwrap();
        assert_eq!(v["max_tokens"], 20);
        assert_eq!(v["temperature"], 0.5);
        assert_eq!(v["stop_sequences"], json!(["x", "y"]));
        assert_eq!(v["stream"], true);
        assert_eq!(v["metadata"], json!({"user_id":"u1"}));
        assert_eq!(
            v["tool_choice"],
            json!({"type":"any","disable_parallel_tool_use":true})
        );
        assert_eq!(
            v["tools"][0]["input_schema"],
            json!({"type":"object","properties":{}})
        );
        assert!(v.get("seed").is_none());
        for (choice, want) in [
            (r#""auto""#, json!({"type":"auto"})),
            (r#""none""#, json!({"type":"none"})),
            (
                r#"{"type":"function","function":{"name":"f"}}"#,
                json!({"type":"tool","name":"f"}),
            ),
        ] {
            let v = tr(&format!(r#"{{"model":"a","messages":[{{"role":"user","content":"a"}}],"tools":[{{"type":"function","function":{{"name":"f"}}}}],"tool_choice":{choice}}}"#)).unwrap();
            assert_eq!(v["tool_choice"], want);
        }
    }

    #[test]
    fn images_become_sources() {
        let v = tr(r#"{"model":"a","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBOR"}},{"type":"image_url","image_url":{"url":"https://e.com/a.jpg","detail":"high"}}]}]}"#).unwrap();
        assert_eq!(
            v["messages"][0]["content"][0]["source"],
            json!({"type":"base64","media_type":"image/png","data":"iVBOR"})
        );
        assert_eq!(
            v["messages"][0]["content"][1]["source"],
            json!({"type":"url","url":"https://e.com/a.jpg"})
        );
        assert!(tr(r#"{"model":"a","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]}"#).is_err());
    }

    #[test]
    fn untranslatable_requests_are_refused_by_field() {
        let base = r#""model":"a","messages":[{"role":"user","content":"a"}]"#;
        for (extra, param) in [
            (r#""n":2"#, "n"),
            (r#""logprobs":true"#, "logprobs"),
            (
                r#""modalities":["text","audio"],"audio":{"voice":"x"}"#,
                "audio",
            ),
            (
                r#""response_format":{"type":"json_object"}"#,
                "response_format",
            ),
            (r#""logit_bias":{"1":2}"#, "logit_bias"),
            (r#""presence_penalty":0.5"#, "presence_penalty"),
            (r#""temperature":1.5"#, "temperature"),
            (r#""tools":[{"type":"custom","custom":{}}]"#, "tools"),
        ] {
            let e = tr(&format!("{{{base},{extra}}}")).unwrap_err();
            assert_eq!(e.param, param, "{extra}");
        }
        // Neutral values pass.
        assert!(tr(&format!(r#"{{{base},"n":1,"logprobs":false,"presence_penalty":0,"response_format":{{"type":"text"}}}}"#)).is_ok());
        let e = tr(r#"{"model":"a","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}"#).unwrap_err();
        assert_eq!(e.param, "messages");
        let e = tr(r#"{"model":"a","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}"#).unwrap_err();
        assert!(e.message.contains("not a JSON object"), "{e:?}");
    }

    #[test]
    fn betas_are_filtered() {
        assert_eq!(
            allowed_betas([
                "prompt-caching-2024-07-31, evil-beta",
                "prompt-caching-2024-07-31"
            ])
            .as_deref(),
            Some("prompt-caching-2024-07-31")
        );
        assert_eq!(allowed_betas(["evil"]), None);
    }
}
