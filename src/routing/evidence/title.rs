//! The task's first line read as an issue title or a request: an optional name before a
//! colon ("hcloud-python: ...", "React 18: ...") or an issue tag ("[Bug]", "feat:"), then what
//! is asked: a question for the assistant, one artifact, a change to a project, or a report
//! of a product misbehaving. The name alone says little (a library's how-to question names
//! one too); what follows it says whose code must change.

use std::sync::LazyLock;

use super::project::{is_slug, plain_slug};
use crate::routing::artifact;
use crate::routing::features::is_path;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ask {
    /// "how do I...", "what does X do?", "is this safe?".
    Question,
    /// One artifact: "write a field validator", "a counter component", "show me a HashMap".
    Artifact,
    /// A change to a project: "add support for", "allow setting", "do you plan to".
    Change,
    /// A product misbehaving: "crashes on Windows", "memory leak", "build error".
    Defect,
    #[default]
    Other,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Title {
    /// A name and a colon open the line.
    pub prefix: bool,
    /// That name is an owner/repo slug.
    pub prefix_slug: bool,
    /// An issue tag: "[Bug]", "[Feature]", "feat:", "fix:".
    pub tag: bool,
    pub ask: Ask,
    /// "we", "our", "us" in the line: the team's own code.
    pub ours: bool,
    /// "this", "my", "here", "below": the thing is in the prompt.
    pub points: bool,
    /// A product named as one that exists: "the desktop app", "our API", "the plugin".
    pub product: bool,
}

const MAX_TITLE: usize = 300;

/// What a piece of software that exists is called.
const PRODUCTS: &[&str] = &[
    "app",
    "application",
    "project",
    "codebase",
    "site",
    "website",
    "library",
    "backend",
    "frontend",
    "api",
    "service",
    "services",
    "cli",
    "plugin",
    "extension",
    "package",
    "editor",
    "dashboard",
    "server",
    "bot",
    "sdk",
    "provider",
    "theme",
    "repo",
    "repository",
    "monolith",
    "platform",
    "product",
    "client",
    "engine",
    "framework",
    "addon",
    "integration",
    "module",
];
const MAX_PREFIX_WORDS: usize = 6;

/// Words that make a phrase before a colon a sentence, not a name.
const NOT_NAME: &[&str] = &[
    "this",
    "that",
    "these",
    "my",
    "i",
    "we",
    "our",
    "you",
    "the",
    "a",
    "an",
    "is",
    "are",
    "here",
    "from",
    "why",
    "how",
    "what",
    "when",
    "please",
    "can",
    "could",
    "it",
    "error",
    "running",
    "fix",
    "make",
    "write",
    "note",
    "example",
    "output",
    "result",
    "question",
    "answer",
    "task",
    "problem",
    "description",
    "summary",
    "context",
    "hint",
    "update",
    "edit",
    "traceback",
];

const TAGS: &[&str] = &[
    "bug",
    "feature",
    "feature request",
    "enhancement",
    "fr",
    "request",
    "regression",
    "bug report",
    "feat",
    "fix",
    "proposal",
    "rfc",
    "improvement",
    "perf",
];

const POINTERS: &[&str] = &[
    "this",
    "these",
    "my",
    "here",
    "here's",
    "heres",
    "below",
    "following",
    "attached",
];
const OURS: &[&str] = &["we", "our", "us", "ours", "we're", "we've", "weve"];

const QUESTION_WORDS: &[&str] = &[
    "how",
    "what",
    "what's",
    "whats",
    "why",
    "which",
    "explain",
    "difference",
];

/// Words that open a question only when the line asks one ("when importing, X is missing").
const MAYBE_QUESTION: &[&str] = &[
    "is", "are", "does", "do", "can", "should", "could", "when", "where", "would", "will",
];

/// Asking a project's maintainers, anywhere in the line.
const MAINTAINERS: &[&str] = &[
    "do you plan",
    "are there plans",
    "any plans",
    "timeline for",
    "could you add",
    "can you add",
    "could you support",
    "can you support",
    "please add",
    "please include",
    "please support",
];

/// A change to a project, anywhere in the line.
const CHANGE_PHRASES: &[&str] = &[
    "add support",
    "support for",
    "plans to",
    "would be nice",
    "would be great",
    "would be useful",
    "feature request",
    "ability to",
    "option to",
    "compatibility",
    "compatible with",
    "integration",
    "capability",
];

/// Verbs that open a change to something that exists.
const CHANGE_VERBS: &[&str] = &[
    "add",
    "support",
    "allow",
    "enable",
    "expose",
    "improve",
    "remove",
    "drop",
    "bump",
    "upgrade",
    "update",
    "migrate",
    "port",
    "switch",
    "replace",
    "provide",
    "introduce",
    "refactor",
    "resolve",
    "close",
    "handle",
    "deprecate",
    "rename",
    "extract",
    "split",
    "move",
    "fix",
    "unify",
    "consolidate",
    "export",
    "expose",
    "internationalise",
    "internationalize",
    "localize",
    "localise",
    "containerise",
    "containerize",
    "modernise",
    "modernize",
    "cut",
];

/// Verbs that, after a library's name, ask the assistant for code ("Deno 2: read a JSON
/// file and print one key").
const TASK_VERBS: &[&str] = &[
    "write", "show", "give", "make", "create", "read", "parse", "sort", "send", "set", "sum",
    "convert", "rewrite", "model", "compute", "print", "list", "get", "run", "pattern", "use",
    "define", "build", "generate", "schema", "a", "an", "one", "find", "count", "format",
    "validate", "call", "declare", "render",
];

/// Verbs that ask for something new, not a change to what exists.
const NEW_VERBS: &[&str] = &["write", "create", "generate", "give"];

/// Stems of a product misbehaving.
const DEFECT: &[&str] = &[
    "crash",
    "leak",
    "error",
    "fail",
    "broke",
    "break",
    "bug",
    "regress",
    "exception",
    "missing",
    "doesn't",
    "doesnt",
    "won't",
    "wont",
    "cannot",
    "can't",
    "cant",
    "unable",
    "wrong",
    "incorrect",
    "hang",
    "freez",
    "panic",
    "segfault",
    "deadlock",
    "not work",
    "no longer",
    "stopped",
    "stuck",
    "slow",
    "invalid",
    "unexpected",
    "not respected",
    "ignored",
    "ignores",
];

pub fn read(text: &str) -> Title {
    let first = text
        .lines()
        .map(|l| l.trim().trim_start_matches(['#', ' ']))
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let first = crate::routing::features::cut(first, MAX_TITLE);
    let mut t = Title::default();
    let mut rest = first;
    for _ in 0..2 {
        if let Some(r) = strip_tag(rest) {
            t.tag = true;
            rest = r;
        } else if let Some((name, r)) = split_prefix(rest) {
            t.prefix = true;
            t.prefix_slug |= name.split_ascii_whitespace().any(|w| {
                let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
                w.split_once('/')
                    .is_some_and(|_| is_slug(w) || plain_slug(w))
            });
            rest = r;
        }
    }
    // A slug that opens the line names the project even in plain words ("planetlabs/viewpoints
    // needs the ability to...").
    let opener = rest.split_ascii_whitespace().next().unwrap_or("");
    if opener.contains('/') && (is_slug(opener) || plain_slug(opener)) && !is_path(opener) {
        t.prefix_slug = true;
    }
    let lower = rest.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .take(40)
        .collect();
    let whole = first.to_ascii_lowercase();
    let whole_words = || {
        whole
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '\''))
            .filter(|w| !w.is_empty())
    };
    t.ours = whole_words().any(|w| OURS.contains(&w));
    t.points = whole_words().any(|w| POINTERS.contains(&w));
    t.ask = ask(&lower, &words, t.prefix || t.tag, t.ours);
    if t.ask == Ask::Other && words.len() <= 8 {
        // A short title ("Test on PHP 8", "Update") says what is asked in the first lines of
        // its description.
        let body = opening_lines(text, first);
        let lower = body.to_ascii_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '\''))
            .filter(|w| !w.is_empty() && !w.starts_with('@'))
            .take(60)
            .collect();
        let a = ask(&lower, &words, false, t.ours);
        if matches!(a, Ask::Change | Ask::Defect) {
            t.ask = a;
        }
    }
    t.product = words.windows(3).any(|w| {
        (w[0] == "the" || w[0] == "our") && (PRODUCTS.contains(&w[1]) || PRODUCTS.contains(&w[2]))
    }) || words
        .windows(2)
        .any(|w| (w[0] == "the" || w[0] == "our") && PRODUCTS.contains(&w[1]));
    t
}

/// The description's first prose lines after the title (at most 400 bytes), code and
/// headings skipped.
fn opening_lines<'a>(text: &'a str, title: &str) -> &'a str {
    let after = text.find(title).map_or("", |i| &text[i + title.len()..]);
    let start = after.len() - after.trim_start().len();
    let body = &after[start..];
    let mut end = 0;
    for line in body.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || end >= 400 {
            break;
        }
        end += line.len() + 1;
    }
    crate::routing::features::cut(body, end.min(body.len()).min(400))
}

fn strip_tag(line: &str) -> Option<&str> {
    let l = line.trim_start();
    if let Some(inner) = l.strip_prefix('[') {
        let (tag, rest) = inner.split_once(']')?;
        let tag = tag.trim().to_ascii_lowercase();
        if tag.len() <= 20 && TAGS.contains(&tag.as_str()) {
            return Some(rest.trim_start_matches([':', ' ', '-']));
        }
        return None;
    }
    let (head, rest) = l.split_once(':')?;
    // `feat:`, `fix(parser):`.
    let head = head
        .split('(')
        .next()
        .unwrap_or(head)
        .trim()
        .to_ascii_lowercase();
    (TAGS.contains(&head.as_str()) && rest.starts_with(' ')).then(|| rest.trim_start())
}

/// "name: the rest", where name is a few words and no sentence, and the rest says something.
fn split_prefix(line: &str) -> Option<(&str, &str)> {
    let at = line.find(": ")?;
    let (name, rest) = (&line[..at], line[at + 2..].trim());
    // Dots are allowed: versions and domains ("reahl V6.1.0", "R.swift").
    if name.is_empty() || name.len() > 80 || name.contains(['`', '"', '?']) || name.contains(". ") {
        return None;
    }
    let words: Vec<&str> = name.split_ascii_whitespace().collect();
    if words.is_empty() || words.len() > MAX_PREFIX_WORDS {
        return None;
    }
    if words.iter().any(|w| {
        NOT_NAME.contains(
            &w.to_ascii_lowercase()
                .trim_matches(|c: char| !c.is_ascii_alphanumeric()),
        )
    }) {
        return None;
    }
    (rest.split_ascii_whitespace().count() >= 2).then_some((name, rest))
}

/// A list of phrases found anywhere in a line, in one pass.
struct Lists(Option<regex::Regex>);

impl Lists {
    fn new(phrases: &[&str]) -> Lists {
        let alternatives: Vec<String> = phrases.iter().map(|p| regex::escape(p)).collect();
        Lists(regex::Regex::new(&alternatives.join("|")).ok())
    }

    fn matches(&self, lower: &str) -> bool {
        self.0.as_ref().is_some_and(|r| r.is_match(lower))
    }
}

static MAINTAINERS_SET: LazyLock<Lists> = LazyLock::new(|| Lists::new(MAINTAINERS));
static CHANGE_SET: LazyLock<Lists> = LazyLock::new(|| Lists::new(CHANGE_PHRASES));
static DEFECT_SET: LazyLock<Lists> = LazyLock::new(|| Lists::new(DEFECT));

fn ask(lower: &str, words: &[&str], named: bool, ours: bool) -> Ask {
    let first = words.first().copied().unwrap_or("");
    let has = |set: &Lists| set.matches(lower);
    // The order matters: "could you add" asks the maintainers, "could you explain" the
    // assistant; "build error" is a defect, "build a CLI" an artifact.
    if has(&MAINTAINERS_SET) {
        return Ask::Change;
    }
    let asked =
        QUESTION_WORDS.contains(&first) || (MAYBE_QUESTION.contains(&first) && lower.contains('?'));
    if asked && !ours {
        return Ask::Question;
    }
    // Whether what is changed exists is for the caller: "Remove duplicates from a linked
    // list" names nothing that does.
    if CHANGE_VERBS.contains(&first) {
        return Ask::Change;
    }
    if artifact::names_one_artifact(lower) || (NEW_VERBS.contains(&first) && !ours) {
        return Ask::Artifact;
    }
    let second = words.get(1).copied().unwrap_or("");
    if named
        && TASK_VERBS.contains(&first)
        && !ours
        && !DEFECT.iter().any(|d| second.starts_with(d))
    {
        return Ask::Artifact;
    }
    if has(&CHANGE_SET) {
        return Ask::Change;
    }
    if has(&DEFECT_SET) {
        return Ask::Defect;
    }
    if lower.trim_end().ends_with('?') && !ours && words.iter().any(|w| *w == "i" || *w == "my") {
        return Ask::Question;
    }
    Ask::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    fn title(t: &str) -> Title {
        read(t)
    }

    #[test]
    fn a_name_then_a_change_or_a_defect_is_an_issue_title() {
        for (t, ask) in [
            ("hcloud-python: support python 3.13", Ask::Change),
            (
                "reahl V6.1.0: there seems to be a memory leak for long running processes",
                Ask::Defect,
            ),
            (
                "ngx-scrolltop: timeline for Angular 17 support? It's the only package",
                Ask::Change,
            ),
            (
                "bitsery: build error on GCC 13.x due to omission of cstdint include",
                Ask::Defect,
            ),
            (
                "dauphin-ios: feat: Add Localizable.xcstrings for i18n",
                Ask::Change,
            ),
        ] {
            let x = title(t);
            assert!(x.prefix, "{t}");
            assert_eq!(x.ask, ask, "{t}");
        }
        assert!(title("uber/tango: fix context deadline exceeded").prefix_slug);
        let x = title("[Bug] EF Core Migration doesnt work any more after upgrading");
        assert!(x.tag && !x.prefix);
        assert_eq!(x.ask, Ask::Defect);
    }

    #[test]
    fn a_name_then_a_question_or_an_artifact_is_a_request_for_the_assistant() {
        for (t, ask) in [
            (
                "pydantic v2: how do I write a field validator that strips whitespace?",
                Ask::Question,
            ),
            (
                "Deno 2: read a JSON file and print one key, with the right permission flag",
                Ask::Artifact,
            ),
            (
                "Svelte 5 runes: a counter component with $state and a derived double",
                Ask::Artifact,
            ),
            (
                "Laravel 11: write a form request class validating email",
                Ask::Artifact,
            ),
        ] {
            let x = title(t);
            assert!(x.prefix, "{t}");
            assert_eq!(x.ask, ask, "{t}");
        }
    }

    #[test]
    fn sentences_with_a_colon_are_not_names() {
        for t in [
            "Traceback from a 10-line script:",
            "Error running this Node script: `SyntaxError: Cannot use import`",
            "Fix the off-by-one:",
            "This JS throws `TypeError: this.items is undefined` when called",
        ] {
            assert!(!title(t).prefix, "{t}");
        }
        assert!(title("This Python script crashes:").points);
        let x = title("Should our team use Postgres or MongoDB for a new inventory system?");
        assert!(x.ours && x.ask != Ask::Question);
    }
}
