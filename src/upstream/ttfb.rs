//! An upstream's recent times to first byte, kept apart for streams (to the first event) and
//! whole answers (to the response head, which a server sends when it has generated all),
//! since they differ by orders of magnitude. What it gives: the p95 and p99 of the last
//! `WINDOW` answers of a kind, once `MIN_SAMPLES` are known; they set the hedge delay and
//! the adaptive first-byte deadline of the next attempts.
//!
//! Cheap on the hot path: a sample takes a short lock to go into a ring; the quantiles are
//! recomputed every `EVERY` samples into atomics, which the next requests read lock-free.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const WINDOW: usize = 128;
const EVERY: usize = 8;
/// Fewer answers than this say too little: no quantile is given yet.
pub const MIN_SAMPLES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Whole = 0,
    Stream = 1,
}

struct Ring {
    /// Microseconds, saturated at u32::MAX (71 minutes).
    samples: [u32; WINDOW],
    len: usize,
    next: usize,
    since: usize,
}

/// Recent times to first byte of one upstream.
pub struct Ttfb {
    rings: [Mutex<Ring>; 2],
    /// Microseconds; 0 while unknown.
    p95: [AtomicU64; 2],
    p99: [AtomicU64; 2],
}

impl Default for Ttfb {
    fn default() -> Self {
        let ring = || {
            Mutex::new(Ring {
                samples: [0; WINDOW],
                len: 0,
                next: 0,
                since: 0,
            })
        };
        Ttfb {
            rings: [ring(), ring()],
            p95: [AtomicU64::new(0), AtomicU64::new(0)],
            p99: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
}

/// The `q` quantile (nearest rank) of `v`, which it reorders.
fn quantile(v: &mut [u32], q: f64) -> u32 {
    let rank = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    *v.select_nth_unstable(rank).1
}

impl Ttfb {
    pub fn record(&self, kind: Kind, d: Duration) {
        let k = kind as usize;
        let Ok(mut r) = self.rings[k].lock() else {
            return;
        };
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX).max(1);
        let at = r.next;
        r.samples[at] = us;
        r.next = (at + 1) % WINDOW;
        r.len = (r.len + 1).min(WINDOW);
        r.since += 1;
        if r.len < MIN_SAMPLES || (r.since < EVERY && r.len > MIN_SAMPLES) {
            return;
        }
        r.since = 0;
        let mut v = r.samples;
        let n = r.len;
        drop(r);
        let p95 = quantile(&mut v[..n], 0.95);
        let p99 = quantile(&mut v[..n], 0.99);
        self.p95[k].store(u64::from(p95), Ordering::Relaxed);
        self.p99[k].store(u64::from(p99), Ordering::Relaxed);
    }

    fn read(a: &AtomicU64) -> Option<Duration> {
        match a.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub fn p95(&self, kind: Kind) -> Option<Duration> {
        Self::read(&self.p95[kind as usize])
    }

    pub fn p99(&self, kind: Kind) -> Option<Duration> {
        Self::read(&self.p99[kind as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_after_enough_samples_and_follow_the_recent_ones() {
        let t = Ttfb::default();
        for _ in 0..MIN_SAMPLES - 1 {
            t.record(Kind::Stream, Duration::from_millis(100));
        }
        assert_eq!(t.p99(Kind::Stream), None, "too few samples");
        t.record(Kind::Stream, Duration::from_millis(100));
        assert_eq!(t.p99(Kind::Stream), Some(Duration::from_millis(100)));
        assert_eq!(t.p95(Kind::Whole), None, "kinds are kept apart");
        // Two slow answers in 100: the p99 sees them, the p95 does not.
        for i in 0..100 {
            let ms = if i == 50 || i == 70 { 5000 } else { 200 };
            t.record(Kind::Whole, Duration::from_millis(ms));
        }
        assert_eq!(t.p95(Kind::Whole), Some(Duration::from_millis(200)));
        assert_eq!(t.p99(Kind::Whole), Some(Duration::from_millis(5000)));
        // A window later the old samples are gone.
        for _ in 0..2 * WINDOW {
            t.record(Kind::Whole, Duration::from_millis(30));
        }
        assert_eq!(t.p99(Kind::Whole), Some(Duration::from_millis(30)));
    }
}
