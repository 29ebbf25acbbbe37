//! The retry budget of one upstream: a token bucket that each request fills by `ratio` and
//! time fills by `min_per_second`; a retry takes one token. So retries stay under `ratio` of
//! the requests (plus the floor) however badly the upstream fails: retries never multiply
//! the load on an upstream that is already down.
//!
//! Requests are counted by an atomic outside (the hot path takes no lock); the bucket reads
//! that count only when a retry asks for a token.

use tokio::time::Instant;

use crate::config::resilience::RetryBudgetConfig;

#[derive(Debug)]
pub struct RetryBudget {
    tokens: f64,
    /// The request count the bucket last saw.
    seen: u64,
    last: Instant,
}

impl RetryBudget {
    /// Starts with one second of the floor, so a fresh gateway can retry at once.
    pub fn new(now: Instant) -> Self {
        RetryBudget {
            tokens: f64::NAN,
            seen: 0,
            last: now,
        }
    }

    /// The most tokens the bucket holds: ten seconds of the floor, and at least ten.
    fn cap(cfg: &RetryBudgetConfig) -> f64 {
        (cfg.min_per_second * 10.0).max(10.0)
    }

    /// Takes a token for one retry, if there is one. `requests` is the number of requests
    /// counted so far (monotonic).
    pub fn try_take(&mut self, cfg: &RetryBudgetConfig, requests: u64, now: Instant) -> bool {
        if self.tokens.is_nan() {
            self.tokens = cfg.min_per_second;
        }
        let new = requests.saturating_sub(self.seen) as f64;
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.seen = requests.max(self.seen);
        self.last = now;
        self.tokens =
            (self.tokens + cfg.ratio * new + cfg.min_per_second * elapsed).min(Self::cap(cfg));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::advance;

    #[tokio::test(start_paused = true)]
    async fn retries_stay_under_the_ratio() {
        let cfg = RetryBudgetConfig {
            ratio: 0.1,
            min_per_second: 0.0,
        };
        let mut b = RetryBudget::new(Instant::now());
        let mut requests = 0;
        let mut retries = 0;
        // 1000 requests over 10 s, each failing and asking for a retry.
        for _ in 0..1000 {
            requests += 1;
            if b.try_take(&cfg, requests, Instant::now()) {
                retries += 1;
            }
            advance(Duration::from_millis(10)).await;
        }
        assert!((99..=100).contains(&retries), "{retries}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_refills_with_time_and_is_capped() {
        let cfg = RetryBudgetConfig {
            ratio: 0.0,
            min_per_second: 2.0,
        };
        let mut b = RetryBudget::new(Instant::now());
        assert!(
            b.try_take(&cfg, 1, Instant::now()),
            "one second of floor at start"
        );
        assert!(b.try_take(&cfg, 1, Instant::now()));
        assert!(!b.try_take(&cfg, 1, Instant::now()));
        advance(Duration::from_millis(500)).await;
        assert!(b.try_take(&cfg, 2, Instant::now()));
        assert!(!b.try_take(&cfg, 3, Instant::now()));
        // An hour of quiet fills it to the cap (10 s of floor = 20), no more.
        advance(Duration::from_secs(3600)).await;
        let n = (0..100)
            .filter(|i| b.try_take(&cfg, 4 + i, Instant::now()))
            .count();
        assert_eq!(n, 20);
    }
}
