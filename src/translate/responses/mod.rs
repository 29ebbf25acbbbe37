//! The OpenAI Responses API (`POST /v1/responses`, as Codex CLI speaks it) served by an
//! upstream that speaks chat completions: the request goes out as a chat request
//! (`request`), the answer comes back as a Response object (`response`) or a stream of
//! Responses events (`stream`). Anthropic upstreams are reached through the chat translation
//! (`chat_via_anthropic`), chained: Responses -> chat -> Messages and back (`chain`).
//! Upstreams that speak the Responses API themselves get the body as sent
//! (`passthrough` reads the usage off the stream).
//!
//! Dropped on purpose (no chat equivalent; the answer is still right without them):
//! `store`, `include` (so no encrypted reasoning is ever returned), `reasoning`,
//! `prompt_cache_key`, `client_metadata`, `metadata`, `truncation`, `service_tier`,
//! `user`, `text.verbosity`; input `reasoning` items; built-in tools (`web_search`,
//! `file_search`, `local_shell`, `custom`, ...): the model is not offered them.
//! Namespaced tools (`type: "namespace"`) are flattened: each inner function becomes
//! `<namespace>__<name>`, and a call to it comes back as a `function_call` with the plain
//! `name` and a `namespace` field.
//! Untranslatable (400): `previous_response_id` and `item_reference` items (they need stored
//! responses, which tiergate does not keep), `background: true`.

pub mod chain;
pub mod passthrough;
pub mod request;
pub mod response;
pub mod stream;

/// Separates a namespace from a tool name in a flattened tool's chat name.
pub const NAMESPACE_SEP: &str = "__";

/// A chat tool name back as the Responses API's (`name`, `namespace`), given the namespaces
/// the request declared.
pub fn split_name<'a>(name: &'a str, namespaces: &[String]) -> (&'a str, Option<&'a str>) {
    for ns in namespaces {
        if let Some(rest) = name
            .strip_prefix(ns.as_str())
            .and_then(|r| r.strip_prefix(NAMESPACE_SEP))
        {
            return (rest, Some(&name[..ns.len()]));
        }
    }
    (name, None)
}

/// The `status` of a finished response and, when incomplete, why.
pub fn status_of(finish_reason: Option<&str>) -> (&'static str, Option<&'static str>) {
    match finish_reason {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_names_split_back() {
        let ns = vec!["multi_agent_v1".to_string()];
        assert_eq!(
            split_name("multi_agent_v1__spawn", &ns),
            ("spawn", Some("multi_agent_v1"))
        );
        assert_eq!(split_name("exec_command", &ns), ("exec_command", None));
        assert_eq!(
            split_name("multi_agent_v1x", &ns),
            ("multi_agent_v1x", None)
        );
    }
}
