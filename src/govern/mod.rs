//! Governance: client keys, what each may use, rate limits and monthly budgets, with their
//! counters shared by replicas through Redis.
//!
//! A request's way through it: `auth::authenticate` (401) -> `Governor::admit` (requests
//! and tokens per minute, 429 with `retry-after`) -> the route filtered by
//! `Caller::may_use_*` (403) -> `Governor::reserve` before forwarding to an upstream that
//! costs money -> `Governor::settle` with the real cost when the request ends.
//!
//! # What tiergate guarantees for budgets across replicas
//! With Redis, every replica reserves from the same counters with one atomic script
//! (check every budget line, then add to all of them, or to none), so:
//! - two requests can never both be admitted on the last dollar: of concurrent
//!   reservations that do not all fit, exactly the ones that fit succeed, whichever
//!   replica they come from;
//! - spend goes beyond a budget only by what requests in flight cost beyond their
//!   reservation (a reservation is capped at `budgets.reserve_max_usd`, so an agent's
//!   large context is not refused for a worst case it will not reach); at most one
//!   request's excess per request in flight, never a replica's worth;
//! - a request whose client hangs up keeps its reservation as spent (never less);
//! - no sync interval: every replica sees every other's spend at once, so there are no
//!   false 429s from stale counts.
//!
//! When Redis fails, `state.on_failure` decides: `closed` refuses what needs the store
//! (429 `state_unavailable`), so the guarantees above hold; `open` counts in each replica
//! (the limits then hold per replica, so spend can go beyond a budget by what the other
//! replicas let through while Redis is down), warns, and exports
//! `tiergate_state_backend_up 0`. Requests reserved in a replica's own counters are
//! settled there; the connection is retried on every request.

pub mod auth;
pub mod config;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod state;

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

pub use auth::{Caller, Denied, authenticate};
pub use config::{Governance, OverBudget};
use limits::{from_micros, month, now_ms};
use state::{Admit, BudgetLine, Memory, RateCheck, Reserve, Served, State, StateConfig};

/// Budget counters of one request, reserved before forwarding.
#[derive(Debug)]
#[must_use = "settle the reservation when the request ends"]
pub struct Reservation {
    keys: Vec<String>,
    amount: i64,
    served: Served,
    team: String,
    /// Where the team's counter is in `keys`.
    team_line: Option<usize>,
}

impl Reservation {
    pub fn micros(&self) -> i64 {
        self.amount
    }
}

/// The metric handles governance updates itself.
#[derive(Clone)]
pub struct GovMetrics {
    pub budget_used: prometheus::GaugeVec,
    pub budget_left: prometheus::GaugeVec,
    /// team, reason
    pub denied: prometheus::IntCounterVec,
}

pub struct Governor {
    state: ArcSwap<State>,
    local: Arc<Memory>,
    up: prometheus::IntGauge,
    metrics: GovMetrics,
}

impl Governor {
    pub fn new(
        config: &StateConfig,
        up: prometheus::IntGauge,
        metrics: GovMetrics,
    ) -> Result<Self, String> {
        let local = Arc::new(Memory::default());
        let state = State::new(config.clone(), local.clone(), up.clone())?;
        Ok(Governor {
            state: ArcSwap::from_pointee(state),
            local,
            up,
            metrics,
        })
    }

    /// The governor of a policy; a store that cannot be built (the policy checks the URL,
    /// so only in theory) leaves counting in memory, said loudly.
    pub fn for_policy(gov: &Governance, metrics: &crate::metrics::Metrics) -> Self {
        let up = metrics.state_backend_up.clone();
        match Governor::new(&gov.state, up.clone(), metrics.governance()) {
            Ok(g) => g,
            Err(e) => {
                tracing::error!("{e}; counting limits and budgets in memory");
                let memory = StateConfig {
                    redis_url: crate::secret::Secret::default(),
                    ..gov.state.clone()
                };
                #[allow(clippy::expect_used)]
                Governor::new(&memory, up, metrics.governance())
                    .expect("the in-memory store cannot fail")
            }
        }
    }

    /// After a policy reload: a new store only when the state section changed (the
    /// connection and the local counts are kept otherwise).
    pub fn reconfigure(&self, config: &StateConfig) -> Result<(), String> {
        if &self.state.load().config == config {
            return Ok(());
        }
        let state = State::new(config.clone(), self.local.clone(), self.up.clone())?;
        self.state.store(Arc::new(state));
        Ok(())
    }

    pub fn is_shared(&self) -> bool {
        self.state.load().is_shared()
    }

    fn key_name(prefix: &str, what: &str, name: &str) -> String {
        state::concat(&[prefix, what, ":", name])
    }

    fn deny(&self, team: &str, reason: &str, d: Denied) -> Denied {
        self.metrics.denied.with_label_values(&[team, reason]).inc();
        d
    }

    /// Requests and tokens per minute of the caller's key: counts this request, or says
    /// when to come back.
    pub async fn admit(&self, caller: &Caller) -> Result<(), Denied> {
        let Some(key) = &caller.key else {
            return Ok(());
        };
        let e = &key.entry;
        let state = self.state.load();
        let prefix = &state.config.prefix;
        let mut checks = Vec::with_capacity(2);
        let mut what = Vec::with_capacity(2);
        if let Some(rpm) = e.rpm {
            checks.push(RateCheck {
                key: Self::key_name(prefix, "rpm", &e.name),
                limit: rpm,
                need: 1,
                add: 1,
            });
            what.push(("requests per minute", "rpm"));
        }
        if let Some(tpm) = e.tpm {
            // Tokens are known when the request ends: admitted while the last minute has
            // room for at least one more.
            checks.push(RateCheck {
                key: Self::key_name(prefix, "tpm", &e.name),
                limit: tpm,
                need: 1,
                add: 0,
            });
            what.push(("tokens per minute", "tpm"));
        }
        if checks.is_empty() {
            return Ok(());
        }
        let now = now_ms(SystemTime::now());
        let out = state
            .run(|r| r.admit(&checks, now), |m| m.admit(&checks, now))
            .await;
        match out {
            Ok((Admit::Allowed, _)) => Ok(()),
            Ok((Admit::Limited { index, retry_after }, _)) => {
                let (limit, reason) = what.get(index).copied().unwrap_or(("rate", "rate"));
                Err(self.deny(
                    e.team.as_str(),
                    reason,
                    Denied::RateLimited { limit, retry_after },
                ))
            }
            Err(_) => Err(self.deny(&e.team, "state", Denied::StateUnavailable)),
        }
    }

    /// Reserves `micros` on the key's budget and its team's before forwarding to an
    /// upstream that costs money. None when the caller has no key (nothing to count).
    pub async fn reserve(
        &self,
        gov: &Governance,
        caller: &Caller,
        micros: i64,
    ) -> Result<Option<Reservation>, Denied> {
        let Some(key) = &caller.key else {
            return Ok(None);
        };
        let e = &key.entry;
        let state = self.state.load();
        let prefix = &state.config.prefix;
        let now = SystemTime::now();
        let (m, ttl) = month(now);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let team = gov.teams.get(&e.team);
        let mut lines = Vec::with_capacity(2);
        let mut scopes = Vec::with_capacity(2);
        if let Some(b) = e.budget_usd {
            lines.push(BudgetLine {
                key: state::concat(&[prefix, "budget:key:", &e.name, ":", &m]),
                limit: limits::to_micros(b),
            });
            scopes.push("key");
        }
        // The team's counter is always kept: it is the team's "budget used".
        lines.push(BudgetLine {
            key: state::concat(&[prefix, "budget:team:", &e.team, ":", &m]),
            limit: team
                .and_then(|t| t.budget_usd)
                .map_or(i64::MAX, limits::to_micros),
        });
        scopes.push("team");
        let team_line = lines.len() - 1;
        let now = now_ms(now);
        let out = state
            .run(
                |r| r.reserve(&lines, micros, ttl_ms, now),
                |mem| mem.reserve(&lines, micros, ttl_ms, now),
            )
            .await;
        match out {
            Ok((Reserve::Reserved { spent }, served)) => {
                if let Some(&used) = spent.get(team_line) {
                    self.publish_budget(gov, &e.team, used);
                }
                Ok(Some(Reservation {
                    keys: lines.into_iter().map(|l| l.key).collect(),
                    amount: micros,
                    served,
                    team: e.team.clone(),
                    team_line: Some(team_line),
                }))
            }
            Ok((Reserve::Over { index, spent }, _)) => {
                if index == team_line {
                    self.publish_budget(gov, &e.team, spent);
                }
                let scope = scopes.get(index).copied().unwrap_or("key");
                Err(self.deny(&e.team, "budget", Denied::OverBudget { scope }))
            }
            Err(_) => Err(self.deny(&e.team, "state", Denied::StateUnavailable)),
        }
    }

    /// Whether the caller's team answers an exhausted budget with a downgrade.
    pub fn downgrades(gov: &Governance, caller: &Caller) -> bool {
        gov.teams
            .get(caller.team())
            .is_some_and(|t| t.over_budget == OverBudget::Downgrade)
    }

    /// When the request ends: the real cost replaces the reservation, and its tokens count
    /// towards the key's tokens per minute.
    pub async fn settle(
        &self,
        gov: &Governance,
        caller: &Caller,
        reservation: Option<Reservation>,
        actual_micros: i64,
        tokens: u64,
    ) {
        let state = self.state.load();
        let now = SystemTime::now();
        let now_ms = now_ms(now);
        if let Some(key) = &caller.key
            && key.entry.tpm.is_some()
            && tokens > 0
        {
            let k = Self::key_name(&state.config.prefix, "tpm", &key.entry.name);
            let _ = state
                .run(|r| r.add(&k, tokens, now_ms), |m| m.add(&k, tokens, now_ms))
                .await;
        }
        let Some(r) = reservation else { return };
        let delta = actual_micros - r.amount;
        if delta == 0 {
            return;
        }
        let ttl_ms = u64::try_from(month(now).1.as_millis()).unwrap_or(u64::MAX);
        let out = state
            .run_at(
                r.served,
                |s| s.settle(&r.keys, delta, ttl_ms, now_ms),
                |m| m.settle(&r.keys, delta, ttl_ms, now_ms),
            )
            .await;
        if let (Ok(totals), Some(i)) = (out, r.team_line)
            && let Some(&used) = totals.get(i)
        {
            self.publish_budget(gov, &r.team, used);
        }
    }

    fn publish_budget(&self, gov: &Governance, team: &str, used_micros: i64) {
        let used = from_micros(used_micros);
        self.metrics
            .budget_used
            .with_label_values(&[team])
            .set(used);
        if let Some(total) = gov.teams.get(team).and_then(|t| t.total_budget_usd) {
            self.metrics
                .budget_left
                .with_label_values(&[team])
                .set((total - used).max(0.0));
        }
    }

    /// Reads every team's spend this month (at start and after a reload), so the budget
    /// gauges are right before the first request.
    pub async fn refresh_budgets(&self, gov: &Governance) {
        let state = self.state.load();
        let (m, _) = month(SystemTime::now());
        let teams: Vec<&str> = gov.teams.keys().map(String::as_str).collect();
        let keys: Vec<String> = teams
            .iter()
            .map(|t| format!("{}budget:team:{t}:{m}", state.config.prefix))
            .collect();
        let now = now_ms(SystemTime::now());
        if let Ok((spent, _)) = state
            .run(|r| r.spent(&keys, now), |mem| mem.spent(&keys, now))
            .await
        {
            for (team, used) in teams.iter().zip(spent) {
                self.publish_budget(gov, team, used);
            }
        }
    }
}

#[cfg(test)]
mod tests;
