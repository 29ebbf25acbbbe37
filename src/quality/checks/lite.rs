//! Just enough of a JSON value for reading answers: only the keys the checks look at are
//! kept (the rest are read and dropped, so what `Value` refuses is refused), strings borrow from the input where they can. It
//! reads what `serde_json::Value` would (a later duplicate key wins, and anything that is
//! not valid JSON is refused), at a fraction of the allocations: a stream is read once per
//! event.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The keys the answer readers ask for.
const KEYS: &[&str] = &[
    "error",
    "choices",
    "index",
    "delta",
    "message",
    "content",
    "text",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "finish_reason",
];

#[derive(Debug, Default)]
pub enum Lite<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    Arr(Vec<Lite<'a>>),
    Obj(Vec<(&'static str, Lite<'a>)>),
    /// null, a bool, a number that is no u64.
    #[default]
    Other,
}

impl<'a> Lite<'a> {
    pub fn parse(json: &'a [u8]) -> Option<Lite<'a>> {
        serde_json::from_slice(json).ok()
    }

    /// The value of `key` (the last one, as `Value` keeps); None on anything but an object.
    pub fn get(&self, key: &str) -> Option<&Lite<'a>> {
        match self {
            Lite::Obj(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Lite::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Lite::U64(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Lite<'a>]> {
        match self {
            Lite::Arr(items) => Some(items),
            _ => None,
        }
    }
}

impl<'de> de::Deserialize<'de> for Lite<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LiteVisitor)
    }
}

struct LiteVisitor;

impl<'de> Visitor<'de> for LiteVisitor {
    type Value = Lite<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Lite<'de>, E> {
        Ok(Lite::Other)
    }
    fn visit_none<E>(self) -> Result<Lite<'de>, E> {
        Ok(Lite::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Lite<'de>, E> {
        Ok(Lite::Other)
    }
    fn visit_i64<E>(self, n: i64) -> Result<Lite<'de>, E> {
        Ok(u64::try_from(n).map_or(Lite::Other, Lite::U64))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Lite<'de>, E> {
        Ok(Lite::U64(n))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Lite<'de>, E> {
        Ok(Lite::Other)
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Lite<'de>, E> {
        Ok(Lite::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Lite<'de>, E> {
        Ok(Lite::Str(Cow::Owned(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Lite<'de>, E> {
        Ok(Lite::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lite<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Lite::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lite<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            match key {
                Some(k) => entries.push((k, map.next_value()?)),
                None => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(Lite::Obj(entries))
    }
}

/// A value nobody reads: parsed as `Value` parses it (an out of range number or a bad escape
/// fails here too), nothing kept. `IgnoredAny` would skip without those checks.
struct Skip;

impl<'de> de::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
}

/// An object key: one of `KEYS`, or None for one nobody reads.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(KEYS.iter().copied().find(|k| *k == s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What `Value` reads of the kept keys, the same way.
    fn same(json: &str) {
        let v: Option<Value> = serde_json::from_str(json).ok();
        let l = Lite::parse(json.as_bytes());
        assert_eq!(v.is_some(), l.is_some(), "{json}");
        let (Some(v), Some(l)) = (v, l) else { return };
        fn walk(v: &Value, l: &Lite<'_>, json: &str) {
            assert_eq!(v.as_str(), l.as_str(), "{json}");
            assert_eq!(v.as_u64(), l.as_u64(), "{json}");
            if let Some(items) = v.as_array() {
                let lite = l.as_array().unwrap_or(&[]);
                assert_eq!(items.len(), lite.len(), "{json}");
                for (a, b) in items.iter().zip(lite) {
                    walk(a, b, json);
                }
            }
            for k in KEYS {
                match (v.get(k), l.get(k)) {
                    (Some(a), Some(b)) => walk(a, b, json),
                    (a, b) => assert_eq!(a.is_some(), b.is_some(), "{k} in {json}"),
                }
            }
        }
        walk(&v, &l, json);
    }

    #[test]
    fn reads_what_value_reads() {
        for json in [
            r#"{"choices":[{"index":0,"delta":{"content":"a\"b\u00e9"},"finish_reason":null}]}"#,
            r#"{"error":null}"#,
            r#"{"choices":[1,"x",{"index":-1},{"index":1.0},{"index":"0"},{"index":2}]}"#,
            r#"{"text":"a","text":"b","id":{"deep":[1,2,{"x":null}]},"cont\u0065nt":"esc"}"#,
            r#"{"choices":{"index":0}}"#,
            r#"[{"content":[{"text":"a"},{"text":1},"s"]}]"#,
            r#""just a string""#,
            "5",
            r#"{"choices":[]} trailing"#,
            r#"{"choices":[{"index":0}"#,
            "not json",
            r#"{"a":1e999}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":[{"b":[1,2,3e5,"\u00e9"]}],"index":7}"#,
        ] {
            same(json);
        }
    }
}
