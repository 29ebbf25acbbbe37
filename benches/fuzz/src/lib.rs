//! What the fuzz targets share: the default policy's classifier, and a stream translator
//! fed as the proxy feeds it (bytes cut anywhere, through the SSE splitter), with the checks
//! every translator's output must pass.

use std::sync::LazyLock;

use bytes::Bytes;
use tiergate::protocol::sse::{SseSplitter, data_of};
use tiergate::translate::StreamTranslator;

pub static POLICY: LazyLock<tiergate::config::Policy> = LazyLock::new(|| {
    tiergate::config::parse("default", tiergate::config::DEFAULT_POLICY, |_| None)
        .unwrap_or_else(|e| panic!("the default policy: {e}"))
});

/// The input's first byte says how many cut points follow (two bytes each, at most 8);
/// the rest is the upstream's stream.
pub fn cuts_and_stream(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = (n as usize % 9).min(rest.len() / 2);
    let (head, stream) = rest.split_at(n * 2);
    let mut cuts: Vec<usize> = head
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    (cuts, stream)
}

/// Feeds `stream` cut at `cuts` through a splitter and `t`, then ends it (`finish`, or
/// `fail` when `broken`), and checks what the client would get:
/// - it ends on an event boundary, and each event's data is JSON or `[DONE]`;
/// - once ended, a late `fail` adds nothing (a stream is ended once).
pub fn run_translator(t: &mut dyn StreamTranslator, stream: &[u8], cuts: &[usize], broken: bool) {
    let mut splitter = SseSplitter::new();
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&stream.len())) {
        splitter.push(Bytes::copy_from_slice(&stream[prev..c]), &mut events);
        prev = c;
        for e in events.drain(..) {
            t.event(&e, &mut out);
        }
    }
    if broken {
        t.fail("fuzz", "the upstream broke off", &mut out);
    } else {
        t.finish(&mut out);
    }
    let _ = t.usage();
    let ended = out.len();
    t.fail("fuzz", "late", &mut out);
    assert_eq!(out.len(), ended, "a second end added bytes");
    check_sse(&out);
}

/// Every event whole, each data line JSON or `[DONE]`.
pub fn check_sse(out: &[u8]) {
    let mut splitter = SseSplitter::new();
    let mut events = Vec::new();
    splitter.push(Bytes::copy_from_slice(out), &mut events);
    assert!(
        splitter.take_rest().is_none(),
        "output ends mid-event: {:?}",
        String::from_utf8_lossy(out)
    );
    for e in &events {
        if let Some(d) = data_of(e)
            && d.as_ref() != b"[DONE]"
        {
            assert!(
                serde_json::from_slice::<serde_json::Value>(&d).is_ok(),
                "not JSON: {:?}",
                String::from_utf8_lossy(&d)
            );
        }
    }
}
