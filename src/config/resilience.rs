//! Policy sections of the resilience layer: retries, circuit breaker, health checks,
//! spill-over and the limits toward clients. Defaults keep an upstream that says nothing
//! behaving as before (no retries, no health checks, no latency spill-over).

use std::time::Duration;

use serde::Deserialize;

/// Retries of the same upstream before moving on to the route's next one.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Extra attempts at the same upstream after a retryable failure (0: move on at once).
    pub attempts: u32,
    /// First backoff; doubles each attempt, full jitter, capped at `max_backoff`.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// A 429's `retry-after` is honoured up to this; a longer one means: do not retry.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 0,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(5),
        }
    }
}

/// How many retries the whole gateway may make: `ratio` of the requests, plus a floor of
/// `min_per_second` so that a quiet gateway can still retry.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudgetConfig {
    pub ratio: f64,
    pub min_per_second: f64,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: 0.2,
            min_per_second: 5.0,
        }
    }
}

/// The circuit breaker of one upstream.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    pub enabled: bool,
    /// Opens after this many failures in a row.
    pub consecutive_failures: u32,
    /// Or when at least `min_requests` in `window` failed at this rate or more.
    pub error_rate: f64,
    pub min_requests: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Open this long before half-open probes are let through.
    #[serde(with = "humantime_serde")]
    pub cool_down: Duration,
    /// Probes let through at once while half-open; this many successes close it.
    pub probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            consecutive_failures: 5,
            error_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(10),
            probes: 1,
        }
    }
}

/// Active health checks: `GET {base_url}{path}` every `interval`; 2xx is healthy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub path: String,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Failed checks in a row before the upstream is marked down (one success marks it up).
    pub unhealthy_after: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            path: "/models".into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            unhealthy_after: 2,
        }
    }
}

/// Limits toward clients.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientLimits {
    /// Bytes of a request head (HTTP/1 read buffer; HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Time a client has to send its request head; also how long an idle keep-alive
    /// connection is kept.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a client has to send its request body.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

/// Hedging: when an attempt at this upstream has sent no first byte (for streams: no first
/// event) after the hedge delay, the route's next upstream is asked too; the first answer
/// wins and the other attempt is cancelled (its connection closed, nothing of it counted).
/// The delay is the longer of `after` and the upstream's recent p95 time to first byte (of
/// the same kind, stream or whole), so only its slowest answers are hedged.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HedgeConfig {
    /// Default: on for upstreams that need no API key (`key_required: false`, or none given:
    /// local servers, whose hangs it covers),
    /// off for keyed ones (a hedge from a paid API asks the next one while paying the first).
    pub enabled: Option<bool>,
    #[serde(with = "humantime_serde")]
    pub after: Duration,
    /// Whole (non-streamed) answers too. Off by default: a local server's first byte of a
    /// whole answer is its last, so a long answer would be asked again of a paid upstream
    /// that answers first, and the local answer thrown away. Streams are hedged on their
    /// first event, which comes after the prompt is read, not after the answer is written.
    pub whole: bool,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            enabled: None,
            after: Duration::from_secs(2),
            whole: false,
        }
    }
}

/// The first-byte deadline of each attempt adapts to what the upstream has shown:
/// `multiplier` times its recent p99 time to first byte (of the same kind, stream or whole),
/// no shorter than `floor`, no longer than `timeouts.first_byte`, which also applies until
/// enough answers are known. A hung attempt then ends (and is retried or falls back) long
/// before the ceiling.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveFirstByte {
    pub enabled: bool,
    pub multiplier: f64,
    #[serde(with = "humantime_serde")]
    pub floor: Duration,
}

impl Default for AdaptiveFirstByte {
    fn default() -> Self {
        AdaptiveFirstByte {
            enabled: true,
            multiplier: 4.0,
            floor: Duration::from_secs(5),
        }
    }
}

impl AdaptiveFirstByte {
    /// The deadline for the next attempt, given the ceiling and the recent p99.
    pub fn deadline(&self, ceiling: Duration, p99: Option<Duration>) -> Duration {
        match p99 {
            Some(p) if self.enabled => p.mul_f64(self.multiplier).max(self.floor).min(ceiling),
            _ => ceiling,
        }
    }
}

/// The first problem of an upstream's timeouts, breaker or health check: the key and why.
pub fn problem(u: &super::schema::UpstreamConfig) -> Option<(&'static str, &'static str)> {
    let t = &u.timeouts;
    if [t.connect, t.first_byte, t.idle, t.total]
        .iter()
        .any(|d| d.is_zero())
    {
        return Some(("timeouts", "timeouts must be longer than zero"));
    }
    let a = &u.first_byte_adaptive;
    if a.enabled && (!(a.multiplier >= 1.0 && a.multiplier.is_finite()) || a.floor.is_zero()) {
        return Some((
            "first_byte_adaptive",
            "first_byte_adaptive needs a multiplier of at least 1 and a floor above zero",
        ));
    }
    if u.hedge.enabled != Some(false) && u.hedge.after.is_zero() {
        return Some((
            "hedge",
            "hedge after must be longer than zero (or enabled: false)",
        ));
    }
    let b = &u.breaker;
    if b.enabled && (b.consecutive_failures == 0 || b.probes == 0) {
        return Some((
            "breaker",
            "breaker consecutive_failures and probes must be at least 1",
        ));
    }
    if !(b.error_rate > 0.0 && b.error_rate <= 1.0) {
        return Some(("breaker", "breaker error_rate must be in (0, 1]"));
    }
    if b.window.is_zero() || b.cool_down.is_zero() {
        return Some((
            "breaker",
            "breaker window and cool_down must be longer than zero",
        ));
    }
    if let Some(h) = &u.health
        && (h.interval.is_zero() || h.timeout.is_zero() || !h.path.starts_with('/'))
    {
        return Some((
            "health",
            "health needs an interval and timeout above zero and a path starting with /",
        ));
    }
    None
}
