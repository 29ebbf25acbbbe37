//! The in-memory store: one process's counters behind one lock. Each operation takes the
//! lock once, so it is as atomic here as the Lua scripts are in Redis, and runs the same
//! algorithm (see `super::redis` for the scripts).

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Admit, BudgetLine, RateCheck, Reserve, StoreError};
use crate::govern::limits::{WINDOW_MS, Window};

/// Counter value and the millisecond it expires at.
type Counters = HashMap<String, (i64, u64)>;

#[derive(Debug, Default)]
pub struct Memory {
    counters: Mutex<Counters>,
}

/// Counters of a window live two windows: the current one and its role as "previous".
pub const RATE_TTL_MS: u64 = 2 * WINDOW_MS;

fn get(map: &Counters, key: &str, now_ms: u64) -> i64 {
    map.get(key)
        .filter(|(_, exp)| *exp > now_ms)
        .map_or(0, |(v, _)| *v)
}

fn incr(map: &mut Counters, key: &str, by: i64, now_ms: u64, ttl_ms: u64) -> i64 {
    // One lookup; the name is copied only for a counter that is new.
    if let Some(slot) = map.get_mut(key) {
        let v = if slot.1 > now_ms { slot.0 } else { 0 } + by;
        *slot = (v, now_ms + ttl_ms);
        return v;
    }
    map.insert(key.to_string(), (by, now_ms + ttl_ms));
    by
}

impl Memory {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A panic while holding the lock leaves whole numbers behind: keep using them.
        let mut map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            let now = crate::govern::limits::now_ms(std::time::SystemTime::now());
            map.retain(|_, (_, exp)| *exp > now);
        }
        map
    }

    pub fn admit(&self, checks: &[RateCheck], now_ms: u64) -> Result<Admit, StoreError> {
        let w = Window::at(now_ms);
        let mut map = self.lock();
        for (i, c) in checks.iter().enumerate() {
            let curr = get(&map, &c.current(w), now_ms).max(0) as u64;
            let prev = get(&map, &c.previous(w), now_ms).max(0) as u64;
            if !w.allows(prev, curr, c.need, c.limit) {
                return Ok(Admit::Limited {
                    index: i,
                    retry_after: w.retry_after(prev, curr, c.need, c.limit),
                });
            }
        }
        for c in checks.iter().filter(|c| c.add > 0) {
            let by = i64::try_from(c.add).unwrap_or(i64::MAX);
            incr(&mut map, &c.current(w), by, now_ms, RATE_TTL_MS);
        }
        Ok(Admit::Allowed)
    }

    pub fn add(&self, key: &str, amount: u64, now_ms: u64) -> Result<(), StoreError> {
        let w = Window::at(now_ms);
        let by = i64::try_from(amount).unwrap_or(i64::MAX);
        incr(
            &mut self.lock(),
            &RateCheck::key_at(key, w.index),
            by,
            now_ms,
            RATE_TTL_MS,
        );
        Ok(())
    }

    pub fn reserve(
        &self,
        lines: &[BudgetLine],
        amount: i64,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Reserve, StoreError> {
        let mut map = self.lock();
        for (i, l) in lines.iter().enumerate() {
            let spent = get(&map, &l.key, now_ms);
            if spent + amount > l.limit {
                return Ok(Reserve::Over { index: i, spent });
            }
        }
        let spent = lines
            .iter()
            .map(|l| incr(&mut map, &l.key, amount, now_ms, ttl_ms))
            .collect();
        Ok(Reserve::Reserved { spent })
    }

    pub fn settle(
        &self,
        keys: &[String],
        delta: i64,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut map = self.lock();
        Ok(keys
            .iter()
            .map(|k| incr(&mut map, k, delta, now_ms, ttl_ms))
            .collect())
    }

    pub fn spent(&self, keys: &[String], now_ms: u64) -> Result<Vec<i64>, StoreError> {
        let map = self.lock();
        Ok(keys.iter().map(|k| get(&map, k, now_ms)).collect())
    }
}
