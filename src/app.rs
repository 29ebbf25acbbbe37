//! The gateway's shared state: the current policy with its upstream clients (swapped whole
//! on reload), the metrics, the recent decisions of the live page, and readiness. Plain data:
//! the way a request takes starts in `router`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::govern::Governor;
use crate::metrics::Metrics;
use crate::quality::feedback::FeedbackStore;
use crate::ui::Recent;
pub use crate::upstream::Runtime;
use crate::upstream::health;

pub struct App {
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub metrics: Arc<Metrics>,
    /// The latest routing decisions, for the live page.
    pub recent: Recent,
    /// Rate limits and budgets of client keys, over the policy's state store.
    pub governor: Arc<Governor>,
    /// Who answered each recent request, for `POST /v1/feedback`.
    pub feedback: FeedbackStore,
    /// The latest probe scores (`probe:` in the policy), for its floor.
    pub probe_scores: crate::quality::schedule::ProbeScores,
    /// Shadow spend, agreement and the quality gate's tally.
    pub shadow: crate::quality::shadow::ShadowState,
    ready: AtomicBool,
}

impl App {
    pub fn new(runtime: Runtime) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new());
        let governor = Arc::new(Governor::for_policy(&runtime.policy.governance, &metrics));
        let app = App {
            runtime: Arc::new(ArcSwap::from_pointee(runtime)),
            metrics,
            recent: Recent::default(),
            governor,
            feedback: FeedbackStore::default(),
            probe_scores: Default::default(),
            shadow: Default::default(),
            ready: AtomicBool::new(true),
        };
        app.metrics.preset(&app.runtime.load().policy);
        app.publish_upstream_state();
        health::spawn(&app.runtime, &app.metrics);
        app.refresh_budgets();
        let app = Arc::new(app);
        crate::quality::schedule::spawn(&app);
        app
    }

    /// Reads the teams' spend this month from the state store, for the budget gauges.
    pub fn refresh_budgets(&self) {
        let (governor, rt) = (self.governor.clone(), self.runtime.load_full());
        tokio::spawn(async move { governor.refresh_budgets(&rt.policy.governance).await });
    }

    /// Republishes the upstream gauges from the current policy (after a reload).
    pub fn publish_upstream_state(&self) {
        health::publish(&self.runtime.load(), &self.metrics);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
