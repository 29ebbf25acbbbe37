//! `tiergate classify`: JSON Lines in (a chat request body or `{"prompt": ...}`; Anthropic
//! Messages and Responses API bodies too), one `{"tier", "score", "reasons"}` per line out,
//! in order; a bad line gives `{"error"}`.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{self, Policy};
use std::sync::Arc;

use crate::routing::classifier::Explanation;
use crate::routing::model::Model;
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
    /// Anthropic Messages.
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    /// Responses API.
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    instructions: Option<&'a RawValue>,
}

fn conversation<'a>(l: &Line<'a>) -> Result<Conversation<'a>, String> {
    let fim = l.suffix.is_some_and(|s| s.get() != "null");
    match (l.messages, l.input, &l.prompt) {
        (Some(m), _, _) if l.system.is_some() => Conversation::from_anthropic(l.system, m, l.tools)
            .map_err(|e| format!("invalid messages: {e}")),
        (Some(m), _, _) => {
            Conversation::from_openai(m, l.tools).map_err(|e| format!("invalid messages: {e}"))
        }
        (None, Some(i), _) => Conversation::from_responses(l.instructions, i, l.tools)
            .map_err(|e| format!("invalid input: {e}")),
        (None, None, Some(p)) => Ok(Conversation::from_prompt(p.clone(), fim)),
        (None, None, None) => Err("expected \"messages\", \"input\" or \"prompt\"".into()),
    }
}

/// The decision for one input line, as the JSON value to print.
pub fn classify_line(policy: &Policy, line: &str, explain: bool) -> serde_json::Value {
    let parsed: Line<'_> = match serde_json::from_str(line) {
        Ok(l) => l,
        Err(e) => return serde_json::json!({"error": format!("invalid JSON: {e}")}),
    };
    let conv = match conversation(&parsed) {
        Ok(c) => c,
        Err(e) => return serde_json::json!({"error": e}),
    };
    let x: Explanation = classifier::explain(&conv, &policy.classifier);
    let c = &x.classification;
    let tier = &policy.tiers[decide::tier_for(policy, c)].name;
    let mut out = serde_json::json!({"tier": tier, "score": (c.score * 1e4).round() / 1e4, "reasons": c.reasons});
    if explain {
        out["reason"] = serde_json::json!(c.code);
        out["threshold"] = serde_json::json!(policy.classifier.threshold);
        out["task"] = serde_json::json!(x.task);
        out["side_call"] = serde_json::json!(x.side_call);
        out["structure"] = serde_json::to_value(&x.structure).unwrap_or_default();
        out["evidence"] = serde_json::to_value(x.evidence).unwrap_or_default();
        out["logit"] = if x.logit.is_finite() {
            serde_json::json!((x.logit * 1e4).round() / 1e4)
        } else {
            serde_json::Value::Null
        };
        out["features"] = x
            .contributions
            .iter()
            .map(|(n, w)| serde_json::json!([n, (w * 1e4).round() / 1e4]))
            .collect();
    }
    out
}

pub fn run(policy: Option<&Path>, explain: bool, model: Option<&Path>) -> ExitCode {
    let mut policy = match config::load(policy) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}");
            return ExitCode::FAILURE;
        }
    };
    // A candidate model (from `tiergate train`) instead of the embedded one.
    if let Some(path) = model {
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| Model::from_json(&t))
        {
            Ok(m) => policy.classifier = policy.classifier.with_model(Arc::new(m)),
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "{}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
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
