//! Every fenced block of a known language parses; in HTML, the inline scripts and styles
//! parse too. Blocks that are transcripts (a `>>> ` or `$ ` session) are not code.

use super::html::{self, script_lang};
use super::lang::{self, Lang, MAX_CODE_BYTES};
use super::{Block, Verdict};

/// Whether a block is an interactive session rather than a program.
fn is_transcript(lang: Lang, code: &str) -> bool {
    let first = code.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    match lang {
        Lang::Python => first.starts_with(">>>"),
        Lang::Bash => first.starts_with("$ ") || first.starts_with("# ") && code.contains("\n$ "),
        _ => false,
    }
}

/// The first syntax error of `code` as a message, None when it parses.
fn problem(lang: Lang, code: &str, at_line: usize) -> Option<String> {
    let tree = lang::parse(lang, code)?;
    if let Some((line, col)) = lang::first_error(&tree) {
        return Some(format!(
            "{} block at line {at_line}: syntax error at its line {line}, column {col}",
            lang.name()
        ));
    }
    if lang != Lang::Html {
        return None;
    }
    let doc = html::read(code)?;
    for s in &doc.scripts {
        let Some(inner) = script_lang(&s.kind) else {
            continue;
        };
        if let Some(tree) = lang::parse(inner, &s.text)
            && let Some((line, col)) = lang::first_error(&tree)
        {
            return Some(format!(
                "html block at line {at_line}: its script has a syntax error at line {}, column {col}",
                s.line + line - 1
            ));
        }
    }
    for s in &doc.styles {
        if let Some(tree) = lang::parse(Lang::Css, &s.text)
            && let Some((line, col)) = lang::first_error(&tree)
        {
            return Some(format!(
                "html block at line {at_line}: its style has a syntax error at line {}, column {col}",
                s.line + line - 1
            ));
        }
    }
    None
}

/// An answer that is a bare HTML document, not fenced.
pub fn bare_html(text: &str) -> bool {
    let t = text
        .trim_start()
        .get(..15)
        .unwrap_or("")
        .to_ascii_lowercase();
    t.starts_with("<!doctype html") || t.starts_with("<html")
}

pub fn check(text: &str, blocks: &[Block<'_>]) -> Verdict {
    let mut parsed = 0;
    let bare;
    let mut code: Vec<(Lang, &str, usize)> = blocks
        .iter()
        .filter_map(|b| Lang::from_tag(b.lang).map(|l| (l, b.code.as_str(), b.line)))
        .collect();
    if blocks.is_empty() && bare_html(text) {
        bare = text.to_string();
        code.push((Lang::Html, bare.as_str(), 1));
    }
    for (lang, code, line) in code {
        if code.len() > MAX_CODE_BYTES || code.trim().is_empty() || is_transcript(lang, code) {
            continue;
        }
        if let Some(p) = problem(lang, code, line) {
            return Verdict::Fail(p);
        }
        parsed += 1;
    }
    if parsed == 0 {
        Verdict::Skip
    } else {
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::super::fence::blocks;
    use super::*;

    fn v(text: &str) -> Verdict {
        check(text, &blocks(text))
    }

    #[test]
    fn good_bad_and_unknown_blocks() {
        assert_eq!(
            v("```python\ndef f(x):\n    return x * 2\n```"),
            Verdict::Pass
        );
        let bad = v("ok:\n```python\ndef f(x)\n    return x * 2\n```");
        assert!(
            matches!(&bad, Verdict::Fail(m) if m.starts_with("python block at line 2")),
            "{bad:?}"
        );
        assert_eq!(v("```text\nnot code ((\n```"), Verdict::Skip);
        assert_eq!(v("no blocks"), Verdict::Skip);
        assert_eq!(v("```py\n>>> f(\n...\n```"), Verdict::Skip);
    }

    #[test]
    fn scripts_and_styles_inside_html_are_parsed() {
        let good = "```html\n<!DOCTYPE html><html><body><canvas id=c></canvas>\n<script>\nconst c = document.getElementById('c');\n</script></body></html>\n```";
        assert_eq!(v(good), Verdict::Pass);
        let bad = good.replace("getElementById('c')", "getElementById('c'");
        assert!(
            matches!(v(&bad), Verdict::Fail(m) if m.contains("script") && m.contains("line 3")),
            "{:?}",
            v(&bad)
        );
        let bad_css =
            "```html\n<html><head><style>body { color: red;; }}</style></head></html>\n```";
        assert!(
            matches!(v(bad_css), Verdict::Fail(m) if m.contains("style")),
            "{:?}",
            v(bad_css)
        );
        assert_eq!(
            v("<!DOCTYPE html>\n<html><script>let a = ;</script></html>").label(),
            "fail"
        );
    }
}
