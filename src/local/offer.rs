//! The tools a chat request offers and whether it forces a call (`tool_choice`).

use crate::protocol::scan;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct ToolOffer {
    pub tools: Vec<Tool>,
    pub choice: Choice,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    /// The function's JSON schema (`{}` when the request gives none).
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Auto,
    Required,
    Named(String),
}

impl ToolOffer {
    /// The offer of a chat request body; None when it offers no function tool or says
    /// `tool_choice: "none"` (then a JSON answer is just an answer).
    pub fn from_request(body: &[u8]) -> Option<ToolOffer> {
        #[derive(Deserialize)]
        struct Req {
            #[serde(default)]
            tools: Option<Vec<Value>>,
            #[serde(default)]
            tool_choice: Option<Value>,
        }
        // Most requests offer no tools: a scan spares them a parse.
        if !scan::value_starts(body, &scan::TOOLS).any(|b| b == b'[') {
            return None;
        }
        let req: Req = serde_json::from_slice(body).ok()?;
        let tools: Vec<Tool> = req
            .tools?
            .iter()
            .filter_map(|t| {
                let f = t.get("function")?;
                Some(Tool {
                    name: f.get("name")?.as_str()?.to_string(),
                    parameters: f
                        .get("parameters")
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Default::default())),
                })
            })
            .collect();
        if tools.is_empty() {
            return None;
        }
        let choice = match &req.tool_choice {
            Some(Value::String(s)) if s == "none" => return None,
            Some(Value::String(s)) if s == "required" => Choice::Required,
            Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
                Some(name) => Choice::Named(name.to_string()),
                None => Choice::Auto,
            },
            None => Choice::Auto,
        };
        Some(ToolOffer { tools, choice })
    }

    /// Whether the answer must be a tool call.
    pub fn forced(&self) -> bool {
        self.choice != Choice::Auto
    }

    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOLS: &str = r#""tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]"#;

    #[test]
    fn choices_are_read() {
        let offer = |extra: &str| ToolOffer::from_request(format!("{{{TOOLS}{extra}}}").as_bytes());
        assert_eq!(offer("").unwrap().choice, Choice::Auto);
        assert_eq!(
            offer(r#","tool_choice":"auto""#).unwrap().choice,
            Choice::Auto
        );
        assert_eq!(
            offer(r#","tool_choice":"required""#).unwrap().choice,
            Choice::Required
        );
        let named =
            offer(r#","tool_choice":{"type":"function","function":{"name":"get_weather"}}"#)
                .unwrap();
        assert_eq!(named.choice, Choice::Named("get_weather".into()));
        assert!(offer(r#","tool_choice":"none""#).is_none());
        assert_eq!(offer("").unwrap().tools[0].name, "get_weather");
    }

    #[test]
    fn no_tools_no_offer() {
        assert!(ToolOffer::from_request(br#"{"messages":[]}"#).is_none());
        assert!(ToolOffer::from_request(br#"{"tools":[]}"#).is_none());
        assert!(ToolOffer::from_request(b"not json").is_none());
    }
}
