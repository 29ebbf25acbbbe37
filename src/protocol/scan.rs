//! Questions about a JSON text answered without parsing it, for the hot path of streams: each
//! event is looked at, few need a parser. Strings inside JSON cannot hide a match: a quote in
//! a string is escaped, so `"key"` followed by `:` only occurs as a real key.

use std::sync::OnceLock;

use memchr::memmem::Finder;

/// A needle (a JSON key with its quotes, or a literal) with its searcher, built once: building
/// a searcher costs more than running it on a short event.
pub struct Key {
    text: &'static [u8],
    finder: OnceLock<Finder<'static>>,
}

impl Key {
    pub const fn new(text: &'static [u8]) -> Self {
        Key {
            text,
            finder: OnceLock::new(),
        }
    }

    fn finder(&self) -> &Finder<'static> {
        self.finder.get_or_init(|| Finder::new(self.text))
    }

    fn len(&self) -> usize {
        self.text.len()
    }
}

pub static USAGE: Key = Key::new(b"\"usage\"");
pub static MODEL: Key = Key::new(b"\"model\"");
pub static ERROR: Key = Key::new(b"\"error\"");
pub static TOOLS: Key = Key::new(b"\"tools\"");
static NULL: Key = Key::new(b"null");
static TEXT_KEYS: [Key; 4] = [
    Key::new(b"\"content\""),
    Key::new(b"\"reasoning_content\""),
    Key::new(b"\"text\""),
    Key::new(b"\"arguments\""),
];

/// The first byte of each value written for `key` (given with its quotes, e.g. `"usage"`).
pub fn value_starts<'a>(json: &'a [u8], key: &'a Key) -> impl Iterator<Item = u8> + 'a {
    key.finder().find_iter(json).filter_map(move |at| {
        let mut rest = json[at + key.len()..]
            .iter()
            .copied()
            .skip_while(u8::is_ascii_whitespace);
        if rest.next() != Some(b':') {
            return None;
        }
        rest.find(|b| !b.is_ascii_whitespace())
    })
}

/// Whether `key` (with its quotes) has an object value somewhere, e.g. a usage report.
pub fn has_object(json: &[u8], key: &Key) -> bool {
    value_starts(json, key).any(|b| b == b'{')
}

/// Whether any of `keys` (with their quotes) has a `null` value somewhere.
pub fn has_null(json: &[u8], keys: &[&[u8]]) -> bool {
    // One pass over the nulls (few per event), looking back at the key of each.
    NULL.finder().find_iter(json).any(|at| {
        let before = json[..at].trim_ascii_end();
        let Some(before) = before.strip_suffix(b":") else {
            return false;
        };
        let before = before.trim_ascii_end();
        keys.iter().any(|k| before.ends_with(k))
    })
}

/// Where the string values of `key` (with its quotes) sit: the bytes between their quotes,
/// escapes kept as written.
pub fn string_values<'a>(
    json: &'a [u8],
    key: &'a Key,
) -> impl Iterator<Item = std::ops::Range<usize>> + 'a {
    key.finder()
        .find_iter(json)
        .filter_map(move |at| string_after(json, at + key.len()))
}

/// The string value after a key that ends at `i`: the bytes between its quotes.
fn string_after(json: &[u8], mut i: usize) -> Option<std::ops::Range<usize>> {
    let skip_ws = |i: &mut usize| {
        while json.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    (json.get(i) == Some(&b':')).then_some(())?;
    i += 1;
    skip_ws(&mut i);
    (json.get(i) == Some(&b'"')).then_some(())?;
    let start = i + 1;
    let mut j = start;
    loop {
        j += memchr::memchr2(b'"', b'\\', json.get(j..)?)?;
        if json[j] == b'"' {
            return Some(start..j);
        }
        j += 2;
    }
}

/// Bytes of generated text in a chat or completions chunk: its content, reasoning, legacy
/// `text` and tool-call arguments, as written (escapes count as written).
pub fn output_text_len(json: &[u8]) -> usize {
    TEXT_KEYS
        .iter()
        .flat_map(|k| string_values(json, k))
        .map(|r| r.len())
        .sum()
}

/// Whether `needle` occurs anywhere.
pub fn contains(json: &[u8], needle: &Key) -> bool {
    needle.finder().find(json).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_by_key() {
        let j = br#"{"usage": {"a":1},"choices":[{"delta":{"content":"say \"usage\": {"}}]}"#;
        assert!(has_object(j, &USAGE));
        assert!(!has_object(br#"{"usage":null,"x":"\"usage\":{"}"#, &USAGE));
        static A: Key = Key::new(b"\"a\"");
        assert_eq!(
            value_starts(br#"{"a" : 1, "a":"x"}"#, &A).collect::<Vec<_>>(),
            vec![b'1', b'"']
        );
    }

    #[test]
    fn finds_string_values_and_text_length() {
        let j = br#"{"model" : "q\"x","choices":[{"delta":{"content":"ab\\c","tool_calls":[{"function":{"arguments":"{}"}}]}}]}"#;
        let spans: Vec<_> = string_values(j, &MODEL).collect();
        assert_eq!(&j[spans[0].clone()], br#"q\"x"#);
        assert_eq!(output_text_len(j), 5 + 2);
        assert_eq!(
            output_text_len(br#"{"choices":[{"delta":{"content":null}}]}"#),
            0
        );
    }

    #[test]
    fn a_string_cut_after_a_backslash_is_no_string() {
        for cut in [
            &br#"{"content":"ab\"#[..],
            br#"{"content":"\"#,
            br#"{"content":""#,
        ] {
            assert_eq!(output_text_len(cut), 0);
        }
        assert_eq!(output_text_len(br#"{"content":"a\"b"}"#), 4);
    }

    #[test]
    fn finds_null_values_of_given_keys_only() {
        let keys: [&[u8]; 2] = [b"\"content\"", b"\"role\""];
        assert!(has_null(
            br#"{"delta":{"role":"assistant","content": null}}"#,
            &keys
        ));
        assert!(!has_null(
            br#"{"delta":{"content":"null"},"finish_reason":null}"#,
            &keys
        ));
    }
}

static ANTHROPIC_TEXT_KEYS: [Key; 3] = [
    Key::new(b"\"text\""),
    Key::new(b"\"partial_json\""),
    Key::new(b"\"thinking\""),
];
static DELTA: Key = Key::new(b"\"delta\"");

/// Bytes of generated text in one whole SSE event of an upstream that speaks `format`: the
/// one measure of output behind time to first token and the token estimate on every path.
pub fn event_text_len(format: crate::protocol::Format, event: &[u8]) -> usize {
    use crate::protocol::Format;
    use crate::protocol::sse::{data_of, event_name};
    let name = event_name(event);
    let keys: &[Key] = match format {
        Format::Chat | Format::Completions => &TEXT_KEYS,
        Format::Messages | Format::CountTokens if name == Some("content_block_delta") => {
            &ANTHROPIC_TEXT_KEYS
        }
        Format::Responses if name.is_some_and(|n| n.ends_with(".delta")) => {
            std::slice::from_ref(&DELTA)
        }
        _ => return 0,
    };
    let Some(data) = data_of(event) else { return 0 };
    keys.iter()
        .flat_map(|k| string_values(&data, k))
        .map(|r| r.len())
        .sum()
}

static RESPONSES_TEXT_KEYS: [Key; 2] = [Key::new(b"\"text\""), Key::new(b"\"arguments\"")];

/// Bytes of generated text in a whole answer of an upstream that speaks `format`, measured
/// as `event_text_len` measures a stream's events.
pub fn body_text_len(format: crate::protocol::Format, body: &[u8]) -> usize {
    use crate::protocol::Format;
    let keys: &[Key] = match format {
        Format::Chat | Format::Completions => &TEXT_KEYS,
        Format::Messages | Format::CountTokens => &ANTHROPIC_TEXT_KEYS,
        Format::Responses => &RESPONSES_TEXT_KEYS,
    };
    keys.iter()
        .flat_map(|k| string_values(body, k))
        .map(|r| r.len())
        .sum()
}

#[cfg(test)]
mod event_text_tests {
    use super::event_text_len;
    use crate::protocol::Format;

    #[test]
    fn text_is_measured_alike_in_every_format() {
        let chat = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\n\n";
        let anthropic = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n";
        let responses = b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hello\"}\n\n";
        assert_eq!(event_text_len(Format::Chat, chat), 5);
        assert_eq!(event_text_len(Format::Messages, anthropic), 5);
        assert_eq!(event_text_len(Format::Responses, responses), 5);
        let start = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"content\":[]}}\n\n";
        assert_eq!(event_text_len(Format::Messages, start), 0);
    }

    #[test]
    fn whole_answers_are_measured_like_streams() {
        use super::body_text_len;
        let chat = br#"{"choices":[{"message":{"content":"abc","tool_calls":[{"function":{"arguments":"{}"}}]}}]}"#;
        assert_eq!(body_text_len(Format::Chat, chat), 5);
        let msg = br#"{"content":[{"type":"text","text":"Hello"}],"usage":{"input_tokens":1}}"#;
        assert_eq!(body_text_len(Format::Messages, msg), 5);
        let resp = br#"{"output":[{"content":[{"type":"output_text","text":"Hello"}]}]}"#;
        assert_eq!(body_text_len(Format::Responses, resp), 5);
    }
}
