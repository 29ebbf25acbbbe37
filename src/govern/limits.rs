//! The arithmetic of limits, pure: sliding one-minute windows for requests and tokens per
//! minute, calendar months for budgets, and the capped reservation of a request's cost.
//!
//! Rates use the sliding-window counter: a counter per minute, and the estimate of the last
//! 60 s is the previous minute's count weighted by the share of it still inside those 60 s,
//! plus the current minute's. It never lets a client burst to twice its limit across a
//! minute's boundary, and it needs two integers per key, so Redis can do it atomically.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::schema::PerMtok;

pub const WINDOW_MS: u64 = 60_000;

/// A counter of the current minute and the one before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Minutes since the Unix epoch.
    pub index: u64,
    /// Milliseconds into the current minute.
    pub elapsed_ms: u64,
}

impl Window {
    pub fn at(now_ms: u64) -> Self {
        Window {
            index: now_ms / WINDOW_MS,
            elapsed_ms: now_ms % WINDOW_MS,
        }
    }

    /// How much of the previous minute still lies within the last 60 s.
    pub fn prev_weight(&self) -> f64 {
        1.0 - self.elapsed_ms as f64 / WINDOW_MS as f64
    }

    /// Whether `need` more fits under `limit` given the two minutes' counts.
    pub fn allows(&self, prev: u64, curr: u64, need: u64, limit: u64) -> bool {
        prev as f64 * self.prev_weight() + (curr + need) as f64 <= limit as f64
    }

    /// How long until `need` more fits under `limit`, if nothing else is added; at least
    /// one second (what `retry-after` can say).
    pub fn retry_after(&self, prev: u64, curr: u64, need: u64, limit: u64) -> Duration {
        let ms = if curr + need > limit {
            // Not before the next minute; there, this minute's count decays in turn.
            let left = limit.saturating_sub(need) as f64;
            let weight = if curr == 0 {
                1.0
            } else {
                (left / curr as f64).min(1.0)
            };
            (WINDOW_MS - self.elapsed_ms) as f64 + (1.0 - weight) * WINDOW_MS as f64
        } else if prev == 0 {
            0.0
        } else {
            let weight = (limit - curr - need) as f64 / prev as f64;
            ((1.0 - weight) * WINDOW_MS as f64 - self.elapsed_ms as f64).max(0.0)
        };
        Duration::from_secs((ms / 1000.0).ceil().max(1.0) as u64)
    }
}

pub fn now_ms(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Money is counted in micro-dollars, as integers, so that every update is exact and atomic.
pub fn to_micros(usd: f64) -> i64 {
    if usd.is_finite() {
        (usd * 1e6).round() as i64
    } else {
        0
    }
}

pub fn from_micros(micros: i64) -> f64 {
    micros as f64 / 1e6
}

/// The calendar month (UTC) of `now` as `YYYY-MM`, and how long its counter must live: to
/// the month's end and 31 days more, so that last month's spend can still be read.
pub fn month(now: SystemTime) -> (String, Duration) {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let (y, m) = civil(secs.div_euclid(86_400));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let end = days_from_civil(ny, nm) * 86_400;
    let ttl = u64::try_from(end - secs).unwrap_or(0) + 31 * 86_400;
    (format!("{y:04}-{m:02}"), Duration::from_secs(ttl))
}

/// Year and month of a day count since 1970-01-01 (H. Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32)
}

/// Days since 1970-01-01 of the first day of a month.
fn days_from_civil(y: i64, m: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// How a request's cost is reserved before it is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReserveConfig {
    /// The most one request reserves, whatever its estimate: a coding agent's large context
    /// with a large `max_tokens` is not refused for a worst case it will not reach. The
    /// real cost is settled when the request ends.
    pub reserve_max_usd: f64,
    /// Completion tokens assumed when the request sets no `max_tokens`.
    pub reserve_output_tokens: u64,
}

impl Default for ReserveConfig {
    fn default() -> Self {
        ReserveConfig {
            reserve_max_usd: 0.50,
            reserve_output_tokens: 1024,
        }
    }
}

/// Micro-dollars to reserve: the prompt at the input price and the completion's ceiling at
/// the output price, capped at `reserve_max_usd`.
pub fn reservation(
    input_tokens: u64,
    max_output_tokens: Option<u64>,
    price: PerMtok,
    cfg: &ReserveConfig,
) -> i64 {
    let output = max_output_tokens.unwrap_or(cfg.reserve_output_tokens);
    let usd = (input_tokens as f64 * price.input + output as f64 * price.output) / 1e6;
    to_micros(usd.min(cfg.reserve_max_usd).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn months_and_their_lifetimes() {
        // 2024-02-29 12:00 UTC: a leap day.
        let (m, ttl) = month(at(1_709_208_000));
        assert_eq!(m, "2024-02");
        assert_eq!(ttl.as_secs(), 12 * 3600 + 31 * 86_400);
        assert_eq!(month(at(0)).0, "1970-01");
        assert_eq!(month(at(1_735_689_599)).0, "2024-12");
        assert_eq!(month(at(1_735_689_600)).0, "2025-01");
        let (m, ttl) = month(at(1_735_689_599));
        assert_eq!((m.as_str(), ttl.as_secs()), ("2024-12", 1 + 31 * 86_400));
    }

    #[test]
    fn sliding_window_weighs_the_previous_minute() {
        let w = Window::at(90_000); // 30 s into minute 1
        assert_eq!(w.index, 1);
        assert!((w.prev_weight() - 0.5).abs() < 1e-12);
        // 10 in the previous minute count as 5 now.
        assert!(w.allows(10, 4, 1, 10));
        assert!(!w.allows(10, 5, 1, 10));
        assert!(Window::at(0).allows(0, 9, 1, 10));
        assert!(!Window::at(0).allows(0, 10, 1, 10));
    }

    #[test]
    fn retry_after_is_when_the_request_would_fit() {
        // 30 s into the minute, 10 before, 5 now, limit 10: at 36 s the previous minute
        // weighs 4.
        let w = Window::at(90_000);
        assert_eq!(w.retry_after(10, 5, 1, 10), Duration::from_secs(6));
        // The current minute alone is full: wait for the next one and for 10 to decay to 9.
        assert_eq!(w.retry_after(0, 10, 1, 10), Duration::from_secs(36));
        // Never below a second.
        assert_eq!(w.retry_after(0, 0, 1, 10), Duration::from_secs(1));
    }

    #[test]
    fn reservation_is_the_estimate_capped() {
        let price = PerMtok {
            input: 3.0,
            output: 15.0,
            cached_input: 0.3,
        };
        let cfg = ReserveConfig::default();
        // 10k prompt tokens at $3/M and 1k completion tokens at $15/M: $0.045.
        assert_eq!(reservation(10_000, Some(1000), price, &cfg), 45_000);
        assert_eq!(
            reservation(10_000, None, price, &cfg),
            to_micros(0.03 + 0.01536)
        );
        // 200k tokens of context and 64k max_tokens would be $1.56: capped.
        assert_eq!(reservation(200_000, Some(64_000), price, &cfg), 500_000);
        assert_eq!(to_micros(f64::NAN), 0);
        assert!((from_micros(1_500_000) - 1.5).abs() < 1e-12);
    }
}
