//! The probe in `serve`: when the policy has `probe:`, the suite runs at start and then every
//! `interval` against its upstreams (over their own pooled clients, one task at a time),
//! exporting `tiergate_probe_score{upstream,task}`; each upstream's mean score is kept for
//! the policy floor (`ProbeScores::under_floor`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::app::App;
use crate::config::Policy;
use crate::quality::probe::{self, Options, Programs};

/// The latest mean probe score of each upstream, by name.
#[derive(Debug, Default)]
pub struct ProbeScores(Mutex<HashMap<String, f64>>);

impl ProbeScores {
    pub fn set(&self, upstream: &str, score: f64) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(upstream.to_string(), score);
        }
    }

    pub fn get(&self, upstream: &str) -> Option<f64> {
        self.0.lock().ok()?.get(upstream).copied()
    }

    /// Whether the policy's floor applies to `upstream` now: it has a score, under the floor.
    pub fn under_floor(&self, policy: &Policy, upstream: usize) -> bool {
        let Some(floor) = policy.probe.as_ref().and_then(|p| p.floor) else {
            return false;
        };
        self.get(&policy.upstreams[upstream].name)
            .is_some_and(|s| s < floor)
    }
}

/// Starts the schedule (a no-op outside a runtime); it ends when the app is dropped and
/// follows policy reloads (a policy without `probe:` pauses it).
pub fn spawn(app: &Arc<App>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak: Weak<App> = Arc::downgrade(app);
    handle.spawn(async move {
        loop {
            let Some(app) = weak.upgrade() else { return };
            let wait = round(&app).await;
            drop(app);
            tokio::time::sleep(wait).await;
        }
    });
}

/// One round of the probe, if the policy asks for it; returns how long to wait for the next.
async fn round(app: &Arc<App>) -> Duration {
    let rt = app.runtime.load_full();
    let Some(cfg) = rt.policy.probe.clone() else {
        return Duration::from_secs(5);
    };
    let opts = Options {
        max_tokens: cfg.max_tokens,
        tasks: Vec::new(),
    };
    let programs = tokio::task::spawn_blocking(Programs::find)
        .await
        .unwrap_or_default();
    for &i in &cfg.upstreams {
        let (up, run) = (&rt.policy.upstreams[i], &rt.upstreams[i]);
        if !up.is_enabled() {
            continue;
        }
        let m = &app.metrics;
        let results = probe::probe_upstream(up, run, &opts, &programs, |r| {
            m.probe_score
                .with_label_values(&[&up.name, r.task])
                .set(r.score);
            m.probe_cost_usd
                .with_label_values(&[&up.name])
                .inc_by(r.cost_usd);
        })
        .await;
        let mean = probe::mean_score(&results);
        app.probe_scores.set(&up.name, mean);
        tracing::info!(upstream = %up.name, score = mean, passed = results.iter().filter(|r| r.pass).count(), tasks = results.len(), "probe round");
    }
    cfg.interval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_applies_under_it_only() {
        let text = "upstreams:\n  - { name: local, kind: openai, base_url: http://127.0.0.1:1/v1, model: m, key_required: false }\ntiers:\n  - { name: primitive, upstreams: [local] }\n  - { name: architecture, upstreams: [local] }\nprobe: { interval: 1h, floor: 0.5 }\n";
        let p = crate::config::parse("p", text, |_| None).unwrap();
        let s = ProbeScores::default();
        assert!(!s.under_floor(&p, 0), "no score yet");
        s.set("local", 0.4);
        assert!(s.under_floor(&p, 0));
        s.set("local", 0.5);
        assert!(!s.under_floor(&p, 0));
    }
}
