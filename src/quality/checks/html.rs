//! What the checks need from an HTML document, read from its tree-sitter tree: the inline
//! scripts and styles (parsed again in their own language), and every attribute with the
//! element it sits on (for external references).

use tree_sitter::Node;

use super::lang::{self, Lang};

#[derive(Debug, Default)]
pub struct Doc {
    /// Lowercased names of every element, in document order.
    pub tags: Vec<String>,
    pub attrs: Vec<Attr>,
    pub scripts: Vec<Inline>,
    pub styles: Vec<Inline>,
    /// First syntax error of the markup itself (1-based line, column).
    pub error: Option<(usize, usize)>,
}

#[derive(Debug)]
pub struct Attr {
    pub tag: String,
    pub name: String,
    pub value: String,
}

/// The text of a `<script>` or `<style>` element.
#[derive(Debug)]
pub struct Inline {
    /// The element's `type` attribute, lowercased ("" when absent).
    pub kind: String,
    pub text: String,
    /// 1-based line of the text in the document.
    pub line: usize,
}

impl Doc {
    pub fn has_tag(&self, name: &str) -> bool {
        self.tags.iter().any(|t| t == name)
    }

    pub fn attrs_of<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Attr> + 'a {
        self.attrs.iter().filter(move |a| a.tag == tag)
    }
}

/// Reads `html`; None when the grammar cannot be loaded.
pub fn read(html: &str) -> Option<Doc> {
    let tree = lang::parse(Lang::Html, html)?;
    let mut doc = Doc {
        error: lang::first_error(&tree),
        ..Doc::default()
    };
    let text = |n: Node<'_>| html.get(n.byte_range()).unwrap_or("").to_string();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        match node.kind() {
            "start_tag" | "self_closing_tag" => {
                let mut tag = String::new();
                let mut cursor = node.walk();
                for child in node.children(&mut cursor) {
                    match child.kind() {
                        "tag_name" => {
                            tag = text(child).to_ascii_lowercase();
                            doc.tags.push(tag.clone());
                        }
                        "attribute" => {
                            let mut name = String::new();
                            let mut value = String::new();
                            let mut c2 = child.walk();
                            for part in child.children(&mut c2) {
                                match part.kind() {
                                    "attribute_name" => name = text(part).to_ascii_lowercase(),
                                    "attribute_value" => value = text(part),
                                    "quoted_attribute_value" => {
                                        value = text(part)
                                            .trim_matches(|c| c == '"' || c == '\'')
                                            .to_string()
                                    }
                                    _ => {}
                                }
                            }
                            doc.attrs.push(Attr {
                                tag: tag.clone(),
                                name,
                                value,
                            });
                        }
                        _ => {}
                    }
                }
            }
            "raw_text" => {
                let parent = node.parent();
                let kind = parent.map_or("", |p| p.kind());
                let type_attr = parent
                    .and_then(|p| p.child(0))
                    .map(|start| type_of(start, &text))
                    .unwrap_or_default();
                let inline = Inline {
                    kind: type_attr,
                    text: text(node),
                    line: node.start_position().row + 1,
                };
                match kind {
                    "script_element" => doc.scripts.push(inline),
                    "style_element" => doc.styles.push(inline),
                    _ => {}
                }
            }
            _ => {}
        }
        let mut cursor = node.walk();
        let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    // Scripts with no text (`<script src=...></script>`) still count as scripts.
    Some(doc)
}

/// The lowercased `type` attribute of a start tag.
fn type_of(start: Node<'_>, text: &impl Fn(Node<'_>) -> String) -> String {
    let mut cursor = start.walk();
    for attr in start
        .children(&mut cursor)
        .filter(|c| c.kind() == "attribute")
    {
        let mut c2 = attr.walk();
        let parts: Vec<Node<'_>> = attr.children(&mut c2).collect();
        if parts
            .first()
            .is_some_and(|n| text(*n).eq_ignore_ascii_case("type"))
        {
            return parts
                .iter()
                .find(|n| n.kind().ends_with("attribute_value"))
                .map(|v| {
                    text(*v)
                        .trim_matches(|c| c == '"' || c == '\'')
                        .to_ascii_lowercase()
                })
                .unwrap_or_default();
        }
    }
    String::new()
}

/// The language of a script's `type` attribute, None for data and templates.
pub fn script_lang(kind: &str) -> Option<Lang> {
    match kind {
        ""
        | "module"
        | "text/javascript"
        | "application/javascript"
        | "text/ecmascript"
        | "application/ecmascript" => Some(Lang::JavaScript),
        "application/json" | "importmap" | "application/ld+json" => Some(Lang::Json),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_styles_and_attributes_are_read() {
        let d = read(
            "<!DOCTYPE html><html><head><style>body{margin:0}</style>\n\
             <script src=\"https://cdn.example/x.js\"></script></head>\n\
             <body><canvas id=c width=300></canvas><script type=\"module\">\nlet a = 1;\n</script></body></html>",
        )
        .unwrap();
        assert_eq!(d.error, None);
        assert!(d.has_tag("canvas") && d.has_tag("script"));
        assert_eq!(d.styles.len(), 1);
        assert_eq!(d.styles[0].text, "body{margin:0}");
        let inline: Vec<_> = d
            .scripts
            .iter()
            .filter(|s| !s.text.is_empty())
            .map(|s| (s.kind.as_str(), s.text.trim(), s.line))
            .collect();
        assert_eq!(inline, [("module", "let a = 1;", 3)]);
        let src: Vec<_> = d
            .attrs_of("script")
            .map(|a| (a.name.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(
            src,
            [("src", "https://cdn.example/x.js"), ("type", "module")]
        );
        assert!(
            d.attrs_of("canvas")
                .any(|a| a.name == "width" && a.value == "300")
        );
    }
}
