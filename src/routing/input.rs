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
        let tools = match tools {
            Some(raw) => serde_json::from_str::<Option<Vec<OpenAiTool<'a>>>>(raw.get())
                .unwrap_or_default()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.function.map(|f| f.name))
                .collect(),
            None => Vec::new(),
        };
        Ok(Conversation {
            turns,
            tools,
            fim: false,
        })
    }

    /// From an Anthropic Messages request: `system` becomes a system turn, each message one
    /// turn (Claude Code's mid-conversation `system` role included), except that the
    /// `tool_result` blocks of a user message are a tool turn of their own, before it.
    pub fn from_anthropic(
        messages: &'a RawValue,
        system: Option<&'a RawValue>,
        tools: Option<&'a RawValue>,
    ) -> Result<Self, serde_json::Error> {
        use crate::protocol::anthropic::{Block, Content, Message, Tool};
        let messages: Vec<Message> = serde_json::from_str(messages.get())?;
        let mut turns = Vec::with_capacity(messages.len() + 1);
        if let Some(s) = system.and_then(|s| serde_json::from_str::<Content>(s.get()).ok()) {
            turns.push(Turn {
                role: Role::System,
                text: Cow::Owned(s.text()),
                attachments: 0,
            });
        }
        for m in messages {
            let role = match m.role.as_str() {
                "system" => Role::System,
                "assistant" => Role::Assistant,
                _ => Role::User,
            };
            let blocks = m.content.into_blocks();
            let results: Vec<String> = blocks
                .iter()
                .filter_map(|b| match b {
                    Block::ToolResult {
                        content: Some(c), ..
                    } => Some(c.text()),
                    Block::ToolResult { .. } => Some(String::new()),
                    _ => None,
                })
                .collect();
            if !results.is_empty() {
                turns.push(Turn {
                    role: Role::Tool,
                    text: Cow::Owned(results.join("\n")),
                    attachments: 0,
                });
            }
            let texts: Vec<&str> = blocks
                .iter()
                .filter_map(|b| match b {
                    Block::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            let attachments = blocks
                .iter()
                .filter(|b| matches!(b, Block::Image { .. } | Block::Other))
                .count();
            if !texts.is_empty() || attachments > 0 || results.is_empty() {
                turns.push(Turn {
                    role,
                    text: Cow::Owned(texts.join("\n")),
                    attachments,
                });
            }
        }
        let tools = tools
            .and_then(|t| serde_json::from_str::<Vec<Tool>>(t.get()).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|t| Cow::Owned(t.name))
            .collect();
        Ok(Conversation {
            turns,
            tools,
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
}

#[derive(Deserialize)]
struct OpenAiTool<'a> {
    #[serde(borrow, default)]
    function: Option<OpenAiFunction<'a>>,
}

#[derive(Deserialize)]
struct OpenAiFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

impl<'a> OpenAiMessage<'a> {
    fn into_turn(self) -> Turn<'a> {
        let role = match self.role.as_ref() {
            "system" | "developer" => Role::System,
            "assistant" => Role::Assistant,
            "tool" | "function" => Role::Tool,
            _ => Role::User,
        };
        let (text, attachments) = match self.content {
            Some(Content::Text(t)) => (t, 0),
            Some(Content::Parts(parts)) => {
                let mut texts = parts.iter().filter_map(|p| p.text.as_deref()).peekable();
                let first = texts.next().unwrap_or("");
                let text = if texts.peek().is_none() {
                    Cow::Owned(first.to_string())
                } else {
                    Cow::Owned(
                        std::iter::once(first)
                            .chain(texts)
                            .collect::<Vec<_>>()
                            .join("\n"),
                    )
                };
                let attachments = parts
                    .iter()
                    .filter(|p| p.kind.as_deref().is_some_and(|k| k != "text"))
                    .count();
                (text, attachments)
            }
            Some(Content::Other(_)) | None => (Cow::Borrowed(""), 0),
        };
        Turn {
            role,
            text,
            attachments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_anthropic_requests_the_claude_code_way() {
        let body: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/anthropic/claude_code_request.json"
        ))
        .unwrap();
        let raw = |k: &str| serde_json::value::to_raw_value(&body[k]).unwrap();
        let (m, s, t) = (raw("messages"), raw("system"), raw("tools"));
        let c = Conversation::from_anthropic(&m, Some(&s), Some(&t)).unwrap();
        let roles: Vec<Role> = c.turns.iter().map(|t| t.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::System]);
        assert!(c.turns[1].text.ends_with("bouncing under gravity."));
        assert_eq!(c.tools, vec!["Write", "DeferredToolPlaceholder"]);
        let m: Box<RawValue> = serde_json::from_str(r#"[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"out"},{"type":"text","text":"go on"}]}]"#).unwrap();
        let c = Conversation::from_anthropic(&m, None, None).unwrap();
        assert_eq!(
            (c.turns[0].role, c.turns[0].text.as_ref()),
            (Role::Tool, "out")
        );
        assert_eq!(
            (c.turns[1].role, c.turns[1].text.as_ref()),
            (Role::User, "go on")
        );
    }

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
