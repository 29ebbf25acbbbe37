//! A whole chat completion -> a Response object; and the pieces the stream shares with it
//! (the response envelope, output items, usage).

use serde_json::{Value, json};

use super::{split_name, status_of};
use crate::protocol::openai::Usage;
use crate::protocol::openai_chat::{ChatCompletion, ToolCall};

/// What every Response object of one request shares.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: String,
    pub created_at: u64,
    pub model: String,
    pub namespaces: Vec<String>,
}

impl Envelope {
    pub fn new(id_seed: u64, created_at: u64, model: &str, namespaces: Vec<String>) -> Self {
        Envelope {
            id: format!("resp_{id_seed:016x}"),
            created_at,
            model: model.to_string(),
            namespaces,
        }
    }

    /// The Response object with `status`, `output` and `usage`.
    pub fn response(
        &self,
        status: &str,
        incomplete: Option<&str>,
        output: Vec<Value>,
        usage: Option<&Usage>,
        error: Option<Value>,
    ) -> Value {
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": incomplete.map(|r| json!({"reason": r})),
            "model": self.model,
            "output": output,
            "usage": usage.map(usage_json),
        })
    }

    /// A `function_call` output item for a chat tool call.
    pub fn function_call(&self, item_id: &str, call: &ToolCall, status: &str) -> Value {
        let (name, namespace) = split_name(&call.function.name, &self.namespaces);
        let mut item = json!({
            "type": "function_call",
            "id": item_id,
            "call_id": call.id,
            "name": name,
            "arguments": call.function.arguments,
            "status": status,
        });
        if let Some(ns) = namespace {
            item["namespace"] = json!(ns);
        }
        item
    }
}

pub fn message_item(item_id: &str, text: &str, status: &str) -> Value {
    json!({
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": if status == "in_progress" { json!([]) } else { json!([text_part(text)]) },
    })
}

pub fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

/// Usage in the Responses API's terms.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens()},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// A whole chat completion as a Response object, and its usage for the ledger.
pub fn translate(resp: ChatCompletion, env: &Envelope) -> (Value, Option<Usage>) {
    let usage = resp.usage.map(|u| Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        prompt_tokens_details: Some(crate::protocol::openai::PromptDetails {
            cached_tokens: Some(u.cached()),
        }),
    });
    let mut output = Vec::new();
    let choice = resp.choices.into_iter().next();
    let finish = choice.as_ref().and_then(|c| c.finish_reason.clone());
    if let Some(c) = choice {
        let text = c.message.content.or(c.message.refusal).unwrap_or_default();
        if !text.is_empty() {
            output.push(message_item(&format!("msg_{}", env.id), &text, "completed"));
        }
        for (i, call) in c.message.tool_calls.unwrap_or_default().iter().enumerate() {
            output.push(env.function_call(&format!("fc_{}_{i}", env.id), call, "completed"));
        }
    }
    let (status, incomplete) = status_of(finish.as_deref());
    (
        env.response(status, incomplete, output, usage.as_ref(), None),
        usage,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_tool_calls_become_items() {
        let resp: ChatCompletion = serde_json::from_value(json!({
            "id": "x", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Writing it.",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "ns__f", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        }))
        .unwrap();
        let env = Envelope::new(1, 2, "m", vec!["ns".into()]);
        let (r, u) = translate(resp, &env);
        assert_eq!(r["status"], "completed");
        assert_eq!(r["output"][0]["content"][0]["text"], "Writing it.");
        assert_eq!(r["output"][1]["name"], "f");
        assert_eq!(r["output"][1]["namespace"], "ns");
        assert_eq!(r["output"][1]["call_id"], "call_1");
        assert_eq!(r["usage"]["total_tokens"], 15);
        assert_eq!(u.unwrap().prompt_tokens, 10);
    }

    #[test]
    fn length_is_incomplete() {
        let resp: ChatCompletion = serde_json::from_value(json!({
            "choices": [{"finish_reason": "length", "message": {"content": "abc"}}]
        }))
        .unwrap();
        let (r, u) = translate(resp, &Envelope::new(1, 2, "m", vec![]));
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        assert!(u.is_none());
    }
}
