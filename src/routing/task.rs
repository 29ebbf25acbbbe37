//! Finding the user's task in a request, wherever the client put it, apart from the client's
//! boilerplate; and recognising side calls (titles, compaction) that are not a task at all.
//!
//! Shapes handled (see tests/fixtures/clients/): Claude Code puts `<system-reminder>` blocks in
//! the user turn and a `system` turn after it; aider puts the task second to last, before a
//! system reminder, after few-shot example turns; cline's headless mode adds a "[SYSTEM] ..."
//! nudge; opencode wraps the task in double quotes; Codex sends `<environment_context>` as a
//! user turn before the task. The system prompt and the tool list are never the task.

use std::borrow::Cow;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use super::input::{Conversation, Role};

/// The task and where it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Task<'a> {
    pub text: Cow<'a, str>,
    /// Index of the turn it came from.
    pub turn: Option<usize>,
    /// Set for a side call: what kind.
    pub side_call: Option<&'static str>,
}

/// Tags whose whole content is client boilerplate inside a user turn.
const BOILERPLATE_TAGS: &[&str] = &[
    "system-reminder",
    "environment_context",
    "environment_details",
    "env",
    "user_instructions",
    "INSTRUCTIONS",
];

/// A user turn that is only a client's nudge, not something the user typed.
fn is_nudge(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("[SYSTEM]")
        || t.starts_with("[ERROR] You did not use a tool")
        || t.starts_with("# AGENTS.md instructions")
}

/// Side calls, recognised by the start of the system prompt or of the user turn (lowercased).
const SIDE_CALLS: &[(&str, &str)] = &[
    ("title", "title generator"),
    ("title", "generate a title for this conversation"),
    ("title", "generate a short title"),
    ("title", "generate a concise title"),
    ("title", "title for this conversation"),
    ("title", "sentence-case title"),
    ("compaction", "summarize the provided coding session"),
    (
        "compaction",
        "create a detailed summary of the conversation",
    ),
    ("compaction", "summarize this partial conversation"),
    ("compaction", "summarize the conversation so far"),
    ("compaction", "context checkpoint compaction"),
    ("commit_message", "one-line git commit messages"),
    ("commit_message", "generate a commit message"),
    ("topic", "indicates a new conversation topic"),
];

/// How much of a system prompt or user turn is searched for a side-call marker.
const SIDE_CALL_SCAN: usize = 1024;

/// The side-call markers in one automaton (ASCII case folded, as the markers are lowercase
/// ASCII); None only if it cannot be built, and then the markers are searched one by one.
static MARKERS: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(SIDE_CALLS.iter().map(|(_, m)| m))
        .ok()
});

/// Which side call this is, if any.
pub fn side_call(conv: &Conversation<'_>) -> Option<&'static str> {
    let mut texts = conv
        .turns
        .iter()
        .filter(|t| t.role == Role::System)
        .map(|t| t.text.as_ref())
        .take(2);
    let first_user = conv
        .turns
        .iter()
        .find(|t| t.role == Role::User)
        .map(|t| t.text.as_ref());
    let last_user = conv
        .turns
        .iter()
        .rev()
        .find(|t| t.role == Role::User)
        .map(|t| t.text.as_ref());
    let mut check = |text: &str| {
        let head = super::features::cut(text, SIDE_CALL_SCAN);
        let Some(markers) = &*MARKERS else {
            let head = head.to_ascii_lowercase();
            return SIDE_CALLS
                .iter()
                .find(|(_, m)| head.contains(m))
                .map(|(k, _)| *k);
        };
        // One pass for all markers; the first marker in list order that occurs wins.
        markers
            .find_overlapping_iter(head)
            .map(|m| m.pattern().as_usize())
            .min()
            .map(|i| SIDE_CALLS[i].0)
    };
    if let Some(k) = texts.by_ref().find_map(&mut check) {
        return Some(k);
    }
    first_user.into_iter().chain(last_user).find_map(check)
}

/// Reminders of its edit format that aider appends to the user's turn (for models it has no
/// settings for, such as `auto`); everything from one of them on is boilerplate.
const TRAILING_REMINDERS: &[&str] = &[
    "\n\nTo suggest changes to a file you MUST return",
    "\n\n# *SEARCH/REPLACE block* Rules:",
    "\n\n# File editing rules:",
];

fn cut_trailing_reminder(text: &str) -> &str {
    TRAILING_REMINDERS
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .map_or(text, |i| &text[..i])
}

/// Removes `<tag ...>...</tag>` blocks of client boilerplate and trailing edit-format
/// reminders; unwraps `<user_input>`.
pub fn clean(text: &str) -> Cow<'_, str> {
    let text = cut_trailing_reminder(text);
    if !text.contains('<') {
        return Cow::Borrowed(unquote(text.trim()));
    }
    let mut out = Cow::Borrowed(text);
    for tag in BOILERPLATE_TAGS {
        if out.contains(&format!("<{tag}")) {
            out = Cow::Owned(strip_blocks(&out, tag));
        }
    }
    // Cline's IDE extension sends `<task>...</task>`; keep what is inside.
    if let Some((_, rest)) = out.split_once("<task>")
        && let Some((inner, _)) = rest.split_once("</task>")
    {
        out = Cow::Owned(inner.to_string());
    }
    if let Some(inner) = out
        .trim_start()
        .strip_prefix("<user_input")
        .and_then(|r| r.split_once('>'))
        .map(|(_, r)| r.replace("</user_input>", ""))
    {
        out = Cow::Owned(inner);
    }
    match out {
        Cow::Borrowed(b) => Cow::Borrowed(unquote(b.trim())),
        Cow::Owned(s) => Cow::Owned(unquote(s.trim()).to_string()),
    }
}

/// opencode quotes each argv item that has a space: `"task"` -> `task`.
fn unquote(t: &str) -> &str {
    match t.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) if !inner.contains('"') => inner.trim(),
        _ => t,
    }
}

fn strip_blocks(text: &str, tag: &str) -> String {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        // `<env` must not eat `<environment_context>`: the tag name ends at '>' or whitespace.
        let after = &rest[i + open.len()..];
        if !after.starts_with(['>', ' ', '\n']) {
            out.push_str(&rest[..i + open.len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..i]);
        match after.find(&close) {
            Some(j) => rest = &after[j + close.len()..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The user's task: the last user turn that still says something once the client's
/// boilerplate is removed, and is not a client nudge.
pub fn extract<'c>(conv: &'c Conversation<'_>) -> Task<'c> {
    let side = side_call(conv);
    for (i, turn) in conv.turns.iter().enumerate().rev() {
        if turn.role != Role::User || is_nudge(&turn.text) {
            continue;
        }
        let text = clean(&turn.text);
        if !text.is_empty() {
            return Task {
                text,
                turn: Some(i),
                side_call: side,
            };
        }
    }
    Task {
        text: Cow::Borrowed(""),
        turn: None,
        side_call: side,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::input::Turn;

    fn conv(turns: &[(Role, &'static str)]) -> Conversation<'static> {
        Conversation {
            turns: turns
                .iter()
                .map(|(r, t)| Turn {
                    role: *r,
                    text: Cow::Borrowed(*t),
                    attachments: 0,
                })
                .collect(),
            tools: Vec::new(),
            fim: false,
        }
    }

    #[test]
    fn reminders_and_env_blocks_are_removed() {
        let t =
            "<system-reminder>\nAs you answer, attribute commits.\n</system-reminder>\nFix the bug";
        assert_eq!(clean(t), "Fix the bug");
        let t = "<environment_context>\n<cwd>/x</cwd>\n</environment_context>";
        assert_eq!(clean(t), "");
        assert_eq!(clean("\"Write a regex\""), "Write a regex");
        assert_eq!(clean("say \"hi\" to \"you\""), "say \"hi\" to \"you\"");
        assert_eq!(clean("<user_input mode=\"yolo\">Do X</user_input>"), "Do X");
        assert_eq!(clean("keep <envelope> tags"), "keep <envelope> tags");
        let t = "Fix it\n\nTo suggest changes to a file you MUST return the entire content";
        assert_eq!(clean(t), "Fix it");
        let t = "<task>\nAdd SSO\n</task>\n<environment_details>\n# Files\napp.py\n</environment_details>";
        assert_eq!(clean(t), "Add SSO");
    }

    #[test]
    fn the_task_is_not_the_nudge_nor_the_trailing_system_turn() {
        let c = conv(&[
            (Role::System, "You are Cline"),
            (Role::User, "Write a regex for dates"),
            (
                Role::User,
                "[SYSTEM] This run is not complete until you call submit_and_exit",
            ),
            (Role::System, "reminder"),
        ]);
        let t = extract(&c);
        assert_eq!(
            (t.text.as_ref(), t.turn, t.side_call),
            ("Write a regex for dates", Some(1), None)
        );
    }

    #[test]
    fn side_calls_are_recognised() {
        let c = conv(&[
            (
                Role::System,
                "You are a title generator. You output ONLY a thread title.",
            ),
            (Role::User, "Generate a title for this conversation:\n"),
            (Role::User, "\"Plan a migration\""),
        ]);
        assert_eq!(side_call(&c), Some("title"));
        let c = conv(&[
            (
                Role::System,
                "Summarize the provided coding session so that work can continue.",
            ),
            (Role::User, "<user_input mode=\"yolo\">x</user_input> ..."),
        ]);
        assert_eq!(side_call(&c), Some("compaction"));
        let c = conv(&[
            (Role::System, "You are a coding agent."),
            (Role::User, "Add a title to the page"),
        ]);
        assert_eq!(side_call(&c), None);
        // Any case; of two markers, the one listed first wins, wherever it occurs.
        let c = conv(&[
            (
                Role::System,
                "SUMMARIZE THE CONVERSATION SO FAR, then a Title For This Conversation.",
            ),
            (Role::User, "x"),
        ]);
        assert_eq!(side_call(&c), Some("title"));
    }
}
