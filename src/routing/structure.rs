//! Features of the request's structure rather than its words: files referenced or attached,
//! a repository map, a diff, the tools offered, depth and size. The dev data are bare prompts,
//! so these cannot be learned from it; their weights are set by hand, small, and each one says
//! why (see `priors`).

use super::features::count_paths;
use super::input::{Conversation, Role};

/// How much conversation text (outside system turns) is scanned for paths and diffs.
const MAX_SCAN_BYTES: usize = 512 * 1024;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Structure {
    /// Distinct file paths named in user turns (without client boilerplate) and assistant
    /// turns, plus attachments.
    pub files: usize,
    pub repo_map: bool,
    /// Files touched by diffs or patches in the conversation.
    pub diff_files: usize,
    /// The client offers tools to edit or write files and to run or search: an agent turn.
    pub agent_tools: bool,
    pub tools: usize,
    /// Turns that are not system turns.
    pub depth: usize,
    /// Tool results so far (an agent session's length).
    pub tool_results: usize,
    /// Characters outside system turns.
    pub context_chars: usize,
}

const REPO_MAP_MARKERS: &[&str] = &[
    "Here are summaries of some files present in my git repository",
    "<repo_map>",
    "<repository_map>",
    "Repository map",
];

fn tool_is(name: &str, words: &[&str]) -> bool {
    let n = name.to_ascii_lowercase();
    words.iter().any(|w| n.contains(w))
}

pub fn of(conv: &Conversation<'_>) -> Structure {
    let mut s = Structure {
        tools: conv.tools.len(),
        ..Structure::default()
    };
    let edit = conv
        .tools
        .iter()
        .any(|t| tool_is(t, &["edit", "write", "patch", "replace", "create_file"]));
    let act = conv.tools.iter().any(|t| {
        tool_is(
            t,
            &[
                "bash", "shell", "exec", "command", "terminal", "run", "grep", "glob", "search",
                "read",
            ],
        )
    });
    s.agent_tools = edit && act;
    let mut paths: Vec<u64> = Vec::new();
    let mut diff_paths: Vec<u64> = Vec::new();
    let mut budget = MAX_SCAN_BYTES;
    for turn in &conv.turns {
        if turn.role == Role::System {
            continue;
        }
        s.depth += 1;
        s.context_chars += turn.text.len();
        s.files += turn.attachments;
        if turn.role == Role::Tool {
            s.tool_results += 1;
        }
        if budget == 0 {
            continue;
        }
        if turn.role == Role::Tool {
            // Tool output (directory listings, file reads) is the agent looking, not the task.
            continue;
        }
        let cleaned = if turn.role == Role::User {
            super::task::clean(&turn.text)
        } else {
            std::borrow::Cow::Borrowed(turn.text.as_ref())
        };
        let text = super::features::cut(&cleaned, budget);
        budget -= text.len();
        if !s.repo_map && REPO_MAP_MARKERS.iter().any(|m| text.contains(m)) {
            s.repo_map = true;
        }
        count_paths(text, &mut paths, 256);
        for line in text.lines() {
            let file = line
                .strip_prefix("+++ ")
                .or_else(|| line.strip_prefix("*** Update File: "))
                .or_else(|| line.strip_prefix("*** Add File: "));
            if let Some(f) = file {
                let h = f.trim().trim_start_matches("b/").len() as u64
                    ^ hash(f.trim().trim_start_matches("b/"));
                if !diff_paths.contains(&h) && diff_paths.len() < 256 {
                    diff_paths.push(h);
                }
            }
        }
    }
    s.files += paths.len();
    s.diff_files = diff_paths.len();
    s
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The hand-set evidence from structure, in logit units, with what each is called in reasons.
/// Tools alone weigh nothing: every agent offers them, for one-line tasks too.
pub fn priors(s: &Structure) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    if s.files >= 6 {
        out.push(("many files referenced", 1.0));
    } else if s.files >= 3 {
        out.push(("several files referenced", 0.5));
    }
    if s.diff_files >= 2 {
        out.push(("diff across files", 0.8));
    }
    if s.repo_map {
        out.push(("repository map", 0.5));
    }
    if s.tool_results >= 8 && s.files >= 4 {
        out.push(("long agent session over many files", 1.0));
    }
    if s.context_chars >= 60_000 {
        out.push(("large context", 0.5));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::input::Turn;
    use std::borrow::Cow;

    fn turn(role: Role, text: &'static str) -> Turn<'static> {
        Turn {
            role,
            text: Cow::Borrowed(text),
            attachments: 0,
        }
    }

    #[test]
    fn counts_files_diffs_tools_and_depth() {
        let conv = Conversation {
            turns: vec![
                turn(Role::System, "You may edit src/a.rs src/b.rs src/c.rs"),
                turn(
                    Role::User,
                    "Apply this:\n--- a/src/x.py\n+++ b/src/x.py\n@@\n--- a/src/y.py\n+++ b/src/y.py\n",
                ),
                turn(Role::Tool, "read db.py and e.py"),
                turn(
                    Role::User,
                    "<environment_details>\nf.py g.py h.py\n</environment_details>",
                ),
            ],
            tools: vec!["read_file".into(), "apply_patch".into()],
            fim: false,
        };
        let s = of(&conv);
        assert_eq!(
            s.files, 2,
            "x.py and y.py; not the system's, the tool's nor the IDE's listing: {s:?}"
        );
        assert_eq!(s.diff_files, 2);
        assert!(s.agent_tools);
        assert_eq!((s.depth, s.tool_results), (3, 1));
        let names: Vec<_> = priors(&s).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["diff across files"]);
    }

    #[test]
    fn tools_alone_add_nothing() {
        let conv = Conversation {
            turns: vec![turn(Role::User, "Write a regex")],
            tools: vec!["edit".into(), "bash".into()],
            fim: false,
        };
        let s = of(&conv);
        assert!(s.agent_tools);
        assert!(priors(&s).is_empty());
    }
}
