//! Which coding client sent a request, from its user agent and headers: a bounded label.
//!
//! What each client sends (recorded in tests/fixtures/clients/recorded/):
//! - codex: an `originator` header (`codex_exec`, `codex_cli_rs`) and `x-codex-*` headers;
//! - claude-code: `claude-cli/...` and `x-claude-code-session-id`;
//! - opencode: `opencode/... ai-sdk/...`;
//! - cline: the Vercel AI SDK on Bun without a name of its own
//!   (`ai-sdk/openai-compatible/... runtime/bun/...`): any other AI-SDK app on Bun is
//!   counted as cline too;
//! - continue: `ls/JS ...` (its build of the OpenAI JS SDK);
//! - aider: the OpenAI Python SDK as litellm drives it, always with `.with_raw_response`
//!   (`x-stainless-raw-response: true`); other litellm-based tools are counted as aider too.

use http::HeaderMap;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// One of: codex, claude-code, opencode, cline, continue, aider, openai-sdk, anthropic-sdk, other.
pub fn kind(headers: &HeaderMap) -> &'static str {
    let ua = header(headers, http::header::USER_AGENT.as_str()).to_ascii_lowercase();
    if headers.contains_key("originator") || ua.contains("codex") {
        "codex"
    } else if ua.starts_with("claude-cli") || headers.contains_key("x-claude-code-session-id") {
        "claude-code"
    } else if ua.starts_with("opencode") {
        "opencode"
    } else if ua.contains("cline") || (ua.starts_with("ai-sdk/") && ua.contains("runtime/bun")) {
        "cline"
    } else if ua.contains("continue") || ua.starts_with("ls/js") {
        "continue"
    } else if ua.contains("aider")
        || ua.contains("litellm")
        || (ua.starts_with("openai/python")
            && header(headers, "x-stainless-raw-response") == "true")
    {
        "aider"
    } else if ua.starts_with("openai/") || ua.starts_with("asyncopenai/") {
        "openai-sdk"
    } else if ua.starts_with("anthropic/") || ua.starts_with("asyncanthropic/") {
        "anthropic-sdk"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ua(ua: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::USER_AGENT, ua.parse().unwrap());
        h
    }

    /// The headers each client sent on its first request, as recorded.
    #[test]
    fn recognises_every_recorded_client() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/clients/recorded"
        );
        let mut seen = 0;
        for client in [
            "codex",
            "claude-code",
            "opencode",
            "cline",
            "continue",
            "aider",
        ] {
            for name in [
                format!("{client}-T1.json"),
                format!("{client}-T1-side.json"),
            ] {
                let Ok(text) = std::fs::read_to_string(format!("{dir}/{name}")) else {
                    continue;
                };
                let rec: serde_json::Value = serde_json::from_str(&text).unwrap();
                let mut h = HeaderMap::new();
                for (k, v) in rec["headers"].as_object().unwrap() {
                    h.insert(
                        http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                        v.as_str().unwrap().parse().unwrap(),
                    );
                }
                assert_eq!(kind(&h), client, "{name}");
                seen += 1;
            }
        }
        assert!(seen >= 7, "recorded fixtures missing: {seen}");
    }

    #[test]
    fn sdks_and_others() {
        assert_eq!(kind(&with_ua("OpenAI/Python 2.20.0")), "openai-sdk");
        assert_eq!(kind(&with_ua("OpenAI/JS 5.23.2")), "openai-sdk");
        assert_eq!(kind(&with_ua("Anthropic/Python 0.70.0")), "anthropic-sdk");
        assert_eq!(kind(&with_ua("curl/8")), "other");
        assert_eq!(
            kind(&with_ua("ai-sdk/openai-compatible/3.0.37 runtime/node")),
            "other"
        );
        let mut h = with_ua("x");
        h.insert("originator", "codex_exec".parse().unwrap());
        assert_eq!(kind(&h), "codex");
    }
}
