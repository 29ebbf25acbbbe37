//! Tool calls in disguise: small local models answer a tool-offering request with the call
//! written as JSON in the message content (bare, in ``` fences, or in Qwen's `<tool_call>`
//! tags). This finds it, checks it against the offered tool, and says what to return.
//!
//! The rule, the same for streamed and whole answers: a disguised call must open the content
//! (after whitespace, fences and tags). Content that opens with prose is an answer; when the
//! request forces a call (`tool_choice` required or named) it is a failed call.

use serde_json::Value;

use super::offer::{Choice, ToolOffer};
use super::schema;

/// Content larger than this is never scanned for a call (bounded work per response).
const MAX_SCAN: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as compact JSON text, as OpenAI sends them.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A plain answer: leave it alone.
    NotToolCall,
    Repaired(Vec<ToolCall>),
    /// Looked like (or had to be) a call, but is not a valid one; the reason is for logs.
    Failed(String),
}

/// How the start of the content classifies it, for a stream that holds content back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only whitespace so far.
    Undecided,
    /// Opens like a call (`{`, `[`, a fence or a tag): hold until the end.
    Candidate,
    Prose,
}

pub fn start_of(content: &str) -> Start {
    match content.trim_start().chars().next() {
        None => Start::Undecided,
        Some('{' | '[' | '`' | '<') => Start::Candidate,
        Some(_) => Start::Prose,
    }
}

/// What to make of an answer's content, given what the request offered.
pub fn repair(offer: &ToolOffer, content: &str) -> Outcome {
    let not_a_call = |why: &str| {
        if offer.forced() {
            Outcome::Failed(why.to_string())
        } else {
            Outcome::NotToolCall
        }
    };
    if start_of(content) != Start::Candidate {
        return not_a_call("the answer is text, not a tool call");
    }
    if content.len() > MAX_SCAN {
        return not_a_call("the answer is too long to hold a tool call");
    }
    let (prefix, values) = json_values(content.trim_start());
    if !is_wrapping(prefix) {
        return not_a_call("the answer is text, not a tool call");
    }
    let mut calls = Vec::new();
    for v in values {
        call_shapes(v, &mut calls);
    }
    if calls.is_empty() {
        return not_a_call("no tool call in the answer");
    }
    let mut out: Vec<ToolCall> = Vec::with_capacity(calls.len());
    for (name, args) in calls {
        let call = match check_call(offer, name, args) {
            Ok(c) => c,
            Err(why) => return Outcome::Failed(why),
        };
        // Models often repeat the call (bare, then fenced): one call is meant.
        if !out.contains(&call) {
            out.push(call);
        }
    }
    Outcome::Repaired(out)
}

/// The text before the first JSON value, and every JSON object or array in the text.
fn json_values(text: &str) -> (&str, Vec<Value>) {
    let mut values = Vec::new();
    let mut prefix_end = None;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with(['{', '[']) {
            let mut it = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
            if let Some(Ok(v)) = it.next() {
                prefix_end.get_or_insert(i);
                values.push(v);
                i += it.byte_offset();
                continue;
            }
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    (&text[..prefix_end.unwrap_or(text.len())], values)
}

/// Whether the text before the call is only fences and tags (```json, <tool_call>).
fn is_wrapping(prefix: &str) -> bool {
    let mut rest = prefix.trim();
    for token in ["<tool_call>", "<tools>", "```json", "```JSON", "```"] {
        rest = rest.trim_start().strip_prefix(token).unwrap_or(rest);
    }
    rest.trim().is_empty()
}

/// Collects the `(name, arguments)` of every call-shaped value: `{"name", "arguments"}`,
/// `{"name", "parameters"}`, OpenAI's `{"type":"function","function":{..}}`, a
/// `{"tool_calls":[..]}` or `{"function_call":{..}}` wrapper, and arrays of those.
fn call_shapes(v: Value, out: &mut Vec<(String, Option<Value>)>) {
    match v {
        Value::Array(items) => items.into_iter().for_each(|i| call_shapes(i, out)),
        Value::Object(mut obj) => {
            if let Some(inner) = obj.remove("tool_calls") {
                return call_shapes(inner, out);
            }
            if let Some(f) = obj
                .remove("function_call")
                .or_else(|| obj.remove("function").filter(Value::is_object))
            {
                return call_shapes(f, out);
            }
            if let Some(Value::String(name)) = obj.remove("name") {
                let args = obj.remove("arguments").or_else(|| obj.remove("parameters"));
                out.push((name, args));
            }
        }
        _ => {}
    }
}

fn check_call(offer: &ToolOffer, name: String, args: Option<Value>) -> Result<ToolCall, String> {
    let Some(tool) = offer.tool(&name) else {
        return Err(format!(
            "the answer calls {name:?}, which the request did not offer"
        ));
    };
    if let Choice::Named(want) = &offer.choice
        && want != &name
    {
        return Err(format!(
            "the request asked for a call of {want:?}, the answer calls {name:?}"
        ));
    }
    let args = match args {
        None | Some(Value::Null) => Value::Object(Default::default()),
        // Arguments as a JSON string (OpenAI's own shape) or double-encoded.
        Some(Value::String(s)) => serde_json::from_str(&s)
            .map_err(|e| format!("the arguments of {name} are not JSON: {e}"))?,
        Some(v) => v,
    };
    if !args.is_object() {
        return Err(format!("the arguments of {name} are not a JSON object"));
    }
    schema::check(&tool.parameters, &args).map_err(|e| format!("{name}: {e}"))?;
    Ok(ToolCall {
        name,
        arguments: args.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(choice: &str) -> ToolOffer {
        let body = format!(
            r#"{{"tools":[{{"type":"function","function":{{"name":"get_weather","parameters":{{"type":"object","properties":{{"city":{{"type":"string"}}}},"required":["city"]}}}}}},
                {{"type":"function","function":{{"name":"now"}}}}]{choice}}}"#
        );
        ToolOffer::from_request(body.as_bytes()).unwrap()
    }

    fn paris() -> Outcome {
        Outcome::Repaired(vec![ToolCall {
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        }])
    }

    #[test]
    fn shapes_are_repaired() {
        let o = offer("");
        for content in [
            r#"{"name": "get_weather", "arguments": {"city": "Paris"}}"#,
            "```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n```",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            r#"  {"name":"get_weather","parameters":{"city":"Paris"}}"#,
            r#"{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}"#,
            r#"{"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}"#,
            r#"{"tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]}"#,
            r#"[{"name":"get_weather","arguments":{"city":"Paris"}}]"#,
        ] {
            assert_eq!(repair(&o, content), paris(), "{content}");
        }
    }

    #[test]
    fn several_calls_and_no_argument_calls() {
        let o = offer("");
        let got = repair(
            &o,
            "{\"name\":\"now\"}\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}",
        );
        let Outcome::Repaired(calls) = got else {
            panic!("{got:?}")
        };
        assert_eq!(
            calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["now", "get_weather"]
        );
        assert_eq!(calls[0].arguments, "{}");
    }

    #[test]
    fn prose_is_left_alone_unless_a_call_is_forced() {
        let text = "It is sunny in Paris.";
        assert_eq!(repair(&offer(""), text), Outcome::NotToolCall);
        assert!(matches!(
            repair(&offer(r#","tool_choice":"required""#), text),
            Outcome::Failed(_)
        ));
        // Prose before a fenced call is an answer, the same rule as in streams.
        assert_eq!(
            repair(
                &offer(""),
                "Sure:\n```json\n{\"name\":\"get_weather\"}\n```"
            ),
            Outcome::NotToolCall
        );
        // JSON that is not a call is an answer.
        assert_eq!(
            repair(&offer(""), r#"{"city": "Paris", "temp": 21}"#),
            Outcome::NotToolCall
        );
        assert_eq!(repair(&offer(""), ""), Outcome::NotToolCall);
    }

    #[test]
    fn invalid_calls_fail() {
        let o = offer("");
        for (content, why) in [
            (
                r#"{"name":"get_weather","arguments":{}}"#,
                "city is required",
            ),
            (
                r#"{"name":"get_weather","arguments":{"city":3}}"#,
                "should be of type",
            ),
            (r#"{"name":"delete_all","arguments":{}}"#, "did not offer"),
            (
                r#"{"name":"get_weather","arguments":"{city: Paris"}"#,
                "not JSON",
            ),
            (
                r#"{"name":"get_weather","arguments":[1]}"#,
                "not a JSON object",
            ),
        ] {
            match repair(&o, content) {
                Outcome::Failed(e) => assert!(e.contains(why), "{content}: {e}"),
                other => panic!("{content}: {other:?}"),
            }
        }
        let named = offer(r#","tool_choice":{"type":"function","function":{"name":"now"}}"#);
        assert!(matches!(
            repair(&named, r#"{"name":"get_weather","arguments":{"city":"P"}}"#),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn starts_are_classified() {
        assert_eq!(start_of("  \n"), Start::Undecided);
        assert_eq!(start_of(" {\""), Start::Candidate);
        assert_eq!(start_of("```"), Start::Candidate);
        assert_eq!(start_of("Hello"), Start::Prose);
    }
}
