//! Counters shared by replicas: rate windows and budget spend, in Redis when the policy
//! names one, else in this process. Both stores implement `Store` with the same algorithm
//! (Lua scripts in Redis, one lock in memory), so every update is atomic in either.
//!
//! When Redis fails, `State` does what the policy says: `open` counts in this process
//! (each replica then enforces the limits on its own traffic: a budget can be overspent by
//! up to the number of replicas times what each lets through while Redis is down), warns,
//! and exports `tiergate_state_backend_up 0`; `closed` refuses (429). Either way the
//! connection is retried on the next request, and the gauge returns to 1 on success.

pub mod memory;
pub mod redis;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntGauge;
use serde::Deserialize;

use crate::govern::limits::Window;
use crate::secret::Secret;
pub use memory::Memory;
pub use redis::RedisStore;

#[derive(Debug, Clone, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(pub String);

/// One rate limit to check (and count) for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCheck {
    /// The counter's name without its minute, e.g. `tiergate:rpm:alice`.
    pub key: String,
    pub limit: u64,
    /// What must still fit under the limit (1 for a request; 1 token for tokens per minute,
    /// whose real count is added when the request ends).
    pub need: u64,
    /// What is counted now if every check passes.
    pub add: u64,
}

/// `parts` joined, in one allocation: counter names are built on every request, and
/// `format!` cost more than the counting itself.
pub fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

impl RateCheck {
    pub fn key_at(key: &str, minute: u64) -> String {
        let mut buf = [0u8; 20];
        concat(&[key, ":", crate::digits::decimal(minute, &mut buf)])
    }

    pub fn current(&self, w: Window) -> String {
        Self::key_at(&self.key, w.index)
    }

    pub fn previous(&self, w: Window) -> String {
        Self::key_at(&self.key, w.index.saturating_sub(1))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Admit {
    Allowed,
    /// `checks[index]` is over its limit; nothing was counted.
    Limited {
        index: usize,
        retry_after: Duration,
    },
}

/// One budget a reservation must fit under: the month's counter and its limit, micro-USD.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetLine {
    pub key: String,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reserve {
    /// Reserved on every line; their new totals.
    Reserved { spent: Vec<i64> },
    /// `lines[index]` would go over; nothing was reserved.
    Over { index: usize, spent: i64 },
}

/// A store of counters whose every operation is atomic.
pub trait Store: Send + Sync {
    /// Checks every rate limit; only if all pass, counts each check's `add`.
    fn admit(
        &self,
        checks: &[RateCheck],
        now_ms: u64,
    ) -> impl Future<Output = Result<Admit, StoreError>> + Send;
    /// Adds to the current minute of a rate counter (tokens, once known).
    fn add(
        &self,
        key: &str,
        amount: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds `amount` to every line only if each stays within its limit.
    fn reserve(
        &self,
        lines: &[BudgetLine],
        amount: i64,
        ttl_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<Reserve, StoreError>> + Send;
    /// Adds `delta` (negative when the request cost less than reserved) to every counter.
    fn settle(
        &self,
        keys: &[String],
        delta: i64,
        ttl_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;
    fn spent(
        &self,
        keys: &[String],
        now_ms: u64,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;
}

impl Store for Memory {
    async fn admit(&self, checks: &[RateCheck], now_ms: u64) -> Result<Admit, StoreError> {
        Memory::admit(self, checks, now_ms)
    }
    async fn add(&self, key: &str, amount: u64, now_ms: u64) -> Result<(), StoreError> {
        Memory::add(self, key, amount, now_ms)
    }
    async fn reserve(
        &self,
        lines: &[BudgetLine],
        amount: i64,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Reserve, StoreError> {
        Memory::reserve(self, lines, amount, ttl_ms, now_ms)
    }
    async fn settle(
        &self,
        keys: &[String],
        delta: i64,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<i64>, StoreError> {
        Memory::settle(self, keys, delta, ttl_ms, now_ms)
    }
    async fn spent(&self, keys: &[String], now_ms: u64) -> Result<Vec<i64>, StoreError> {
        Memory::spent(self, keys, now_ms)
    }
}

impl Store for RedisStore {
    async fn admit(&self, checks: &[RateCheck], now_ms: u64) -> Result<Admit, StoreError> {
        RedisStore::admit(self, checks, now_ms).await
    }
    async fn add(&self, key: &str, amount: u64, now_ms: u64) -> Result<(), StoreError> {
        RedisStore::add(self, key, amount, now_ms).await
    }
    async fn reserve(
        &self,
        lines: &[BudgetLine],
        amount: i64,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Reserve, StoreError> {
        RedisStore::reserve(self, lines, amount, ttl_ms, now_ms).await
    }
    async fn settle(
        &self,
        keys: &[String],
        delta: i64,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<i64>, StoreError> {
        RedisStore::settle(self, keys, delta, ttl_ms, now_ms).await
    }
    async fn spent(&self, keys: &[String], now_ms: u64) -> Result<Vec<i64>, StoreError> {
        RedisStore::spent(self, keys, now_ms).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Count in this process and let requests through.
    #[default]
    Open,
    /// Refuse requests that need the store (429) until it is back.
    Closed,
}

/// The policy's `state` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `redis://host:port/db`; empty: in memory.
    pub redis_url: Secret,
    pub on_failure: OnFailure,
    /// Longest wait for one answer from Redis.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Put before every counter's name, so that several gateways can share one Redis.
    pub prefix: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            redis_url: Secret::default(),
            on_failure: OnFailure::Open,
            timeout: Duration::from_millis(250),
            prefix: "tiergate:".into(),
        }
    }
}

/// Which store served an operation: a reservation is settled where it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Shared,
    Local,
}

/// Redis is unreachable and the policy says `on_failure: closed`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the shared state store is unavailable")]
pub struct Unavailable;

/// The store the gateway uses: Redis with a local fallback, or memory alone.
pub struct State {
    pub config: StateConfig,
    local: Arc<Memory>,
    redis: Option<RedisStore>,
    up: IntGauge,
    last_warning: Mutex<Option<Instant>>,
}

impl State {
    /// `local` is kept across policy reloads, so in-memory counts survive them.
    pub fn new(config: StateConfig, local: Arc<Memory>, up: IntGauge) -> Result<Self, String> {
        let redis = if config.redis_url.is_empty() {
            None
        } else {
            Some(RedisStore::new(&config.redis_url, config.timeout)?)
        };
        up.set(1);
        Ok(State {
            config,
            local,
            redis,
            up,
            last_warning: Mutex::new(None),
        })
    }

    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    pub fn local(&self) -> &Arc<Memory> {
        &self.local
    }

    fn failed(&self, e: &StoreError) {
        self.up.set(0);
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        // One line every 10 s is enough to say it is still down.
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            let then = match self.config.on_failure {
                OnFailure::Open => "counting in this process (fail-open)",
                OnFailure::Closed => "refusing requests that need it (fail-closed)",
            };
            tracing::warn!("{e}; {then} until it answers again");
        }
    }

    /// Runs `op` on Redis (or memory when there is no Redis); on a Redis failure, on the
    /// local store when failing open.
    pub async fn run<'a, T, F, Fut, L>(
        &'a self,
        op: F,
        local: L,
    ) -> Result<(T, Served), Unavailable>
    where
        F: FnOnce(&'a RedisStore) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
        L: FnOnce(&Memory) -> Result<T, StoreError>,
    {
        let Some(redis) = &self.redis else {
            return local(&self.local)
                .map(|v| (v, Served::Local))
                .map_err(|_| Unavailable);
        };
        match op(redis).await {
            Ok(v) => {
                if self.up.get() != 1 {
                    self.up.set(1);
                    tracing::info!("state store answers again");
                }
                Ok((v, Served::Shared))
            }
            Err(e) => {
                self.failed(&e);
                match self.config.on_failure {
                    OnFailure::Open => local(&self.local)
                        .map(|v| (v, Served::Local))
                        .map_err(|_| Unavailable),
                    OnFailure::Closed => Err(Unavailable),
                }
            }
        }
    }

    /// `run` for an operation that must go where an earlier one went (a settlement).
    pub async fn run_at<'a, T, F, Fut, L>(
        &'a self,
        served: Served,
        op: F,
        local: L,
    ) -> Result<T, Unavailable>
    where
        F: FnOnce(&'a RedisStore) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
        L: FnOnce(&Memory) -> Result<T, StoreError>,
    {
        match (served, &self.redis) {
            (Served::Shared, Some(redis)) => op(redis).await.map_err(|e| {
                self.failed(&e);
                Unavailable
            }),
            _ => local(&self.local).map_err(|_| Unavailable),
        }
    }
}

#[cfg(test)]
mod tests;
