//! The languages whose code blocks are parsed, by their Markdown tag, and one parse of a
//! block with the language's tree-sitter grammar.

use tree_sitter::{Language, Node, Parser, Tree};

/// Blocks larger than this are not parsed (skipped): bounds the work per answer.
pub const MAX_CODE_BYTES: usize = 512 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Html,
    Css,
    Json,
    Rust,
    Go,
    Java,
    C,
    Cpp,
    Bash,
}

impl Lang {
    /// The language of a fence's tag (`python`, `py`, `js`, `c++`, ...); None when unknown.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let t = tag.to_ascii_lowercase();
        Some(match t.as_str() {
            "python" | "py" | "python3" | "py3" => Lang::Python,
            "javascript" | "js" | "jsx" | "mjs" | "cjs" | "node" => Lang::JavaScript,
            "typescript" | "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "html" | "htm" | "xhtml" => Lang::Html,
            "css" => Lang::Css,
            "json" => Lang::Json,
            "rust" | "rs" => Lang::Rust,
            "go" | "golang" => Lang::Go,
            "java" => Lang::Java,
            "c" | "h" => Lang::C,
            "cpp" | "c++" | "cc" | "cxx" | "hpp" | "hxx" => Lang::Cpp,
            "bash" | "sh" | "shell" | "zsh" => Lang::Bash,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
            Lang::Html => "html",
            Lang::Css => "css",
            Lang::Json => "json",
            Lang::Rust => "rust",
            Lang::Go => "go",
            Lang::Java => "java",
            Lang::C => "c",
            Lang::Cpp => "cpp",
            Lang::Bash => "bash",
        }
    }

    fn grammar(self) -> Language {
        match self {
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Html => tree_sitter_html::LANGUAGE.into(),
            Lang::Css => tree_sitter_css::LANGUAGE.into(),
            Lang::Json => tree_sitter_json::LANGUAGE.into(),
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::Java => tree_sitter_java::LANGUAGE.into(),
            Lang::C => tree_sitter_c::LANGUAGE.into(),
            Lang::Cpp => tree_sitter_cpp::LANGUAGE.into(),
            Lang::Bash => tree_sitter_bash::LANGUAGE.into(),
        }
    }
}

/// Parses `code`; None only when the grammar cannot be loaded (an ABI mismatch, which the
/// tests rule out for every language).
pub fn parse(lang: Lang, code: &str) -> Option<Tree> {
    let mut p = Parser::new();
    p.set_language(&lang.grammar()).ok()?;
    p.parse(code, None)
}

/// Where the first syntax error of a tree is: 1-based line and column.
pub fn first_error(tree: &Tree) -> Option<(usize, usize)> {
    let root = tree.root_node();
    if !root.has_error() {
        return None;
    }
    let at = find_error(root).unwrap_or(root);
    let p = at.start_position();
    Some((p.row + 1, p.column + 1))
}

/// Depth first, with an explicit stack: answers can nest deeper than the thread's stack.
fn find_error(root: Node<'_>) -> Option<Node<'_>> {
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            return Some(node);
        }
        let mut cursor = node.walk();
        let children: Vec<Node<'_>> = node
            .children(&mut cursor)
            .filter(|c| c.has_error())
            .collect();
        stack.extend(children.into_iter().rev());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One valid and one broken snippet per language: every grammar loads, parses, and
    /// tells a broken snippet from a good one.
    #[test]
    fn every_grammar_tells_good_from_broken() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "python",
                "def f(x):\n    return x + 1\n",
                "def f(x)\n    return x +\n",
            ),
            (
                "js",
                "const f = (x) => x + 1;\nconsole.log(f(2));\n",
                "const f = (x => x + 1;\n",
            ),
            (
                "ts",
                "function f(x: number): number { return x + 1; }\n",
                "function f(x: number: number { return x; }\n",
            ),
            (
                "tsx",
                "const A = () => <div>{1}</div>;\n",
                "const A = () => <div>{1</div>;\n",
            ),
            (
                "html",
                "<!DOCTYPE html><html><body><p>hi</p></body></html>\n",
                "<html><body><p class=\"a>hi</p></body></html>\n<",
            ),
            (
                "css",
                "body { margin: 0; }\n.a > .b { color: red; }\n",
                "body { margin: 0;\n.a { color: red; }\n}}\n",
            ),
            (
                "json",
                "{\"a\": [1, 2, {\"b\": null}]}\n",
                "{\"a\": [1, 2,, }\n",
            ),
            (
                "rust",
                "fn main() { let x = 1; println!(\"{x}\"); }\n",
                "fn main() { let x = ; }\n",
            ),
            (
                "go",
                "package main\nfunc main() { x := 1; _ = x }\n",
                "package main\nfunc main() { x := ; }\n",
            ),
            (
                "java",
                "class A { int f() { return 1; } }\n",
                "class A { int f() { return 1 } \n",
            ),
            (
                "c",
                "int main(void) { return 0; }\n",
                "int main(void) { return 0 }\n",
            ),
            (
                "c++",
                "#include <vector>\nint main() { std::vector<int> v{1}; return v[0]; }\n",
                "int main() { std::vector<int> v{1; }\n",
            ),
            (
                "bash",
                "for f in *.txt; do echo \"$f\"; done\n",
                "for f in *.txt; do echo \"$f\"\n",
            ),
        ];
        for (tag, good, bad) in cases {
            let lang = Lang::from_tag(tag).unwrap();
            let t = parse(lang, good).unwrap();
            assert_eq!(
                first_error(&t),
                None,
                "{tag}: good snippet flagged: {}",
                t.root_node().to_sexp()
            );
            let t = parse(lang, bad).unwrap();
            assert!(
                first_error(&t).is_some(),
                "{tag}: broken snippet passed: {}",
                t.root_node().to_sexp()
            );
        }
    }

    #[test]
    fn error_position_is_one_based() {
        let t = parse(Lang::Python, "x = 1\ny = (2\n").unwrap();
        let (line, _) = first_error(&t).unwrap();
        assert!(line >= 2, "{line}");
    }

    #[test]
    fn unknown_tags_are_none() {
        assert_eq!(Lang::from_tag("text"), None);
        assert_eq!(Lang::from_tag("PY"), Some(Lang::Python));
        assert_eq!(Lang::from_tag("C++").map(Lang::name), Some("cpp"));
    }
}
