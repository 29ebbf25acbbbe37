//! Signs that the task is about a named project that exists outside the prompt: an owner/repo
//! slug, an issue or pull request number, a version, an @mention, a link to a repository, and
//! the sections of an issue template. Chunk by chunk, no regex.

/// Counts over the task's text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Marks {
    pub slugs: u8,
    /// `#1234`, `acme/billing#412`, `issue 77`, `/issues/12`, `/pull/3`, `@maintainer`.
    pub issue_refs: u8,
    pub versions: u8,
    /// A link to a code host (github.com, gitlab.com, bitbucket.org).
    pub repo_links: u8,
    /// Issue template sections ("Describe the bug", "Expected behavior", "Steps to reproduce").
    pub template: u8,
}

const CAP: u8 = 16;

fn bump(n: &mut u8) {
    *n = (*n + 1).min(CAP);
}

/// Words joined by a slash that are prose, not an owner and a repository.
const NOT_SLUGS: &[&str] = &[
    "and/or",
    "i/o",
    "ci/cd",
    "tcp/ip",
    "n/a",
    "w/o",
    "read/write",
    "input/output",
    "on/off",
    "yes/no",
    "true/false",
    "get/set",
    "client/server",
    "pass/fail",
    "he/she",
    "his/her",
    "km/h",
    "m/s",
    "req/s",
    "ok/cancel",
    "true/false",
    "front/back",
    "start/stop",
];

/// Template sections, lower case, as issue forms write them.
const TEMPLATE: &[&str] = &[
    "describe the bug",
    "bug description",
    "bug report",
    "expected behavior",
    "expected behaviour",
    "expected result",
    "actual behavior",
    "actual behaviour",
    "actual result",
    "current behavior",
    "current behaviour",
    "steps to reproduce",
    "to reproduce",
    "reproduction steps",
    "additional context",
    "is your feature request related",
    "describe the solution",
    "describe alternatives",
    "feature summary",
    "feature description",
    "problem statement",
    "proposed solution",
    "issue description",
    "environment",
    "version:",
    "versions:",
    "operating system",
    "reported here",
    "possible solution",
];

/// `w` is one of `list` (lower case), whatever its case.
pub fn in_list(w: &str, list: &[&str]) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(w))
}

/// `s` without `prefix` (lower case), whatever its case.
pub fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Reads `text` (the caller bounds it).
pub fn marks(text: &str) -> Marks {
    let mut m = Marks::default();
    let (mut fenced, mut comment) = (false, false);
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if trimmed.starts_with("/*") {
            comment = true;
        }
        let in_comment = comment;
        if trimmed.contains("*/") {
            comment = false;
        }
        // Code is not where a task names its project: `#include`, `@param`, `v1.2` in code.
        if fenced || in_comment || trimmed.starts_with("//") || is_decorator(trimmed) {
            continue;
        }
        let t = trimmed.trim_start_matches(['#', '*', '>', ' ', '-']);
        if t.len() < 60 && is_template_heading(t) {
            bump(&mut m.template);
        }
        let mut prev = "";
        for chunk in line.split_ascii_whitespace() {
            // Every mark has a digit, a slash, a '#', an '@' or a scheme's ':'; most words
            // have none and cost one look at their bytes.
            if !chunk
                .bytes()
                .any(|b| b.is_ascii_digit() || matches!(b, b'/' | b'#' | b'@' | b':'))
            {
                prev = chunk;
                continue;
            }
            let versions = m.versions;
            chunk_marks(chunk, &mut m);
            // "3.12" is a version after "Python" or "from", a number after "print".
            if m.versions > versions && bare_decimal(chunk) && !names_a_version(prev) {
                m.versions = versions;
            }
            if tech_version(prev, chunk) {
                bump(&mut m.versions);
            }
            prev = chunk;
        }
    }
    m
}

/// `@property`, `@app.route("/")`, `@Override`: code, not someone mentioned.
fn is_decorator(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('@') else {
        return false;
    };
    let name = rest.split_ascii_whitespace().next().unwrap_or("");
    name == rest.trim_end()
        || name.contains(['(', '.'])
        || name.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
}

fn is_template_heading(t: &str) -> bool {
    let t = t.trim_end_matches([':', '*', ' ']);
    if t.is_empty() {
        return false;
    }
    TEMPLATE.iter().any(|s| {
        let s = s.trim_end_matches(':');
        t.len() <= s.len() + 12 && strip_prefix_ci(t, s).is_some()
    })
}

fn chunk_marks(chunk: &str, m: &mut Marks) {
    // A markdown link: its text and its address are read apart.
    if let Some((text, url)) = chunk.split_once("](") {
        one_mark(text, m);
        one_mark(url, m);
        return;
    }
    one_mark(chunk, m);
}

fn one_mark(chunk: &str, m: &mut Marks) {
    let c = chunk.trim_matches(|ch: char| "()[]{}<>,;:'\"`*!?".contains(ch));
    let c = c.trim_end_matches('.');
    if c.len() < 2 || c.len() > 120 {
        return;
    }
    if let Some(rest) = c
        .strip_prefix("https://")
        .or_else(|| c.strip_prefix("http://"))
    {
        let host = rest.split('/').next().unwrap_or("");
        if matches!(
            host,
            "github.com" | "gitlab.com" | "bitbucket.org" | "codeberg.org"
        ) {
            bump(&mut m.repo_links);
            if rest.contains("/issues/") || rest.contains("/pull/") || rest.contains("/-/issues/") {
                bump(&mut m.issue_refs);
            }
        }
        return;
    }
    if c.contains("://") {
        return;
    }
    if let Some(at) = c.find('#') {
        let (before, num) = (&c[..at], &c[at + 1..]);
        if num.len() >= 2 && num.len() <= 7 && num.bytes().all(|b| b.is_ascii_digit()) {
            bump(&mut m.issue_refs);
            if is_slug(before) || plain_slug(before) {
                bump(&mut m.slugs);
            }
            return;
        }
    }
    // A project's numbered design documents: ADR-0012, RFC-77, PEP-8.
    if ["ADR-", "RFC-", "PEP-", "KEP-", "RFC"].iter().any(|p| {
        strip_prefix_ci(c, p)
            .is_some_and(|n| !n.is_empty() && n.len() <= 5 && n.bytes().all(|b| b.is_ascii_digit()))
    }) {
        bump(&mut m.issue_refs);
        return;
    }
    if let Some(user) = c.strip_prefix('@')
        && user.len() >= 3
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && user.bytes().any(|b| b.is_ascii_alphabetic())
    {
        bump(&mut m.issue_refs);
        return;
    }
    if is_slug(c) {
        bump(&mut m.slugs);
    } else if is_version(c) {
        bump(&mut m.versions);
    }
}

/// Languages, runtimes and platforms whose major version is written as a bare number
/// after the name ("PHP 8", "Angular 17", "Node 22").
const TECH: &[&str] = &[
    "php",
    "python",
    "node",
    "nodejs",
    "java",
    "angular",
    "react",
    "vue",
    "gcc",
    "clang",
    "rails",
    "ios",
    "android",
    "windows",
    "macos",
    "ubuntu",
    "debian",
    "go",
    "rust",
    "ruby",
    "perl",
    "dotnet",
    ".net",
    "net",
    "kotlin",
    "swift",
    "scala",
    "elixir",
    "erlang",
    "typescript",
    "jdk",
    "openjdk",
    "postgres",
    "postgresql",
    "mysql",
    "redis",
    "mongodb",
    "ef",
    "wordpress",
    "laravel",
    "symfony",
    "spring",
    "flutter",
    "dart",
    "godot",
    "unity",
    "electron",
    "webpack",
    "vite",
    "eslint",
    "jest",
    "gradle",
    "maven",
    "qt",
    "gtk",
    "cuda",
    "llvm",
    "chrome",
    "firefox",
    "safari",
    "django",
    "nextjs",
    "next.js",
    "nuxt",
    "ecto",
    "xcode",
];

/// `3.12` without a `v` and with two parts: a version only by what comes before it.
fn bare_decimal(chunk: &str) -> bool {
    let c = chunk.trim_matches(|ch: char| !ch.is_ascii_alphanumeric());
    c.bytes().next().is_some_and(|b| b.is_ascii_digit()) && c.matches('.').count() == 1
}

/// A word after which a decimal is a version: a capitalised name, a known technology,
/// "version", "from", "to".
fn names_a_version(prev: &str) -> bool {
    let p = prev.trim_matches(|ch: char| !ch.is_ascii_alphanumeric());
    p.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        || in_list(p, TECH)
        || in_list(
            p,
            &[
                "version", "versions", "release", "from", "to", "since", "before", "after",
            ],
        )
        || (p.contains(['-', '_']) && p.bytes().any(|b| b.is_ascii_alphabetic()))
}

fn tech_version(prev: &str, chunk: &str) -> bool {
    let n = chunk.trim_end_matches([',', '.', ';', ':', ')', '?']);
    !prev.is_empty()
        && !n.is_empty()
        && n.len() <= 3
        && n.bytes().all(|b| b.is_ascii_digit())
        && in_list(prev.trim_start_matches('('), TECH)
}

/// `owner/repo` in plain lower-case words: a slug where the context says so (before `#412`,
/// at the start of a title).
pub fn plain_slug(w: &str) -> bool {
    w.split_once('/').is_some_and(|(a, b)| {
        a.len() >= 2
            && b.len() >= 2
            && !b.contains('/')
            && a.bytes()
                .chain(b.bytes())
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
            && !in_list(w, NOT_SLUGS)
    })
}

/// `owner/repo`: two names, one slash, not a file and not two plain words of prose
/// (`uber/tango` counts only at the start of the task, see `title`).
pub fn is_slug(c: &str) -> bool {
    let Some((owner, repo)) = c.split_once('/') else {
        return false;
    };
    let name = |s: &str| {
        s.len() >= 2
            && s.len() <= 40
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if !name(owner) || !name(repo) || in_list(c, NOT_SLUGS) {
        return false;
    }
    // A file (`src/app.py`, `lib/x.rb`) is not a repository.
    if repo.contains('.') && crate::routing::features::is_path(c) {
        return false;
    }
    // Two lower-case words ("view/current") are prose unless they look like names.
    let marked = |s: &str| {
        s.bytes().any(|b| b.is_ascii_digit() || b"-_".contains(&b))
            || s.bytes().skip(1).any(|b| b.is_ascii_uppercase())
    };
    let shouting = |s: &str| s.bytes().all(|b| !b.is_ascii_lowercase());
    if shouting(owner) && shouting(repo) {
        // "UI/UX", "TCP/IP".
        return false;
    }
    marked(owner) || marked(repo) || owner.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
}

/// A version: `v2.3.1`, `3.11`, `V17`, `8.x`, `gcc13`, `net8`, `1.2.0-beta1`.
pub fn is_version(c: &str) -> bool {
    let body = c
        .strip_prefix('v')
        .or_else(|| c.strip_prefix('V'))
        .unwrap_or(c);
    let digits_first = body.bytes().next().is_some_and(|b| b.is_ascii_digit());
    if digits_first {
        let mut parts = body.split('.');
        let major = parts.next().unwrap_or("");
        let rest: Vec<&str> = parts.collect();
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !numeric(major) || major.len() > 4 {
            return false;
        }
        if rest.is_empty() {
            // A bare number is a version only after a `v`: "v17", not "17".
            return body.len() < c.len();
        }
        return rest.len() <= 4
            && rest.iter().enumerate().all(|(i, p)| {
                numeric(p)
                    || *p == "x"
                    || (i == rest.len() - 1
                        && p.bytes().next().is_some_and(|b| b.is_ascii_digit())
                        && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            });
    }
    // A tool and its version in one word: gcc13, net8, php8, es2023, ef8.
    const TOOLS: &[&str] = &[
        "gcc", "clang", "net", "php", "ef", "es", "jdk", "java", "python", "py", "node", "c++",
    ];
    TOOLS.iter().any(|t| {
        strip_prefix_ci(c, t).is_some_and(|v| {
            let v = v.trim_start_matches('-');
            !v.is_empty() && v.len() <= 4 && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_refs_and_versions_are_told_from_prose_and_files() {
        for s in [
            "FolhaSP/mosaico",
            "elixir-ecto/ecto",
            "s0md3v/Photon",
            "hpc-io/pdc",
        ] {
            assert!(is_slug(s), "{s}");
        }
        for s in [
            "and/or",
            "view/current",
            "src/app.py",
            "CI/CD",
            "a/b",
            "UI/UX",
        ] {
            assert!(!is_slug(s), "{s}");
        }
        for v in [
            "v2.3.1",
            "3.11",
            "V17",
            "8.x",
            "gcc13",
            "net8",
            "1.2.0-beta1",
            "v4.2.0",
        ] {
            assert!(is_version(v), "{v}");
        }
        for v in ["17", "2024", "hello", "x86", "a.b", "0.1+0.2"] {
            assert!(!is_version(v), "{v}");
        }
        let m = marks(
            "Close out acme/billing#412 (see #77 and @octocat), https://github.com/o/r/issues/9\n\n### Steps to reproduce\n1. run",
        );
        assert_eq!(
            (m.slugs, m.issue_refs, m.repo_links, m.template),
            (1, 4, 1, 1)
        );
        let m = marks("Sum the numbers 1, 2 and 3 and print 0.5 or #1 or a # b");
        assert_eq!(m, Marks::default());
        let code = "```\n#include <v1.2>\n@property see #123\n```\n/**\n * @param x\n */";
        assert_eq!(marks(code), Marks::default());
    }
}
