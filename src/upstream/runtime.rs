//! A compiled policy with the clients of its upstreams: swapped as one on reload, so a
//! request keeps the snapshot it started with.

use crate::config::Policy;

use super::client::{UpstreamRuntime, build, inherit};

pub struct Runtime {
    pub policy: Policy,
    pub upstreams: Vec<UpstreamRuntime>,
}

impl Runtime {
    pub fn new(policy: Policy) -> Result<Self, String> {
        let upstreams = policy
            .upstreams
            .iter()
            .map(build)
            .collect::<Result<_, _>>()?;
        Ok(Runtime { policy, upstreams })
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
