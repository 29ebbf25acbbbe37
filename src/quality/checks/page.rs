//! The self-contained page check: when the task asks for a single-file HTML page, the answer
//! holds one HTML document that loads nothing from elsewhere (no external `src`, no
//! stylesheet `href`, no `@import`, no module import or fetch of a URL), with a canvas and a
//! script when the task asks for them.

use std::sync::LazyLock;

use regex::Regex;

use super::html::{self, Doc};
use super::lang::Lang;
use super::syntax::bare_html;
use super::{Block, Verdict};

/// What a task asks of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageAsk {
    pub canvas: bool,
    pub script: bool,
}

fn re(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

static HTML: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"(?i)\b(html5?|web ?page|browser page)\b"));
static SINGLE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"(?i)(single[- ]file|one file|single html|one html|self[- ]contained|stand-?alone|zero[- ]dependenc|no (external )?(dependenc|librar|framework|cdn)|without (any )?(external )?(dependenc|librar|framework)|inline (css|js|javascript|script|style)|in one file|a single page)",
    )
});
static NO_SCRIPT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"(?i)\b(no|without( any)?|css only|css-only)\s*(javascript|js|scripts?)\b|\binline css only\b",
    )
});
static CANVAS: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"(?i)\bcanvas\b"));
static SCRIPTED: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"(?i)\b(canvas|anim\w*|javascript|js|script|interactive|game|click\w*|simulat\w*|physics|moving|bounc\w*)\b",
    )
});
/// References from script or style text to something outside the page.
static EXTERNAL_CODE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r#"(?i)(@import\b|\bimport\s*(?:[\w*{}\s,]+\s+from\s*)?["']|\bimport\s*\(\s*["']|\bimportScripts\s*\(|\bfetch\s*\(\s*["'`](https?:)?//|url\(\s*["']?(https?:)?//)"#,
    )
});

fn is(r: &LazyLock<Option<Regex>>, text: &str) -> bool {
    r.as_ref().is_some_and(|r| r.is_match(text))
}

/// Whether (and what) the task asks for a single-file HTML page: it names HTML or a web page,
/// and a single file (or a canvas, which is only ever asked for in one page).
pub fn asks_page(task: &str) -> Option<PageAsk> {
    if !(is(&HTML, task) && (is(&SINGLE, task) || is(&CANVAS, task))) {
        return None;
    }
    Some(PageAsk {
        canvas: is(&CANVAS, task),
        script: is(&CANVAS, task) || is(&SCRIPTED, task) && !is(&NO_SCRIPT, task),
    })
}

/// A URL that is part of the page itself: a fragment, a data or blob URL, nothing.
fn inline_url(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    v.is_empty()
        || v.starts_with('#')
        || v.starts_with("data:")
        || v.starts_with("blob:")
        || v.starts_with("javascript:")
        || v == "about:blank"
}

/// The first reference of the page to something outside it.
fn external(doc: &Doc) -> Option<String> {
    for a in &doc.attrs {
        let outside = match (a.tag.as_str(), a.name.as_str()) {
            (_, "src" | "srcset") | ("object", "data") | ("link", "href") => !inline_url(&a.value),
            (_, "style") => is(&EXTERNAL_CODE, &a.value),
            _ => false,
        };
        if outside {
            return Some(format!(
                "<{} {}=\"{}\"> loads a file from elsewhere",
                a.tag, a.name, a.value
            ));
        }
    }
    for (what, inline) in doc
        .scripts
        .iter()
        .map(|s| ("script", s))
        .chain(doc.styles.iter().map(|s| ("style", s)))
    {
        if let Some(m) = EXTERNAL_CODE.as_ref().and_then(|r| r.find(&inline.text)) {
            return Some(format!(
                "its {what} imports from elsewhere ({})",
                m.as_str().trim()
            ));
        }
    }
    None
}

pub fn check(task: &str, text: &str, blocks: &[Block<'_>]) -> Verdict {
    let Some(ask) = asks_page(task) else {
        return Verdict::Skip;
    };
    let mut pages: Vec<&str> = blocks
        .iter()
        .filter(|b| Lang::from_tag(b.lang) == Some(Lang::Html))
        .map(|b| b.code.as_str())
        .collect();
    if blocks.is_empty() && bare_html(text) {
        pages.push(text);
    }
    let whole = |p: &&&str| {
        let l = p.to_ascii_lowercase();
        l.contains("<html") || l.contains("<body") || l.contains("<!doctype")
    };
    let documents = pages.iter().filter(whole).count();
    if documents > 1 {
        return Verdict::Fail(format!("{documents} HTML documents, not one"));
    }
    // The document, or else the longest fragment.
    let Some(page) = pages
        .iter()
        .find(whole)
        .or_else(|| pages.iter().max_by_key(|p| p.len()))
    else {
        return Verdict::Fail("no HTML document in the answer".into());
    };
    let Some(doc) = html::read(page) else {
        return Verdict::Skip;
    };
    if let Some(why) = external(&doc) {
        return Verdict::Fail(why);
    }
    let scripts = doc.scripts.iter().any(|s| !s.text.trim().is_empty());
    let canvas = doc.has_tag("canvas")
        || doc.scripts.iter().any(|s| {
            s.text.contains("createElement('canvas')")
                || s.text.contains("createElement(\"canvas\")")
        });
    if ask.canvas && !canvas {
        return Verdict::Fail("the task asks for a canvas; the page has none".into());
    }
    if ask.script && !scripts {
        return Verdict::Fail("the task asks for a script; the page has none inline".into());
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests {
    use super::super::fence::blocks;
    use super::*;

    const TASK: &str = "Write a single-file HTML page with a canvas animation of a bouncing ball (side view, gravity).";
    const GOOD: &str = "Here it is:\n```html\n<!DOCTYPE html>\n<html><head><style>body{margin:0}</style></head>\n<body><canvas id=\"c\" width=\"400\" height=\"300\"></canvas>\n<script>\nconst ctx = document.getElementById('c').getContext('2d');\nlet y = 0, v = 0;\nfunction step() { v += 0.5; y += v; if (y > 280) { y = 280; v = -v * 0.8; } ctx.clearRect(0, 0, 400, 300); ctx.fillRect(190, y, 20, 20); requestAnimationFrame(step); }\nstep();\n</script></body></html>\n```\n";

    fn v(task: &str, text: &str) -> Verdict {
        check(task, text, &blocks(text))
    }

    #[test]
    fn which_tasks_ask_for_a_page() {
        assert_eq!(
            asks_page(TASK),
            Some(PageAsk {
                canvas: true,
                script: true
            })
        );
        assert_eq!(
            asks_page("Make a self-contained HTML page with a CSS grid layout of cards"),
            Some(PageAsk {
                canvas: false,
                script: false
            })
        );
        assert_eq!(
            asks_page("Write a Python function that reverses a list"),
            None
        );
        assert_eq!(asks_page("How do I escape HTML in Django templates?"), None);
    }

    #[test]
    fn good_page_passes_and_bare_documents_count() {
        assert_eq!(v(TASK, GOOD), Verdict::Pass);
        let bare = GOOD
            .split("```html\n")
            .nth(1)
            .unwrap()
            .trim_end_matches("```\n");
        assert_eq!(v(TASK, bare), Verdict::Pass);
        assert_eq!(v("Reverse a list in Python", GOOD), Verdict::Skip);
    }

    #[test]
    fn external_references_fail() {
        for (from, to) in [
            (
                "<script>\nconst",
                "<script src=\"https://cdn.jsdelivr.net/npm/p5\"></script><script>\nconst",
            ),
            (
                "<style>",
                "<link rel=\"stylesheet\" href=\"style.css\"><style>",
            ),
            (
                "body{margin:0}",
                "@import url('https://fonts.googleapis.com/css?family=Roboto'); body{margin:0}",
            ),
            (
                "const ctx",
                "import * as THREE from 'https://unpkg.com/three';\nconst ctx",
            ),
            ("<body>", "<body><img src=\"ball.png\">"),
        ] {
            let text = GOOD.replace(from, to);
            assert!(v(TASK, &text).failed(), "{to}: {:?}", v(TASK, &text));
        }
        // A data URL and a plain link are part of the page.
        let ok = GOOD.replace(
            "<body>",
            "<body><img src=\"data:image/png;base64,AAAA\"><a href=\"https://example.com\">x</a>",
        );
        assert_eq!(v(TASK, &ok), Verdict::Pass);
    }

    #[test]
    fn missing_canvas_script_or_document_fail() {
        let no_canvas = GOOD.replace(
            "<canvas id=\"c\" width=\"400\" height=\"300\"></canvas>",
            "<div id=\"c\"></div>",
        );
        assert!(matches!(v(TASK, &no_canvas), Verdict::Fail(m) if m.contains("canvas")));
        let created = no_canvas.replace(
            "const ctx = document.getElementById('c')",
            "const ctx = document.body.appendChild(document.createElement('canvas'))",
        );
        assert_eq!(v(TASK, &created), Verdict::Pass);
        assert!(v(TASK, "Use a canvas and requestAnimationFrame.").failed());
        let two = format!("{GOOD}\nOr:\n{GOOD}");
        assert!(matches!(v(TASK, &two), Verdict::Fail(m) if m.contains("2 HTML documents")));
    }
}
