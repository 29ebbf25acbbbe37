//! `tiergate classify`: JSON Lines in (a chat request body or `{"prompt": ...}`), one
//! `{"tier", "score", "reasons"}` per line out, in order; a bad line gives `{"error"}`.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{self, Policy};
use crate::routing::{Conversation, classifier, decide};

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(borrow, default)]
    suffix: Option<&'a RawValue>,
}

/// The decision for one input line, as the JSON value to print.
pub fn classify_line(policy: &Policy, line: &str, explain: bool) -> serde_json::Value {
    let parsed: Line<'_> = match serde_json::from_str(line) {
        Ok(l) => l,
        Err(e) => return serde_json::json!({"error": format!("invalid JSON: {e}")}),
    };
    let fim = parsed.suffix.is_some_and(|s| s.get() != "null");
    let conv = match (&parsed.messages, &parsed.prompt) {
        (Some(m), _) => match Conversation::from_openai(m, parsed.tools) {
            Ok(c) => c,
            Err(e) => return serde_json::json!({"error": format!("invalid messages: {e}")}),
        },
        (None, Some(p)) => Conversation::from_prompt(p.as_str(), fim),
        (None, None) => return serde_json::json!({"error": "expected \"messages\" or \"prompt\""}),
    };
    let c = classifier::classify(&conv);
    let tier = &policy.tiers[decide::tier_for(policy, &c)].name;
    let mut out = serde_json::json!({"tier": tier, "score": (c.score * 1e4).round() / 1e4, "reasons": c.reasons});
    if explain {
        out["reason"] = serde_json::json!(c.code);
        out["threshold"] = serde_json::json!(policy.classifier.threshold);
    }
    out
}

pub fn run(policy: Option<&Path>, explain: bool) -> ExitCode {
    let policy = match config::load(policy) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}");
            return ExitCode::FAILURE;
        }
    };
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "reading stdin: {e}");
                return ExitCode::FAILURE;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let v = classify_line(&policy, &line, explain);
        if writeln!(out, "{v}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}
