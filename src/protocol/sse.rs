//! Server-sent events: an incremental splitter that turns arbitrarily cut bytes into whole
//! events, without copying when the input is already cut at event boundaries.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

#[derive(Debug, Default)]
pub struct SseSplitter {
    partial: BytesMut,
}

impl SseSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `chunk`; appends each event it completes (terminator included) to `out`.
    pub fn push(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) {
        self.push_complete(chunk, out);
    }

    /// As `push`, and returns the completed events as one contiguous slice (no copy when
    /// nothing was held back): what can be passed on without ever sending half an event.
    pub fn push_complete(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) -> Bytes {
        let data = if self.partial.is_empty() {
            chunk
        } else {
            self.partial.extend_from_slice(&chunk);
            self.partial.split().freeze()
        };
        let mut start = 0;
        while let Some(len) = event_len(&data[start..]) {
            out.push(data.slice(start..start + len));
            start += len;
        }
        if start < data.len() {
            self.partial.extend_from_slice(&data[start..]);
        }
        data.slice(..start)
    }

    /// Bytes of an event that never got its terminating blank line.
    pub fn take_rest(&mut self) -> Option<Bytes> {
        (!self.partial.is_empty()).then(|| self.partial.split().freeze())
    }
}

/// Length of the first complete event in `data` (up to and including its blank line).
fn event_len(data: &[u8]) -> Option<usize> {
    for nl in memchr::memchr_iter(b'\n', data) {
        match data.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if data.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => {}
        }
    }
    None
}

/// The event's lines, without their line ends.
fn lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', event)
        .chain(std::iter::once(event.len()))
        .filter_map(move |end| {
            let line = event.get(start..end)?;
            start = end + 1;
            Some(line.strip_suffix(b"\r").unwrap_or(line))
        })
}

/// The event's data: its `data:` lines joined by newlines; None for events without data
/// (comments, keep-alives).
pub fn data_of(event: &[u8]) -> Option<Cow<'_, [u8]>> {
    let mut found: Option<Cow<'_, [u8]>> = None;
    for line in lines(event) {
        let Some(value) = line.strip_prefix(b"data:") else {
            continue;
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        found = Some(match found {
            None => Cow::Borrowed(value),
            Some(prev) => {
                let mut joined = prev.into_owned();
                joined.push(b'\n');
                joined.extend_from_slice(value);
                Cow::Owned(joined)
            }
        });
    }
    found
}

/// The event's `event:` name, if it has one.
pub fn event_name(event: &[u8]) -> Option<&str> {
    lines(event).find_map(|line| {
        let v = line.strip_prefix(b"event:")?;
        std::str::from_utf8(v.strip_prefix(b" ").unwrap_or(v)).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STREAM: &[u8] = b"data: {\"a\":1}\n\n: keep-alive\n\nevent: x\r\ndata: 2\r\ndata: 3\r\n\r\ndata: [DONE]\n\n";

    fn split_all(cuts: &[usize]) -> Vec<Bytes> {
        let mut s = SseSplitter::new();
        let mut out = Vec::new();
        let mut prev = 0;
        for &c in cuts.iter().chain(std::iter::once(&STREAM.len())) {
            let c = c.clamp(prev, STREAM.len());
            s.push(Bytes::copy_from_slice(&STREAM[prev..c]), &mut out);
            prev = c;
        }
        assert!(s.take_rest().is_none());
        out
    }

    #[test]
    fn whole_input_gives_every_event() {
        let events = split_all(&[]);
        assert_eq!(events.len(), 4);
        assert_eq!(data_of(&events[0]).unwrap().as_ref(), b"{\"a\":1}");
        assert!(data_of(&events[1]).is_none());
        assert_eq!(data_of(&events[2]).unwrap().as_ref(), b"2\n3");
        assert_eq!(event_name(&events[2]), Some("x"));
        assert_eq!(data_of(&events[3]).unwrap().as_ref(), b"[DONE]");
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(mut cuts in proptest::collection::vec(0usize..80, 0..12)) {
            cuts.sort();
            prop_assert_eq!(split_all(&cuts), split_all(&[]));
        }

        /// Generated streams (LF or CRLF, comments, multi-line data), cut anywhere: the
        /// same events, and `push_complete` hands on exactly the bytes of whole events.
        #[test]
        fn any_split_of_any_stream_gives_the_same_events(
            events in proptest::collection::vec(
                (proptest::collection::vec("[a-z{}\":, \\[\\]]{0,12}", 1..3), any::<bool>(), any::<bool>()),
                0..8,
            ),
            mut cuts in proptest::collection::vec(0usize..400, 0..10),
        ) {
            let mut stream = Vec::new();
            for (lines, crlf, comment) in &events {
                let nl: &[u8] = if *crlf { b"\r\n" } else { b"\n" };
                if *comment {
                    stream.extend_from_slice(b": ping");
                    stream.extend_from_slice(nl);
                }
                for l in lines {
                    stream.extend_from_slice(b"data: ");
                    stream.extend_from_slice(l.as_bytes());
                    stream.extend_from_slice(nl);
                }
                stream.extend_from_slice(nl);
            }
            let whole = {
                let mut s = SseSplitter::new();
                let mut out = Vec::new();
                s.push(Bytes::from(stream.clone()), &mut out);
                out
            };
            prop_assert_eq!(whole.len(), events.len());
            cuts.sort();
            let mut s = SseSplitter::new();
            let (mut out, mut passed) = (Vec::new(), Vec::new());
            let mut prev = 0;
            for c in cuts.iter().map(|&c| c.min(stream.len())).chain(std::iter::once(stream.len())) {
                let c = c.max(prev);
                passed.extend_from_slice(&s.push_complete(Bytes::copy_from_slice(&stream[prev..c]), &mut out));
                prev = c;
            }
            prop_assert_eq!(&out, &whole);
            prop_assert_eq!(passed, stream);
            prop_assert!(s.take_rest().is_none());
            for (e, (lines, _, _)) in out.iter().zip(&events) {
                let d = data_of(e).unwrap();
                let want = lines.join("\n");
                prop_assert_eq!(d.as_ref(), want.as_bytes());
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut s = SseSplitter::new();
            let mut out = Vec::new();
            s.push(Bytes::from(bytes), &mut out);
            for e in &out { let _ = data_of(e); let _ = event_name(e); }
        }
    }
}
