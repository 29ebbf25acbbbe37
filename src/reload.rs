//! Hot reload of the policy: a fallible prepare (read, parse, validate, build clients) and
//! an infallible swap. Requests in flight keep the snapshot they started with; upstreams
//! that keep their name keep their breaker, health and permits (`Runtime::inherit`). A bad
//! file is rejected with a log line and the old policy stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::app::{App, Runtime};
use crate::config;

/// Loads `path` (the embedded default when None) and, if it is good, swaps it in.
pub fn reload(app: &App, path: Option<&Path>) -> Result<(), String> {
    let policy = config::load(path).map_err(|e| e.to_string())?;
    let mut rt = Runtime::new(policy)?;
    rt.inherit(&app.runtime.load());
    for w in rt.policy.warnings() {
        tracing::warn!("{w}");
    }
    app.metrics.preset(&rt.policy);
    app.runtime.store(Arc::new(rt));
    app.publish_upstream_state();
    Ok(())
}

/// `reload`, logged.
pub fn reload_logged(app: &App, path: Option<&Path>, why: &str) {
    match reload(app, path) {
        Ok(()) => tracing::info!(why, "policy reloaded"),
        Err(e) => tracing::error!(why, "policy reload rejected, keeping the old one: {e}"),
    }
}

/// The file's modification time and length: what the watcher compares.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reloads `path` whenever its modification time or length changes (polled every `every`).
/// Ends when the app is gone.
pub fn watch(app: &Arc<App>, path: PathBuf, every: Duration) {
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut seen = stamp(&path);
        loop {
            tokio::time::sleep(every).await;
            let Some(app) = weak.upgrade() else { return };
            let now = stamp(&path);
            if now.is_some() && now != seen {
                seen = now;
                reload_logged(&app, Some(&path), "file changed");
            }
        }
    });
}
