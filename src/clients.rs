//! Which coding client sent a request, from its user agent and headers: a bounded label.

use http::HeaderMap;

/// One of: codex, claude-code, opencode, cline, continue, aider, openai-sdk, anthropic-sdk, other.
pub fn kind(headers: &HeaderMap) -> &'static str {
    let ua = headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ua = ua.to_ascii_lowercase();
    if headers.contains_key("originator") || ua.contains("codex") {
        "codex"
    } else if ua.starts_with("claude-cli") || headers.contains_key("x-claude-code-session-id") {
        "claude-code"
    } else if ua.starts_with("opencode") {
        "opencode"
    } else if ua.contains("cline") {
        "cline"
    } else if ua.contains("continue") || ua.starts_with("ls/js") {
        "continue"
    } else if ua.contains("aider") || ua.contains("litellm") {
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

    #[test]
    fn recognises_recorded_user_agents() {
        assert_eq!(kind(&with_ua("claude-cli/2.1.332 (external, sdk-cli)")), "claude-code");
        assert_eq!(kind(&with_ua("opencode/1.18.33 ai-sdk/provider-utils/4.0.23 runtime/bun")), "opencode");
        assert_eq!(kind(&with_ua("OpenAI/Python 2.20.0")), "openai-sdk");
        assert_eq!(kind(&with_ua("ls/JS 5.23.2")), "continue");
        assert_eq!(kind(&with_ua("curl/8")), "other");
        let mut h = with_ua("x");
        h.insert("originator", "codex_exec".parse().unwrap());
        assert_eq!(kind(&h), "codex");
    }
}
