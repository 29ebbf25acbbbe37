//! A Responses API request -> an OpenAI chat-completions request (see `super` for what is
//! dropped and what is refused).
//!
//! - `instructions` -> a first `system` message; `developer` and `system` input messages ->
//!   `system` messages where they stand (local servers do not all know `developer`).
//! - `user` / `assistant` messages: their text parts (`input_text`, `output_text`, `text`,
//!   `refusal`) joined in order; `input_image` with an `image_url` -> an `image_url` part.
//! - `function_call` items -> `tool_calls` of an assistant message (consecutive calls, and a
//!   call right after an assistant message, share one message); `function_call_output` ->
//!   a `tool` message. `custom_tool_call` is carried the same way with `{"input": ...}`.
//! - `max_output_tokens` -> `max_tokens`; `text.format` -> `response_format`; a stream always
//!   asks for usage (`stream_options.include_usage`), since the Responses API always reports it.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::NAMESPACE_SEP;
use crate::protocol::openai_chat::{
    ChatContent, ChatMessage, ChatRequest, ChatTool, ChatToolChoice, FunctionCall, FunctionDef,
    ImageUrl, NamedFunction, NamedToolChoice, Part, ToolCall,
};
use crate::translate::Untranslatable;

#[derive(Debug, Clone, Deserialize)]
pub struct ResponsesRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub instructions: Option<String>,
    pub input: Input,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub background: Option<bool>,
    #[serde(default)]
    pub text: Option<Value>,
    /// Everything else (`store`, `include`, `reasoning`, ...): dropped.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Items(Vec<Value>),
}

/// The chat request and the namespaces whose tools were flattened.
#[derive(Debug, Clone)]
pub struct Translated {
    pub chat: ChatRequest,
    pub namespaces: Vec<String>,
}

pub fn translate(req: ResponsesRequest) -> Result<Translated, Untranslatable> {
    if req.previous_response_id.is_some() {
        return Err(Untranslatable::new(
            "previous_response_id",
            "tiergate does not store responses; send the whole conversation in `input`",
        ));
    }
    if req.background == Some(true) {
        return Err(Untranslatable::new(
            "background",
            "background responses are not supported by tiergate",
        ));
    }
    let mut messages = Vec::new();
    if let Some(text) = req.instructions.filter(|t| !t.is_empty()) {
        messages.push(message("system", Some(ChatContent::Text(text))));
    }
    match req.input {
        Input::Text(text) => messages.push(message("user", Some(ChatContent::Text(text)))),
        Input::Items(items) => {
            for item in items {
                push_item(&mut messages, item)?;
            }
        }
    }
    let (tools, namespaces) = match req.tools {
        Some(tools) => {
            let (t, ns) = translate_tools(tools);
            ((!t.is_empty()).then_some(t), ns)
        }
        None => (None, Vec::new()),
    };
    let tool_choice = match (&tools, req.tool_choice) {
        (Some(_), Some(c)) => tool_choice(c, &namespaces),
        _ => None,
    };
    let stream = req.stream.unwrap_or(false);
    let mut extra = Map::new();
    if let Some(format) = req.text.as_ref().and_then(response_format) {
        extra.insert("response_format".into(), format);
    }
    Ok(Translated {
        chat: ChatRequest {
            model: req.model,
            messages,
            max_tokens: req.max_output_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            stream: stream.then_some(true),
            stream_options: stream.then(|| json!({"include_usage": true})),
            parallel_tool_calls: tools.as_ref().and(req.parallel_tool_calls),
            tools,
            tool_choice,
            extra,
            ..ChatRequest::default()
        },
        namespaces,
    })
}

fn message(role: &str, content: Option<ChatContent>) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content,
        ..ChatMessage::default()
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn push_item(messages: &mut Vec<ChatMessage>, item: Value) -> Result<(), Untranslatable> {
    let kind = str_field(&item, "type").unwrap_or("message");
    match kind {
        "message" => {
            let role = match str_field(&item, "role").unwrap_or("user") {
                "developer" | "system" => "system",
                "assistant" => "assistant",
                _ => "user",
            };
            let content = content(item.get("content"), role != "user")?;
            messages.push(message(role, content));
        }
        "function_call" | "custom_tool_call" => {
            let call_id = str_field(&item, "call_id").unwrap_or_default().to_string();
            let name = match (str_field(&item, "namespace"), str_field(&item, "name")) {
                (Some(ns), Some(n)) => format!("{ns}{NAMESPACE_SEP}{n}"),
                (_, n) => n.unwrap_or_default().to_string(),
            };
            let arguments = if kind == "function_call" {
                str_field(&item, "arguments").unwrap_or("{}").to_string()
            } else {
                json!({"input": str_field(&item, "input").unwrap_or_default()}).to_string()
            };
            let call = ToolCall {
                id: call_id,
                kind: "function".into(),
                function: FunctionCall { name, arguments },
            };
            match messages.last_mut() {
                Some(m) if m.role == "assistant" => m.tool_calls.get_or_insert_default().push(call),
                _ => {
                    let mut m = message("assistant", None);
                    m.tool_calls = Some(vec![call]);
                    messages.push(m);
                }
            }
        }
        "function_call_output" | "custom_tool_call_output" => {
            let text = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(v @ Value::Array(_)) => match content(Some(v), true)? {
                    Some(ChatContent::Text(t)) => t,
                    _ => String::new(),
                },
                Some(v) => v.to_string(),
                None => String::new(),
            };
            let mut m = message("tool", Some(ChatContent::Text(text)));
            m.tool_call_id = str_field(&item, "call_id").map(str::to_owned);
            messages.push(m);
        }
        "item_reference" => {
            return Err(Untranslatable::new(
                "input",
                "item_reference needs stored responses, which tiergate does not keep",
            ));
        }
        // Reasoning (encrypted or summarised) and built-in tool calls have no chat form.
        _ => {}
    }
    Ok(())
}

/// A message's content: a string, or parts. `text_only` (system and assistant turns, tool
/// outputs) joins the text parts into one string.
fn content(raw: Option<&Value>, text_only: bool) -> Result<Option<ChatContent>, Untranslatable> {
    let parts = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => return Ok(Some(ChatContent::Text(s.clone()))),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(Untranslatable::new(
                "input",
                "message content must be a string or a list of parts",
            ));
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let text = str_field(p, "text").or_else(|| str_field(p, "refusal"));
        match (str_field(p, "type"), text) {
            (Some("input_text" | "output_text" | "text" | "refusal"), Some(t)) => {
                out.push(Part::Text {
                    text: t.to_string(),
                })
            }
            (Some("input_image"), _) => match str_field(p, "image_url") {
                Some(url) if !text_only => out.push(Part::ImageUrl {
                    image_url: ImageUrl {
                        url: url.to_string(),
                        detail: str_field(p, "detail").map(str::to_owned),
                    },
                }),
                _ => {
                    return Err(Untranslatable::new(
                        "input",
                        "images are translated only as image_url in user messages (no file_id)",
                    ));
                }
            },
            (Some("input_file" | "input_audio"), _) => {
                return Err(Untranslatable::new(
                    "input",
                    "input_file and input_audio parts are not translated",
                ));
            }
            _ => {}
        }
    }
    let all_text = out.iter().all(|p| matches!(p, Part::Text { .. }));
    if text_only || all_text {
        let text: Vec<String> = out
            .into_iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text),
                _ => None,
            })
            .collect();
        return Ok(Some(ChatContent::Text(text.join("\n"))));
    }
    Ok(Some(ChatContent::Parts(out)))
}

fn function_tool(t: &Value, prefix: Option<&str>) -> Option<ChatTool> {
    let name = str_field(t, "name")?;
    let name = match prefix {
        Some(ns) => format!("{ns}{NAMESPACE_SEP}{name}"),
        None => name.to_string(),
    };
    Some(ChatTool {
        kind: "function".into(),
        function: Some(FunctionDef {
            name,
            description: str_field(t, "description").map(str::to_owned),
            parameters: Some(
                t.get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            ),
            strict: t.get("strict").and_then(Value::as_bool),
        }),
    })
}

/// Function tools as they are; namespaces flattened; built-in tools dropped.
fn translate_tools(tools: Vec<Value>) -> (Vec<ChatTool>, Vec<String>) {
    let mut out = Vec::new();
    let mut namespaces = Vec::new();
    for t in &tools {
        match str_field(t, "type") {
            Some("function") => out.extend(function_tool(t, None)),
            Some("namespace") => {
                let Some(ns) = str_field(t, "name") else {
                    continue;
                };
                let inner = t.get("tools").and_then(Value::as_array);
                for f in inner.into_iter().flatten() {
                    if str_field(f, "type").is_none_or(|k| k == "function") {
                        out.extend(function_tool(f, Some(ns)));
                    }
                }
                namespaces.push(ns.to_string());
            }
            _ => {}
        }
    }
    (out, namespaces)
}

fn tool_choice(c: Value, namespaces: &[String]) -> Option<ChatToolChoice> {
    match &c {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            Some(ChatToolChoice::Mode(mode.clone()))
        }
        Value::Object(_) if str_field(&c, "type") == Some("function") => {
            let name = str_field(&c, "name")?;
            let name = match str_field(&c, "namespace") {
                Some(ns) if namespaces.iter().any(|n| n == ns) => {
                    format!("{ns}{NAMESPACE_SEP}{name}")
                }
                _ => name.to_string(),
            };
            Some(ChatToolChoice::Named(NamedToolChoice {
                kind: "function".into(),
                function: NamedFunction { name },
            }))
        }
        // `allowed_tools`, built-in tool choices: left to the model.
        _ => None,
    }
}

/// `text.format` as chat's `response_format`.
fn response_format(text: &Value) -> Option<Value> {
    let f = text.get("format")?;
    match str_field(f, "type")? {
        "json_schema" => Some(json!({
            "type": "json_schema",
            "json_schema": {
                "name": str_field(f, "name").unwrap_or("response"),
                "schema": f.get("schema").cloned().unwrap_or(json!({})),
                "strict": f.get("strict").and_then(Value::as_bool).unwrap_or(false),
            }
        })),
        "json_object" => Some(json!({"type": "json_object"})),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(v: Value) -> Result<Translated, Untranslatable> {
        translate(serde_json::from_value(v).unwrap())
    }

    fn roles(c: &ChatRequest) -> Vec<&str> {
        c.messages.iter().map(|m| m.role.as_str()).collect()
    }

    #[test]
    fn codex_shape_becomes_chat() {
        let t = tr(json!({
            "model": "auto", "stream": true, "store": false,
            "include": ["reasoning.encrypted_content"], "reasoning": {"summary": "auto"},
            "prompt_cache_key": "k",
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context/>"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Write hi.txt"}]},
                {"type": "reasoning", "encrypted_content": "xxx", "summary": []},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "On it."}]},
                {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
                {"type": "function_call", "call_id": "c2", "name": "spawn", "namespace": "multi_agent_v1", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
                {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "ok"}]}
            ],
            "tools": [
                {"type": "function", "name": "exec_command", "description": "run", "strict": false, "parameters": {"type": "object"}},
                {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "spawn", "parameters": {"type": "object"}}]},
                {"type": "web_search"}
            ],
            "tool_choice": "auto", "parallel_tool_calls": false
        }))
        .unwrap();
        let c = &t.chat;
        assert_eq!(
            roles(c),
            ["system", "user", "user", "assistant", "tool", "tool"]
        );
        assert_eq!(
            c.messages[0].content,
            Some(ChatContent::Text("You are Codex".into()))
        );
        let calls = c.messages[3].tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].function.arguments, "{\"cmd\":\"ls\"}");
        assert_eq!(calls[1].function.name, "multi_agent_v1__spawn");
        assert_eq!(
            c.messages[3].content,
            Some(ChatContent::Text("On it.".into()))
        );
        assert_eq!(c.messages[4].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(c.messages[5].content, Some(ChatContent::Text("ok".into())));
        let names: Vec<_> = c
            .tools
            .as_ref()
            .unwrap()
            .iter()
            .map(|t| t.function.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(names, ["exec_command", "multi_agent_v1__spawn"]);
        assert_eq!(t.namespaces, ["multi_agent_v1"]);
        assert_eq!(c.stream, Some(true));
        assert!(c.wants_stream_usage());
        assert_eq!(c.parallel_tool_calls, Some(false));
        // Nothing of Codex's own fields reaches the chat body.
        let body = serde_json::to_value(c).unwrap();
        for k in ["store", "include", "reasoning", "prompt_cache_key", "input"] {
            assert!(body.get(k).is_none(), "{k} leaked");
        }
    }

    #[test]
    fn string_input_instructions_and_limits() {
        let t = tr(json!({"model": "m", "instructions": "be brief", "input": "hi",
            "max_output_tokens": 50, "temperature": 0.2,
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": true}}}))
        .unwrap();
        assert_eq!(roles(&t.chat), ["system", "user"]);
        assert_eq!(t.chat.max_tokens, Some(50));
        assert_eq!(t.chat.stream, None);
        assert_eq!(t.chat.extra["response_format"]["json_schema"]["name"], "x");
        assert!(t.chat.tools.is_none());
    }

    #[test]
    fn images_stay_parts_in_user_turns() {
        let t = tr(json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "what is this"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]}))
        .unwrap();
        let Some(ChatContent::Parts(p)) = &t.chat.messages[0].content else {
            panic!("parts expected")
        };
        assert_eq!(p.len(), 2);
        assert!(matches!(p[1], Part::ImageUrl { .. }));
    }

    #[test]
    fn stored_state_is_refused() {
        let e =
            tr(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"})).unwrap_err();
        assert_eq!(e.param, "previous_response_id");
        let e = tr(json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}))
            .unwrap_err();
        assert_eq!(e.param, "input");
        let e = tr(json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}))
            .unwrap_err();
        assert!(e.message.contains("input_file"));
    }

    #[test]
    fn named_tool_choice_in_a_namespace() {
        let t = tr(json!({"model": "m", "input": "x",
            "tools": [{"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"}]}],
            "tool_choice": {"type": "function", "name": "f", "namespace": "ns"}}))
        .unwrap();
        assert_eq!(
            t.chat.tool_choice,
            Some(ChatToolChoice::Named(NamedToolChoice {
                kind: "function".into(),
                function: NamedFunction {
                    name: "ns__f".into()
                }
            }))
        );
    }
}
