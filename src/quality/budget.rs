//! How many answers of a tier the checks read: a per-second budget (a GCRA bucket, one
//! atomic, no lock), so that their CPU stays bounded under load while a sample still gives
//! the pass rates. A tier whose answers escalate, hold back or shadow checks every answer:
//! there the verdict is a decision, not a statistic.
//!
//! The budget is taken when the answer arrives, before any of it is copied: an answer over
//! the budget costs nothing more and is counted in `tiergate_answers_unchecked_total`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One tier's bucket.
#[derive(Debug)]
pub struct CheckBudget {
    /// Nanoseconds between two checks at the steady rate (0: no limit; `u64::MAX`: none).
    interval: u64,
    /// How far ahead of now the bucket may run: a second of the rate (at least one check).
    tolerance: u64,
    /// The theoretical arrival time of the next check, in nanoseconds since `epoch`.
    tat: AtomicU64,
    epoch: Instant,
}

impl CheckBudget {
    /// `per_second`: checks per second at the steady rate (infinite: every answer; 0: none).
    pub fn new(per_second: f64) -> CheckBudget {
        let interval = if per_second.is_infinite() {
            0
        } else if per_second <= 0.0 || per_second.is_nan() {
            u64::MAX
        } else {
            (1e9 / per_second).max(1.0) as u64
        };
        let tolerance = if interval == u64::MAX {
            0
        } else {
            interval.saturating_mul((per_second.ceil() as u64).max(1))
        };
        CheckBudget {
            interval,
            tolerance,
            tat: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Takes one check, if the budget has one now.
    pub fn take(&self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> bool {
        match self.interval {
            0 => return true,
            u64::MAX => return false,
            _ => {}
        }
        let now = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now) + self.interval;
            if next - now > self.tolerance {
                return false;
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn taken(b: &CheckBudget, at: Instant, n: usize) -> usize {
        (0..n).filter(|_| b.take_at(at)).count()
    }

    #[test]
    fn a_second_of_the_rate_at_once_then_the_rate() {
        let b = CheckBudget::new(10.0);
        let t0 = b.epoch;
        assert_eq!(taken(&b, t0, 100), 10);
        assert_eq!(taken(&b, t0 + Duration::from_millis(500), 100), 5);
        assert_eq!(taken(&b, t0 + Duration::from_secs(10), 100), 10);
    }

    #[test]
    fn infinite_takes_all_and_zero_takes_none() {
        let all = CheckBudget::new(f64::INFINITY);
        let none = CheckBudget::new(0.0);
        let t0 = all.epoch;
        assert_eq!(taken(&all, t0, 1000), 1000);
        assert_eq!(taken(&none, t0 + Duration::from_secs(5), 1000), 0);
    }

    #[test]
    fn a_slow_rate_still_allows_one() {
        let b = CheckBudget::new(0.5);
        let t0 = b.epoch;
        assert_eq!(taken(&b, t0, 10), 1);
        assert_eq!(taken(&b, t0 + Duration::from_secs(1), 10), 0);
        assert_eq!(taken(&b, t0 + Duration::from_secs(2), 10), 1);
    }

    #[test]
    fn threads_share_one_budget() {
        let b = std::sync::Arc::new(CheckBudget::new(1000.0));
        let at = b.epoch;
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || taken(&b, at, 1000))
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 1000);
    }
}
