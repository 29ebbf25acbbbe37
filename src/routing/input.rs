//! A protocol-neutral view of a request, built from borrowed wire data, for the classifier.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Clone)]
pub struct Turn<'a> {
    pub role: Role,
    /// The turn's text parts, joined by newlines.
    pub text: Cow<'a, str>,
    /// Images or files attached to the turn.
    pub attachments: usize,
}

/// What the classifier sees of a request.
#[derive(Debug, Clone, Default)]
pub struct Conversation<'a> {
    pub turns: Vec<Turn<'a>>,
    /// Names of the tools the client offers.
    pub tools: Vec<Cow<'a, str>>,
    /// A fill-in-the-middle request (legacy completions with `suffix`): tab completion.
    pub fim: bool,
}

impl<'a> Conversation<'a> {
    /// A bare prompt, as `tiergate classify` takes `{"prompt": ...}` and /v1/completions sends.
    pub fn from_prompt(prompt: impl Into<Cow<'a, str>>, fim: bool) -> Self {
        Conversation {
            turns: vec![Turn {
                role: Role::User,
                text: prompt.into(),
                attachments: 0,
            }],
            tools: Vec::new(),
            fim,
        }
    }

    /// From OpenAI chat `messages` and `tools`.
    pub fn from_openai(
        messages: &'a RawValue,
        tools: Option<&'a RawValue>,
    ) -> Result<Self, serde_json::Error> {
        let messages: Vec<OpenAiMessage<'a>> = serde_json::from_str(messages.get())?;
        let turns = messages.into_iter().map(OpenAiMessage::into_turn).collect();
        Ok(Conversation {
            turns,
            tools: tool_names(tools),
            fim: false,
        })
    }

    /// From Anthropic Messages `system`, `messages` and `tools`. A user turn made only of
    /// `tool_result` blocks is a tool turn.
    pub fn from_anthropic(
        system: Option<&'a RawValue>,
        messages: &'a RawValue,
        tools: Option<&'a RawValue>,
    ) -> Result<Self, serde_json::Error> {
        let mut turns = Vec::new();
        if let Some(raw) = system {
            let (text, _) = content_text(serde_json::from_str::<Content<'a>>(raw.get())?);
            turns.push(Turn {
                role: Role::System,
                text,
                attachments: 0,
            });
        }
        let messages: Vec<OpenAiMessage<'a>> = serde_json::from_str(messages.get())?;
        turns.extend(messages.into_iter().map(OpenAiMessage::into_turn));
        Ok(Conversation {
            turns,
            tools: tool_names(tools),
            fim: false,
        })
    }

    /// From Responses API `instructions`, `input` (a string or items) and `tools`.
    pub fn from_responses(
        instructions: Option<&'a RawValue>,
        input: &'a RawValue,
        tools: Option<&'a RawValue>,
    ) -> Result<Self, serde_json::Error> {
        let mut turns = Vec::new();
        if let Some(raw) = instructions
            && let Some(text) = serde_json::from_str::<Option<Cow<'a, str>>>(raw.get())?
        {
            turns.push(Turn {
                role: Role::System,
                text,
                attachments: 0,
            });
        }
        match serde_json::from_str::<ResponsesInput<'a>>(input.get())? {
            ResponsesInput::Text(text) => turns.push(Turn {
                role: Role::User,
                text,
                attachments: 0,
            }),
            ResponsesInput::Items(items) => {
                turns.extend(items.into_iter().filter_map(ResponsesItem::into_turn))
            }
        }
        Ok(Conversation {
            turns,
            tools: tool_names(tools),
            fim: false,
        })
    }

    pub fn has_tools(&self) -> bool {
        !self.tools.is_empty()
    }
}

#[derive(Deserialize)]
struct OpenAiMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<Content<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<Part<'a>>),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    /// Anthropic `tool_result` content.
    #[serde(borrow, default)]
    content: Option<InnerContent<'a>>,
}

/// Tool names from OpenAI (`function.name`), Anthropic and Responses (`name`) tool lists.
fn tool_names<'a>(tools: Option<&'a RawValue>) -> Vec<Cow<'a, str>> {
    let Some(raw) = tools else { return Vec::new() };
    serde_json::from_str::<Option<Vec<OpenAiTool<'a>>>>(raw.get())
        .unwrap_or_default()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.function.map(|f| f.name).or(t.name))
        .collect()
}

#[derive(Deserialize)]
struct OpenAiTool<'a> {
    #[serde(borrow, default)]
    function: Option<OpenAiFunction<'a>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ResponsesInput<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Items(#[serde(borrow)] Vec<ResponsesItem<'a>>),
}

#[derive(Deserialize)]
struct ResponsesItem<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Content<'a>>,
    #[serde(borrow, default)]
    output: Option<Content<'a>>,
}

impl<'a> ResponsesItem<'a> {
    fn into_turn(self) -> Option<Turn<'a>> {
        match self.kind.as_deref().unwrap_or("message") {
            "message" => Some(
                OpenAiMessage {
                    role: self.role.unwrap_or(Cow::Borrowed("user")),
                    content: self.content,
                }
                .into_turn(),
            ),
            "function_call_output" | "custom_tool_call_output" => {
                let (text, _) = self
                    .output
                    .map(content_text)
                    .unwrap_or((Cow::Borrowed(""), 0));
                Some(Turn {
                    role: Role::Tool,
                    text,
                    attachments: 0,
                })
            }
            "function_call" | "custom_tool_call" | "local_shell_call" => Some(Turn {
                role: Role::Assistant,
                text: Cow::Borrowed(""),
                attachments: 0,
            }),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct OpenAiFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

impl<'a> OpenAiMessage<'a> {
    fn into_turn(self) -> Turn<'a> {
        let mut role = match self.role.as_ref() {
            "system" | "developer" => Role::System,
            "assistant" => Role::Assistant,
            "tool" | "function" => Role::Tool,
            _ => Role::User,
        };
        // Anthropic tool results come back in user turns.
        if let Some(Content::Parts(parts)) = &self.content
            && !parts.is_empty()
            && parts
                .iter()
                .all(|p| p.kind.as_deref() == Some("tool_result"))
        {
            role = Role::Tool;
        }
        let (text, attachments) = self
            .content
            .map(content_text)
            .unwrap_or((Cow::Borrowed(""), 0));
        Turn {
            role,
            text,
            attachments,
        }
    }
}

/// The text parts of a content (joined by newlines) and how many parts are attachments.
fn content_text(content: Content<'_>) -> (Cow<'_, str>, usize) {
    match content {
        Content::Text(t) => (t, 0),
        Content::Parts(parts) => {
            let attachments = parts
                .iter()
                .filter(|p| p.kind.as_deref().is_some_and(is_attachment))
                .count();
            let mut texts: Vec<Cow<'_, str>> = Vec::with_capacity(parts.len());
            for p in parts {
                if let Some(t) = p.text {
                    texts.push(t);
                } else if let Some(c) = p.content {
                    texts.push(c.into_text());
                }
            }
            let text = if texts.len() == 1 {
                texts.pop().unwrap_or_default()
            } else {
                Cow::Owned(texts.join("\n"))
            };
            (text, attachments)
        }
        Content::Other(_) => (Cow::Borrowed(""), 0),
    }
}

fn is_attachment(kind: &str) -> bool {
    matches!(
        kind,
        "image_url" | "image" | "input_image" | "input_file" | "file" | "document" | "input_audio"
    )
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InnerContent<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<InnerPart<'a>>),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct InnerPart<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

impl<'a> InnerContent<'a> {
    fn into_text(self) -> Cow<'a, str> {
        match self {
            InnerContent::Text(t) => t,
            InnerContent::Parts(p) => Cow::Owned(
                p.into_iter()
                    .filter_map(|p| p.text)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            InnerContent::Other(_) => Cow::Borrowed(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_roles_text_parts_and_tools() {
        let messages: Box<RawValue> = serde_json::from_str(
            r#"[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]},{"role":"assistant","content":null,"tool_calls":[]}]"#,
        ).unwrap();
        let tools: Box<RawValue> = serde_json::from_str(
            r#"[{"type":"function","function":{"name":"edit","parameters":{}}}]"#,
        )
        .unwrap();
        let c = Conversation::from_openai(&messages, Some(&tools)).unwrap();
        assert_eq!(c.turns.len(), 3);
        assert_eq!(c.turns[0].role, Role::System);
        assert_eq!(c.turns[1].text, "a\nb");
        assert_eq!(c.turns[1].attachments, 1);
        assert_eq!(c.turns[2].text, "");
        assert_eq!(c.tools, vec!["edit"]);
    }
}
