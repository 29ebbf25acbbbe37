//! What is known of an upstream's health at run time: its circuit breaker, its active health
//! check, its retry budget, its recent latency and its queue. Kept across policy reloads for
//! upstreams that keep their name (`inherit`), so a reload neither forgets an outage nor
//! doubles a concurrency limit.
//!
//! The hot path is cheap: a closed circuit admits without a lock (an atomic mirror of the
//! state), requests are counted with an atomic, and the breaker's mutex is held only for
//! a few arithmetic steps, never across an await.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::breaker::{Admit, Breaker, State};
use super::budget::RetryBudget;
use crate::config::resilience::{BreakerConfig, RetryBudgetConfig};

/// A change of circuit state, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
}

pub struct UpstreamState {
    breaker: Mutex<Breaker>,
    /// Mirror of the breaker's state (`State::gauge`), read without the lock.
    circuit: AtomicU8,
    healthy: AtomicBool,
    health_failures: AtomicU32,
    requests: AtomicU64,
    budget: Mutex<RetryBudget>,
    /// Smoothed time to first byte in microseconds; 0 while unknown.
    latency_us: AtomicU64,
    /// Milliseconds since `epoch` of the last latency sample or slow-path probe.
    last_sample_ms: AtomicU64,
    epoch: Instant,
    /// Requests waiting for a concurrency slot.
    pub queued: AtomicUsize,
    /// Recent times to first byte: the hedge delay and the adaptive first-byte deadline.
    pub ttfb: super::ttfb::Ttfb,
}

const CLOSED: u8 = 0;

fn mirror(s: State) -> u8 {
    s.gauge() as u8
}

impl Default for UpstreamState {
    fn default() -> Self {
        Self::new()
    }
}

impl UpstreamState {
    pub fn new() -> Self {
        let now = Instant::now();
        UpstreamState {
            breaker: Mutex::new(Breaker::new(now)),
            circuit: AtomicU8::new(CLOSED),
            healthy: AtomicBool::new(true),
            health_failures: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            budget: Mutex::new(RetryBudget::new(now)),
            latency_us: AtomicU64::new(0),
            last_sample_ms: AtomicU64::new(0),
            epoch: now,
            queued: AtomicUsize::new(0),
            ttfb: Default::default(),
        }
    }

    pub fn circuit(&self) -> State {
        match self.circuit.load(Ordering::Relaxed) {
            CLOSED => State::Closed,
            1 => State::Open,
            _ => State::HalfOpen,
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Routable: healthy and its circuit not open.
    pub fn is_up(&self) -> bool {
        self.is_healthy() && self.circuit() != State::Open
    }

    /// Asks the breaker (and the health check) to let one request through.
    pub fn admit(&self, cfg: &BreakerConfig) -> (Admit, Option<Transition>) {
        if !self.is_healthy() {
            return (Admit::No, None);
        }
        if self.circuit.load(Ordering::Relaxed) == CLOSED || !cfg.enabled {
            return (Admit::Yes, None);
        }
        let Ok(mut b) = self.breaker.lock() else {
            return (Admit::Yes, None);
        };
        let from = b.state();
        let admit = b.admit(cfg, Instant::now());
        (admit, self.changed(from, b.state()))
    }

    /// Reports an admitted request's result to the breaker.
    pub fn record(&self, cfg: &BreakerConfig, ok: bool, probe: bool) -> Option<Transition> {
        if !cfg.enabled {
            return None;
        }
        let Ok(mut b) = self.breaker.lock() else {
            return None;
        };
        let from = b.state();
        b.record(cfg, Instant::now(), ok, probe);
        self.changed(from, b.state())
    }

    fn changed(&self, from: State, to: State) -> Option<Transition> {
        self.circuit.store(mirror(to), Ordering::Relaxed);
        (from != to).then_some(Transition { from, to })
    }

    /// Counts one request toward the retry budget.
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a token from the retry budget, if there is one.
    pub fn try_retry(&self, cfg: &RetryBudgetConfig) -> bool {
        let requests = self.requests.load(Ordering::Relaxed);
        self.budget
            .lock()
            .is_ok_and(|mut b| b.try_take(cfg, requests, Instant::now()))
    }

    /// Records one health check's result; returns the new health when it changed.
    pub fn health_checked(&self, ok: bool, unhealthy_after: u32) -> Option<bool> {
        let was = self.is_healthy();
        let now = if ok {
            self.health_failures.store(0, Ordering::Relaxed);
            true
        } else {
            let n = self.health_failures.fetch_add(1, Ordering::Relaxed) + 1;
            was && n < unhealthy_after.max(1)
        };
        self.healthy.store(now, Ordering::Relaxed);
        (was != now).then_some(now)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Adds a time-to-first-byte sample to the moving average (weight 1/8).
    pub fn observe_latency(&self, d: Duration) {
        let sample = (d.as_micros() as u64).max(1);
        let _ = self
            .latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    old - old / 8 + sample / 8
                })
            });
        self.last_sample_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub fn latency(&self) -> Option<Duration> {
        match self.latency_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Whether requests should spill over because the upstream is slower than `target`.
    /// While slow, one request a second still goes through, so that the average can learn
    /// that the upstream recovered.
    pub fn is_slow(&self, target: Duration) -> bool {
        if self.latency().is_none_or(|l| l <= target) {
            return false;
        }
        let now = self.now_ms();
        let last = self.last_sample_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 1000 {
            return true;
        }
        // This request is the probe, unless another one took the slot first.
        self.last_sample_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_consecutive_failures_and_one_success() {
        let s = UpstreamState::new();
        assert_eq!(s.health_checked(false, 2), None);
        assert!(s.is_up());
        assert_eq!(s.health_checked(false, 2), Some(false));
        assert!(!s.is_up());
        assert_eq!(s.admit(&BreakerConfig::default()).0, Admit::No);
        assert_eq!(s.health_checked(false, 2), None);
        assert_eq!(s.health_checked(true, 2), Some(true));
        assert!(s.is_up());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_upstreams_spill_but_are_probed_once_a_second() {
        let s = UpstreamState::new();
        let target = Duration::from_millis(100);
        assert!(!s.is_slow(target), "unknown latency is not slow");
        s.observe_latency(Duration::from_millis(500));
        assert!(s.is_slow(target));
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(!s.is_slow(target), "the probe");
        assert!(s.is_slow(target), "only one probe");
        for _ in 0..40 {
            s.observe_latency(Duration::from_millis(10));
        }
        assert!(!s.is_slow(target));
    }
}
