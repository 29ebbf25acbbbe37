//! A compiled policy with the clients of its upstreams and the answer checks' budget of its
//! tiers: swapped as one on reload, so a request keeps the snapshot it started with.

use crate::config::Policy;
use crate::quality::budget::CheckBudget;

use super::client::{UpstreamRuntime, build, inherit};

pub struct Runtime {
    pub policy: Policy,
    pub upstreams: Vec<UpstreamRuntime>,
    /// By tier index.
    pub check_budgets: Vec<CheckBudget>,
}

impl Runtime {
    pub fn new(policy: Policy) -> Result<Self, String> {
        let upstreams = policy
            .upstreams
            .iter()
            .map(build)
            .collect::<Result<_, _>>()?;
        let check_budgets = policy
            .tiers
            .iter()
            .map(|t| CheckBudget::new(t.quality.checks_per_second))
            .collect();
        Ok(Runtime {
            policy,
            upstreams,
            check_budgets,
        })
    }

    /// Takes over the run-time state of `old`'s upstreams that keep their name.
    pub fn inherit(&mut self, old: &Runtime) {
        inherit(
            &mut self.upstreams,
            &self.policy.upstreams,
            &old.upstreams,
            &old.policy.upstreams,
        );
    }
}
