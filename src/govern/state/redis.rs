//! The Redis store: each operation is one Lua script, which Redis runs atomically, so two
//! replicas can never both pass a check that only one of them fits under (the last
//! request of a minute, the last dollar of a month). The scripts are the algorithms of
//! `super::memory`, line for line.
//!
//! One `ConnectionManager` (a multiplexed connection, pipelined, shared by every request)
//! that reconnects by itself after an I/O error; every operation has a deadline, so a
//! Redis that is down or stalled costs a request at most `timeout`.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use super::{Admit, BudgetLine, RateCheck, Reserve, StoreError};
use crate::govern::limits::Window;
use crate::secret::Secret;

// ARGV: n, weight of the previous minute, expiry (ms), then limit, need, add per check;
// KEYS: current and previous minute's counter per check.
const ADMIT: &str = r"
local n = tonumber(ARGV[1])
local w = tonumber(ARGV[2])
for i = 1, n do
  local curr = tonumber(redis.call('GET', KEYS[2*i-1]) or '0')
  local prev = tonumber(redis.call('GET', KEYS[2*i]) or '0')
  if prev * w + (curr + tonumber(ARGV[3*i+2])) > tonumber(ARGV[3*i+1]) then
    return {i, prev, curr}
  end
end
for i = 1, n do
  local add = tonumber(ARGV[3*i+3])
  if add > 0 then
    redis.call('INCRBY', KEYS[2*i-1], add)
    redis.call('PEXPIRE', KEYS[2*i-1], ARGV[3])
  end
end
return {0, 0, 0}
";

const ADD: &str = r"
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

const RESERVE: &str = r"
local amount = tonumber(ARGV[1])
for i = 1, #KEYS do
  local spent = tonumber(redis.call('GET', KEYS[i]) or '0')
  if spent + amount > tonumber(ARGV[2+i]) then
    return {i, spent}
  end
end
local out = {0}
for i = 1, #KEYS do
  out[i+1] = redis.call('INCRBY', KEYS[i], amount)
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return out
";

const SETTLE: &str = r"
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('INCRBY', KEYS[i], ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return out
";

pub struct RedisStore {
    conn: ConnectionManager,
    timeout: Duration,
    admit: Script,
    add: Script,
    reserve: Script,
    settle: Script,
}

/// The URL with its password hidden, for log lines.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

fn ints(v: Value) -> Result<Vec<i64>, StoreError> {
    redis::from_redis_value::<Vec<i64>>(v).map_err(|e| StoreError(e.to_string()))
}

impl RedisStore {
    /// Connects lazily: a Redis that is down at start is retried on use, never fatal.
    pub fn new(url: &Secret, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url.expose())
            .map_err(|e| format!("state.redis_url {}: {e}", redacted(url.expose())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(timeout);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("state.redis_url {}: {e}", redacted(url.expose())))?;
        Ok(RedisStore {
            conn,
            timeout,
            admit: Script::new(ADMIT),
            add: Script::new(ADD),
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
        })
    }

    async fn run(&self, inv: redis::ScriptInvocation<'_>) -> Result<Value, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, inv.invoke_async::<Value>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError(e.to_string())),
            Err(_) => Err(StoreError(format!("no answer within {:?}", self.timeout))),
        }
    }

    pub async fn admit(&self, checks: &[RateCheck], now_ms: u64) -> Result<Admit, StoreError> {
        let w = Window::at(now_ms);
        let mut inv = self.admit.prepare_invoke();
        inv.arg(checks.len())
            .arg(w.prev_weight().to_string())
            .arg(super::memory::RATE_TTL_MS);
        for c in checks {
            inv.key(c.current(w)).key(c.previous(w));
            inv.arg(c.limit).arg(c.need).arg(c.add);
        }
        let out = ints(self.run(inv).await?)?;
        match out.as_slice() {
            [0, ..] => Ok(Admit::Allowed),
            [i, prev, curr] => {
                let index = usize::try_from(*i - 1).map_err(|e| StoreError(e.to_string()))?;
                let c = checks.get(index).ok_or(StoreError("bad index".into()))?;
                let (prev, curr) = (prev.max(&0).unsigned_abs(), curr.max(&0).unsigned_abs());
                Ok(Admit::Limited {
                    index,
                    retry_after: w.retry_after(prev, curr, c.need, c.limit),
                })
            }
            _ => Err(StoreError(format!("unexpected answer {out:?}"))),
        }
    }

    pub async fn add(&self, key: &str, amount: u64, now_ms: u64) -> Result<(), StoreError> {
        let w = Window::at(now_ms);
        let mut inv = self.add.prepare_invoke();
        inv.key(RateCheck::key_at(key, w.index))
            .arg(amount)
            .arg(super::memory::RATE_TTL_MS);
        self.run(inv).await.map(|_| ())
    }

    pub async fn reserve(
        &self,
        lines: &[BudgetLine],
        amount: i64,
        ttl_ms: u64,
        _now_ms: u64,
    ) -> Result<Reserve, StoreError> {
        let mut inv = self.reserve.prepare_invoke();
        inv.arg(amount).arg(ttl_ms);
        for l in lines {
            inv.key(&l.key).arg(l.limit);
        }
        let out = ints(self.run(inv).await?)?;
        match out.as_slice() {
            [0, spent @ ..] => Ok(Reserve::Reserved {
                spent: spent.to_vec(),
            }),
            [i, spent] => Ok(Reserve::Over {
                index: usize::try_from(*i - 1).map_err(|e| StoreError(e.to_string()))?,
                spent: *spent,
            }),
            _ => Err(StoreError(format!("unexpected answer {out:?}"))),
        }
    }

    pub async fn settle(
        &self,
        keys: &[String],
        delta: i64,
        ttl_ms: u64,
        _now_ms: u64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut inv = self.settle.prepare_invoke();
        inv.arg(delta).arg(ttl_ms);
        for k in keys {
            inv.key(k);
        }
        ints(self.run(inv).await?)
    }

    pub async fn spent(&self, keys: &[String], _now_ms: u64) -> Result<Vec<i64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("MGET").arg(keys).to_owned();
        let got =
            tokio::time::timeout(self.timeout, cmd.query_async::<Vec<Option<i64>>>(&mut conn))
                .await
                .map_err(|_| StoreError(format!("no answer within {:?}", self.timeout)))?
                .map_err(|e| StoreError(e.to_string()))?;
        Ok(got.into_iter().map(|v| v.unwrap_or(0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redacted("redis://user:hunter2@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
