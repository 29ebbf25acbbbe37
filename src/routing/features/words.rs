//! The tokenizer: words are runs of ASCII alphanumerics and non-ASCII bytes inside a
//! whitespace-separated chunk; each is lower-cased, and a number becomes "0".

pub fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// Words longer than this are identifiers or noise (hashes, base64) and are skipped.
const MAX_WORD: usize = 40;

/// Calls `f` with each word of `chunk`, in order.
pub fn each_word(chunk: &str, mut f: impl FnMut(&str)) {
    let bytes = chunk.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_word_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word_byte(bytes[i]) {
            i += 1;
        }
        let Some(word) = chunk.get(start..i) else {
            continue;
        };
        if word.len() <= MAX_WORD {
            f(word);
        }
    }
}

/// `word`'s normal form into `out` (cleared first): lower case; every number is "0".
pub fn normalise(word: &str, out: &mut String) {
    out.clear();
    if word.bytes().all(|b| b.is_ascii_digit()) {
        out.push('0');
    } else if word.is_ascii() {
        out.push_str(word);
        out.make_ascii_lowercase();
    } else {
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_punctuation_and_numbers_fold() {
        let mut got = Vec::new();
        let mut lower = String::new();
        for chunk in "Fix #1234 in foo_bar.py (v2.3) Ünïcode".split_ascii_whitespace() {
            each_word(chunk, |w| {
                normalise(w, &mut lower);
                got.push(lower.clone());
            });
        }
        assert_eq!(
            got,
            ["fix", "0", "in", "foo", "bar", "py", "v2", "0", "ünïcode"]
        );
        let mut n = 0;
        each_word(&"x".repeat(41), |_| n += 1);
        assert_eq!(n, 0, "over-long words are skipped");
    }
}
