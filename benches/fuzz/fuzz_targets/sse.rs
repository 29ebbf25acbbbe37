//! The SSE splitter: however the bytes are cut, the same events come out, and the events
//! and the rest held back are the input, byte for byte. Each event's data and name parse.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tiergate::protocol::sse::{SseSplitter, data_of, event_name};

fuzz_target!(|data: &[u8]| {
    let (cuts, stream) = tiergate_fuzz::cuts_and_stream(data);
    let mut whole = Vec::new();
    let mut one = SseSplitter::new();
    one.push(Bytes::copy_from_slice(stream), &mut whole);
    let whole_rest = one.take_rest();

    let mut cut = Vec::new();
    let mut s = SseSplitter::new();
    let mut prev = 0;
    let mut joined = Vec::new();
    for &c in cuts.iter().chain(std::iter::once(&stream.len())) {
        let done = s.push_complete(Bytes::copy_from_slice(&stream[prev..c]), &mut cut);
        joined.extend_from_slice(&done);
        prev = c;
    }
    let rest = s.take_rest();
    assert_eq!(whole, cut, "events depend on where the bytes were cut");
    assert_eq!(whole_rest, rest);
    joined.extend_from_slice(rest.as_deref().unwrap_or_default());
    assert_eq!(joined, stream, "events and rest are not the input");
    for e in &cut {
        let _ = (data_of(e), event_name(e));
    }
});
