//! Secrets in requests: rules in the style of gitleaks (a regex, a least entropy, allow
//! lists) over the raw request body, behind a keyword prefilter.
//!
//! `Scanner::scan` takes the body's bytes as they arrived (the JSON text, escapes and all)
//! so that every surface is covered at once: messages, the system prompt, tool calls and
//! results, files written into the request, whatever field a client puts text in. Text
//! files sent as `data:` URLs in base64 are decoded and scanned too. One Aho-Corasick pass
//! finds the rules' keywords; a request with none of them costs that pass and nothing more.
//! Around each keyword, only a window of bytes is handed to the rule's regex.
//!
//! A finding names the rule, never the secret: the secret is not logged, counted or kept.

mod rules;

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine;
use regex::bytes::Regex;
use serde::Deserialize;

/// What happens to a request carrying a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Answered by a local upstream only; 503 when none can.
    #[default]
    Local,
    /// Refused.
    Block,
    /// Not scanned.
    Off,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Local => "local",
            Action::Block => "block",
            Action::Off => "off",
        }
    }
}

/// The policy's `secrets` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// For every rule that does not say otherwise.
    pub action: Action,
    /// Rules of the policy's own, tried after the built-in ones.
    pub rules: Vec<RuleConfig>,
    /// More placeholders: a match containing one of these (case-insensitive) is no secret.
    pub allow: Vec<String>,
    /// Built-in rules to leave out, by id.
    pub disable: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's id: the `rule` label of `tiergate_secrets_total`.
    pub name: String,
    /// A regular expression (Rust `regex` syntax) over the raw body; its first capture
    /// group, when it has one, is the secret.
    pub pattern: String,
    /// Words one of which must occur (case-insensitive) for the pattern to be tried; none:
    /// the pattern is tried on every request's whole body.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Least Shannon entropy of the secret, bits per byte.
    #[serde(default)]
    pub entropy: f64,
    #[serde(default)]
    pub action: Option<Action>,
}

/// A secret was found: by which rule, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Arc<str>,
    pub action: Action,
}

struct Rule {
    id: Arc<str>,
    regex: Regex,
    lookbehind: usize,
    /// Bytes after the keyword's start that a match must end within.
    span: usize,
    assignment: bool,
    entropy: f64,
    needs_digit: bool,
    action: Action,
}

pub struct Scanner {
    rules: Vec<Rule>,
    prefilter: AhoCorasick,
    /// For each prefilter pattern, the rule it belongs to (`usize::MAX`: the data-URL marker).
    owner: Vec<usize>,
    /// Rules without keywords: tried on the whole body.
    always: Vec<usize>,
    allow: Vec<String>,
    enabled: bool,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("rules", &self.rules.len())
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// Bytes after a keyword's start within which a match must end: built-in rules (the
/// longest, a private key's header and first line, fits), an assignment's value, and the
/// policy's rules (which may also start that far before their keyword).
const BUILTIN_SPAN: usize = 640;
const ASSIGNMENT_SPAN: usize = 320;
const POLICY_SPAN: usize = 1024;
/// The marker of a base64 data URL, whose text is decoded and scanned.
const DATA_URL: &str = ";base64,";
/// Decoded files larger than this are not scanned again (the raw text still is).
const MAX_DECODED: usize = 4 * 1024 * 1024;

/// Why a rule of the policy cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("secrets rule {name}: {message}")]
pub struct RuleError {
    pub name: String,
    pub message: String,
}

/// Shannon entropy in bits per byte.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Keeps the first finding, or a blocking one over it; true when the scan can stop.
fn keep(found: &mut Option<Finding>, f: Finding) -> bool {
    let block = f.action == Action::Block;
    if found
        .as_ref()
        .is_none_or(|old| block && old.action != Action::Block)
    {
        *found = Some(f);
    }
    block
}

/// Whether the keyword at `at` ends an upper-case name: `[A-Z][A-Z0-9_]*` before it, at a
/// word's start (or after a JSON escape such as `\n`).
fn ends_a_name(body: &[u8], at: usize) -> bool {
    let name = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_';
    let mut i = at;
    while i > 0 && name(body[i - 1]) {
        i -= 1;
    }
    // The name's own first letter: the keyword's when nothing precedes it.
    let first = body.get(i).copied().unwrap_or(0);
    if !first.is_ascii_uppercase() {
        return false;
    }
    match i.checked_sub(1).map(|j| body[j]) {
        None => true,
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => {
            // `\nAPI_KEY=`: the escape's letter is not part of the name.
            i >= 2 && body[i - 2] == b'\\' && matches!(b, b'n' | b'r' | b't' | b'b' | b'f')
        }
        Some(_) => true,
    }
}

impl Scanner {
    pub fn new(config: &SecretsConfig) -> Result<Self, RuleError> {
        let mut rules = Vec::new();
        let mut keywords: Vec<String> = Vec::new();
        let mut owner = Vec::new();
        let mut always = Vec::new();
        let bad = |name: &str, message: String| RuleError {
            name: name.to_string(),
            message,
        };
        for b in rules::builtins() {
            if config.disable.iter().any(|d| d == b.id) {
                continue;
            }
            let pattern = b.pattern.replace(r"\b(", rules::START);
            let regex =
                Regex::new(&format!("(?-u){pattern}")).map_err(|e| bad(b.id, e.to_string()))?;
            for k in b.keywords {
                keywords.push((*k).to_string());
                owner.push(rules.len());
            }
            rules.push(Rule {
                id: b.id.into(),
                regex,
                lookbehind: b.lookbehind,
                span: if b.assignment {
                    ASSIGNMENT_SPAN
                } else {
                    BUILTIN_SPAN
                },
                assignment: b.assignment,
                entropy: b.entropy,
                needs_digit: b.needs_digit,
                action: config.action,
            });
        }
        for r in &config.rules {
            if !crate::govern::keys::plain_name(&r.name) {
                return Err(bad(&r.name, "names are 1-64 of A-Z a-z 0-9 - _ . @".into()));
            }
            if rules.iter().any(|x| *x.id == r.name) {
                return Err(bad(&r.name, "a rule of that name exists".into()));
            }
            let regex = Regex::new(&r.pattern).map_err(|e| bad(&r.name, e.to_string()))?;
            if r.keywords.is_empty() {
                always.push(rules.len());
            }
            for k in r.keywords.iter().filter(|k| !k.is_empty()) {
                keywords.push(k.clone());
                owner.push(rules.len());
            }
            rules.push(Rule {
                id: r.name.as_str().into(),
                regex,
                lookbehind: POLICY_SPAN,
                span: POLICY_SPAN,
                assignment: false,
                entropy: r.entropy,
                needs_digit: false,
                action: r.action.unwrap_or(config.action),
            });
        }
        keywords.push(DATA_URL.to_string());
        owner.push(usize::MAX);
        let prefilter = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&keywords)
            .map_err(|e| bad("keywords", e.to_string()))?;
        let mut allow: Vec<String> = rules::PLACEHOLDERS.iter().map(|s| s.to_string()).collect();
        allow.extend(config.allow.iter().map(|s| s.to_ascii_lowercase()));
        Ok(Scanner {
            rules,
            prefilter,
            owner,
            always,
            allow,
            enabled: config.action != Action::Off,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The ids of every rule, for metric labels.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| &*r.id)
    }

    /// The first secret in a raw request body, preferring a rule that blocks.
    pub fn scan(&self, body: &[u8]) -> Option<Finding> {
        if !self.enabled {
            return None;
        }
        self.scan_bytes(body, 0)
    }

    fn scan_bytes(&self, body: &[u8], depth: u8) -> Option<Finding> {
        // Windows per rule, merged as they come (keywords are found in order).
        let mut found: Option<Finding> = None;
        let mut windows: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.rules.len()];
        let mut data_urls = Vec::new();
        let mut assignments = Vec::new();
        for m in self.prefilter.find_iter(body) {
            let owner = self.owner[m.pattern().as_usize()];
            if owner == usize::MAX {
                data_urls.push(m.end());
                continue;
            }
            let rule = &self.rules[owner];
            if rule.assignment {
                if ends_a_name(body, m.start()) {
                    assignments.push((owner, m.end(), (m.end() + rule.span).min(body.len())));
                }
                continue;
            }
            let start = m.start().saturating_sub(rule.lookbehind);
            let end = (m.start() + rule.span).min(body.len());
            let list = &mut windows[owner];
            match list.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => list.push((start, end)),
            }
        }
        for (i, list) in windows.iter().enumerate() {
            for &(a, b) in list {
                if self.matches(&self.rules[i], &body[a..b]) && keep(&mut found, self.finding(i)) {
                    return found;
                }
            }
        }
        // Generic assignments last: a token of a known kind names its rule better.
        for &(i, a, b) in &assignments {
            if found.is_some() && self.rules[i].action != Action::Block {
                break;
            }
            if self.matches(&self.rules[i], &body[a..b]) && keep(&mut found, self.finding(i)) {
                return found;
            }
        }
        for &i in &self.always {
            if self.matches(&self.rules[i], body) && keep(&mut found, self.finding(i)) {
                return found;
            }
        }
        if depth == 0 {
            for at in data_urls {
                if let Some(f) = self.scan_data_url(body, at)
                    && keep(&mut found, f)
                {
                    return found;
                }
            }
        }
        found
    }

    fn finding(&self, i: usize) -> Finding {
        Finding {
            rule: self.rules[i].id.clone(),
            action: self.rules[i].action,
        }
    }

    fn matches(&self, rule: &Rule, hay: &[u8]) -> bool {
        rule.regex.captures_iter(hay).any(|c| {
            let Some(secret) = c.get(1).or_else(|| c.get(0)) else {
                return false;
            };
            let s = secret.as_bytes();
            !s.is_empty()
                && entropy(s) >= rule.entropy
                && (!rule.needs_digit || s.iter().any(u8::is_ascii_digit))
                && !self.is_placeholder(s)
        })
    }

    fn is_placeholder(&self, secret: &[u8]) -> bool {
        let lower = secret.to_ascii_lowercase();
        if let Ok(text) = std::str::from_utf8(&lower)
            && rules::STOP_WORDS.contains(&text)
        {
            return true;
        }
        self.allow
            .iter()
            .any(|p| memchr::memmem::find(&lower, p.as_bytes()).is_some())
    }

    /// A `data:<type>;base64,` URL of text: decoded and scanned. Images, audio and other
    /// binary types are left alone.
    fn scan_data_url(&self, body: &[u8], at: usize) -> Option<Finding> {
        let head_start = body[..at.saturating_sub(DATA_URL.len())]
            .iter()
            .rposition(|&b| b == b'"')
            .map_or(0, |i| i + 1);
        let head = &body[head_start..at];
        let mime = head
            .strip_prefix(b"data:")?
            .split(|&b| b == b';')
            .next()?
            .to_ascii_lowercase();
        let binary = [
            &b"image/"[..],
            b"audio/",
            b"video/",
            b"application/pdf",
            b"application/zip",
            b"application/octet-stream",
        ];
        if binary.iter().any(|p| mime.starts_with(p)) {
            return None;
        }
        let len = body[at..]
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')))
            .unwrap_or(body.len() - at);
        if len == 0 || len / 4 * 3 > MAX_DECODED {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&body[at..at + len])
            .ok()?;
        self.scan_bytes(&decoded, 1)
    }
}

#[cfg(test)]
mod tests;
