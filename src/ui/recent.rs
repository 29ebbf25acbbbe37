//! The latest routing decisions, for the live page: a small ring buffer that the proxy
//! appends to once per forwarded request (`proxy::record::Ledger::finish`).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use crate::config::Policy;
use crate::routing::{Conversation, Decision, task};

/// How many decisions the page can show.
pub const CAPACITY: usize = 50;
/// Characters of the task kept when the policy lets the page show prompts.
const PROMPT_SHOWN: usize = 160;

/// What the proxy knows of a decision beyond the ledger's labels.
#[derive(Debug, Clone, Default)]
pub struct Note {
    pub score: Option<f64>,
    /// The classifier's strongest features; entries quoting the prompt are dropped unless
    /// the policy allows prompts on the page.
    pub reasons: Vec<String>,
    /// The start of the user's task, only with `server.ui_show_prompts`.
    pub prompt: Option<String>,
}

impl Note {
    /// `conversation` is called only when the policy allows prompts on the page.
    pub fn of<'a>(
        policy: &Policy,
        decision: &Decision,
        conversation: impl FnOnce() -> Option<&'a Conversation<'a>>,
    ) -> Note {
        let show = policy.server.ui_show_prompts;
        let reasons = decision
            .reasons
            .iter()
            .filter(|r| show || !quotes_prompt(r))
            .cloned()
            .collect();
        let prompt = if show {
            conversation().map(|c| excerpt(&task::extract(c).text))
        } else {
            None
        };
        Note {
            score: decision.score,
            reasons,
            prompt,
        }
    }
}

/// Classifier reasons of the form `word "..." +0.40` carry words of the prompt.
fn quotes_prompt(reason: &str) -> bool {
    reason.contains('"')
}

fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(PROMPT_SHOWN) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// One finished request as the page shows it. No key, no prompt (unless allowed).
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub at_unix_ms: u64,
    pub request_id: String,
    pub endpoint: &'static str,
    pub client: &'static str,
    pub tier: String,
    pub upstream: String,
    pub reason: &'static str,
    pub score: Option<f64>,
    pub reasons: Vec<String>,
    pub status: u16,
    pub stream: bool,
    pub end: &'static str,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// A bounded, newest-last list of entries behind a short lock.
#[derive(Debug, Default)]
pub struct Recent {
    entries: Mutex<VecDeque<Entry>>,
}

impl Recent {
    pub fn push(&self, entry: Entry) {
        // A poisoned lock only means another push panicked; the data is still a list.
        let mut q = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == CAPACITY {
            q.pop_front();
        }
        q.push_back(entry);
    }

    /// Newest first.
    pub fn latest(&self) -> Vec<Entry> {
        let q = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_POLICY, parse};

    fn entry(n: u64) -> Entry {
        Entry {
            at_unix_ms: n,
            request_id: format!("r{n}"),
            endpoint: "chat_completions",
            client: "other",
            tier: "primitive".into(),
            upstream: "local".into(),
            reason: "classifier_primitive",
            score: Some(0.1),
            reasons: vec![],
            status: 200,
            stream: false,
            end: "complete",
            latency_ms: 1.0,
            ttft_ms: None,
            input_tokens: 1,
            output_tokens: 1,
            cost_usd: 0.0,
            prompt: None,
        }
    }

    #[test]
    fn keeps_the_latest_entries_newest_first() {
        let r = Recent::default();
        for n in 0..(CAPACITY as u64 + 7) {
            r.push(entry(n));
        }
        let l = r.latest();
        assert_eq!(l.len(), CAPACITY);
        assert_eq!(l[0].at_unix_ms, CAPACITY as u64 + 6);
        assert_eq!(l[CAPACITY - 1].at_unix_ms, 7);
    }

    fn note(show: bool) -> Note {
        let yaml = DEFAULT_POLICY.replace(
            "ui_show_prompts: false",
            &format!("ui_show_prompts: {show}"),
        );
        let p = parse("p", &yaml, |_| None).unwrap();
        let prompt = "Write a debounce function in JavaScript that delays calls until 300 ms have passed without a new call.";
        // A decision as the classifier makes them: one reason quotes a word of the prompt.
        let d = Decision {
            tier: p.primitive_tier,
            upstream: None,
            score: Some(0.2),
            uncertain: false,
            reason: "classifier_primitive",
            reasons: vec!["word \"debounce\"".into(), "single artifact".into()],
        };
        let conv = Conversation::from_prompt(prompt, false);
        Note::of(&p, &d, || Some(&conv))
    }

    #[test]
    fn prompt_words_stay_off_the_page_unless_allowed() {
        let hidden = note(false);
        assert!(hidden.prompt.is_none());
        assert!(
            hidden.reasons.iter().all(|r| !r.contains('"')),
            "{:?}",
            hidden.reasons
        );
        assert!(hidden.score.is_some());
        let shown = note(true);
        assert!(
            shown
                .prompt
                .as_deref()
                .unwrap()
                .starts_with("Write a debounce function")
        );
        assert!(shown.reasons.iter().any(|r| r.contains('"')));
    }

    #[test]
    fn excerpt_is_one_line_and_bounded() {
        let long = "a\nb ".repeat(200);
        let e = excerpt(&long);
        assert!(!e.contains('\n'));
        assert_eq!(e.chars().count(), PROMPT_SHOWN + 1);
    }
}
