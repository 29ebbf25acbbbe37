//! Where a key path of the policy sits in its text, for `file:line:column` errors.

/// Finds where a semantic error sits in the text: each element of `path` is searched, as a
/// whole word, after the place where the previous one was found. Returns 1-based line and
/// column, or the deepest place found.
pub(super) fn locate(text: &str, path: &[&str]) -> (usize, usize) {
    let mut from = 0;
    let mut found = 0;
    for needle in path {
        match find_word(&text[from..], needle) {
            Some(i) => {
                found = from + i;
                from = found + needle.len();
            }
            None => break,
        }
    }
    let before = &text[..found];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn find_word(hay: &str, needle: &str) -> Option<usize> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut start = 0;
    while let Some(i) = hay[start..].find(needle) {
        let at = start + i;
        let end = at + needle.len();
        let left_ok = hay[..at].chars().next_back().is_none_or(|c| !is_word(c));
        let right_ok = hay[end..].chars().next().is_none_or(|c| !is_word(c));
        if left_ok && right_ok {
            return Some(at);
        }
        start = at + needle.len().max(1);
    }
    None
}
