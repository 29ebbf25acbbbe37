//! Fenced code blocks in a Markdown answer: ``` or ~~~, three or more, with an info string
//! whose first word is the language. Lenient about indentation (models put blocks inside
//! list items) and about the length of the closing fence being at least the opening's.

/// One fenced block of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<'a> {
    /// The info string's first word, lowercased by the caller when needed; "" when none.
    pub lang: &'a str,
    pub code: String,
    /// Whether a closing fence was found (false: the block runs to the end of the answer).
    pub closed: bool,
    /// 1-based line of the opening fence in the answer.
    pub line: usize,
}

/// The fence of a line: its character, its length and the rest of the line (the info
/// string), when the line opens or closes a block.
fn fence(line: &str) -> Option<(u8, usize, &str)> {
    let t = line.trim_start();
    let c = *t.as_bytes().first()?;
    if c != b'`' && c != b'~' {
        return None;
    }
    let n = t.bytes().take_while(|&b| b == c).count();
    if n < 3 {
        return None;
    }
    let rest = t[n..].trim();
    // A backtick fence's info string may not contain a backtick (CommonMark): "```a``` b"
    // is inline code, not a fence.
    if c == b'`' && rest.contains('`') {
        return None;
    }
    Some((c, n, rest))
}

/// Every fenced block, in order. A block left open runs to the end and has `closed: false`.
pub fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut open: Option<(u8, usize, &str, usize, usize)> = None; // char, len, lang, line, indent
    let mut code = String::new();
    for (i, line) in text.lines().enumerate() {
        match open {
            None => {
                if let Some((c, n, info)) = fence(line) {
                    let lang = info.split_whitespace().next().unwrap_or("");
                    let lang = lang.trim_start_matches('{').trim_end_matches('}');
                    let indent = line.len() - line.trim_start().len();
                    open = Some((c, n, lang, i + 1, indent));
                    code.clear();
                }
            }
            Some((c, n, lang, at, indent)) => match fence(line) {
                Some((c2, n2, rest)) if c2 == c && n2 >= n && rest.is_empty() => {
                    out.push(Block {
                        lang,
                        code: std::mem::take(&mut code),
                        closed: true,
                        line: at,
                    });
                    open = None;
                }
                _ => {
                    // Strip the fence's own indentation from the block's lines.
                    let strip = line.len() - line.trim_start().len();
                    code.push_str(&line[strip.min(indent)..]);
                    code.push('\n');
                }
            },
        }
    }
    if let Some((_, _, lang, at, _)) = open {
        out.push(Block {
            lang,
            code,
            closed: false,
            line: at,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_and_open_blocks() {
        let t = "Here:\n```python\nprint(1)\n```\nand\n~~~js\nlet a = 1;\n";
        let b = blocks(t);
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].lang, b[0].code.as_str(), b[0].closed, b[0].line),
            ("python", "print(1)\n", true, 2)
        );
        assert_eq!((b[1].lang, b[1].closed), ("js", false));
    }

    #[test]
    fn indented_blocks_in_lists_and_longer_closers() {
        let t = "1. Do it:\n   ````rust\n   fn main() {\n       x();\n   }\n   ``````\n";
        let b = blocks(t);
        assert_eq!(b.len(), 1);
        assert!(b[0].closed);
        assert_eq!(b[0].code, "fn main() {\n    x();\n}\n");
    }

    #[test]
    fn a_closer_must_match_and_carry_no_info() {
        // ``` inside a ~~~ block, and ```python inside a ``` block, do not close it.
        let t = "~~~md\n```\n~~~\n```\n```python\nx\n```\n";
        let b = blocks(t);
        assert_eq!(b.len(), 2, "{b:?}");
        assert_eq!(b[0].code, "```\n");
        assert!(b[1].closed, "{b:?}");
        assert_eq!(b[1].code, "```python\nx\n");
        let open = blocks("```js\nlet a;\n```js\n");
        assert!(!open[0].closed, "{open:?}");
    }

    #[test]
    fn inline_backticks_are_not_fences() {
        assert!(blocks("use ```x``` here").is_empty());
        assert!(blocks("no code at all").is_empty());
    }
}
