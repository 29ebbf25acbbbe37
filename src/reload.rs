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
    let old = app.runtime.load();
    // An emptied keys file (or one caught mid-write) would open the gateway to anyone.
    if let Some(file) = &policy.governance.keys_file
        && policy.governance.is_open()
        && !old.policy.governance.is_open()
    {
        return Err(format!(
            "keys file {} has no keys: that would open the gateway to anyone, so the last good keys stay (to run open, restart without a keys file)",
            file.display()
        ));
    }
    let mut rt = Runtime::new(policy)?;
    rt.inherit(&old);
    for w in rt.policy.warnings() {
        tracing::warn!("{w}");
    }
    if let Err(e) = app.governor.reconfigure(&rt.policy.governance.state) {
        tracing::error!("state store not changed: {e}");
    }
    app.metrics.preset(&rt.policy);
    app.runtime.store(Arc::new(rt));
    app.publish_upstream_state();
    app.refresh_budgets();
    Ok(())
}

/// `reload`, logged.
pub fn reload_logged(app: &App, path: Option<&Path>, why: &str) {
    match reload(app, path) {
        Ok(()) => tracing::info!(why, "policy reloaded"),
        Err(e) => tracing::error!(why, "policy reload rejected, keeping the old one: {e}"),
    }
}

/// What the watcher compares for one file. Kubernetes updates a mounted ConfigMap or Secret
/// by pointing a `..data` symlink at a new directory, so the file may keep its length and
/// modification time: where the links lead, the inode and a hash of the content tell.
#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    target: PathBuf,
    inode: (u64, u64),
    len: u64,
    modified: Option<SystemTime>,
    hash: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let target = std::fs::canonicalize(path).ok()?;
    let bytes = std::fs::read(&target).ok()?;
    let m = std::fs::metadata(&target).ok()?;
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&bytes, &mut h);
    Some(Stamp {
        inode: inode(&m),
        len: m.len(),
        modified: m.modified().ok(),
        hash: std::hash::Hasher::finish(&h),
        target,
    })
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// The policy file (none for the embedded default), then the files the running policy names
/// (upstream CA bundles and the keys file, often mounted from a Secret): a change in any of
/// them reloads.
fn stamps(app: &App, path: Option<&Path>) -> Vec<(PathBuf, Option<Stamp>)> {
    let rt = app.runtime.load();
    let named = rt
        .policy
        .upstreams
        .iter()
        .filter_map(|u| u.ca_file.clone())
        .chain(rt.policy.governance.keys_file.clone());
    path.map(Path::to_path_buf)
        .into_iter()
        .chain(named)
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect()
}

/// How long a changed file must hold still before it is loaded.
const SETTLE: Duration = Duration::from_millis(200);

/// Reloads the policy (`path`, or the embedded default when None) whenever it or a file it
/// names changes (polled every `every`). A file that fails to load keeps the last good
/// policy, and the next change is tried again. Ends when the app is gone.
pub fn watch(app: &Arc<App>, path: Option<PathBuf>, every: Duration) {
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut seen = match weak.upgrade() {
            Some(app) => stamps(&app, path.as_deref()),
            None => return,
        };
        loop {
            tokio::time::sleep(every).await;
            let Some(app) = weak.upgrade() else { return };
            let now = stamps(&app, path.as_deref());
            // A policy that is missing for a moment (mid-swap) is not a change.
            let policy_there = path.is_none() || now.first().is_some_and(|(_, s)| s.is_some());
            if policy_there && now != seen {
                // Debounce: a file still being written is looked at again after a moment,
                // and loaded only once it holds still.
                tokio::time::sleep(every.min(SETTLE)).await;
                if stamps(&app, path.as_deref()) != now {
                    continue;
                }
                reload_logged(&app, path.as_deref(), "file changed");
                // A new policy may name other files: their first look counts as seen. A
                // rejected one leaves the old policy, whose files are now seen as they are.
                seen = stamps(&app, path.as_deref());
            }
        }
    });
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::symlink;

    /// Lays `files` out as the kubelet does: `..TS/name`, `..data -> ..TS`, `name -> ..data/name`.
    fn kubelet_write(dir: &Path, ts: &str, files: &[(&str, &str)], mtime: SystemTime) {
        let real = dir.join(ts);
        std::fs::create_dir(&real).unwrap();
        for (name, text) in files {
            std::fs::write(real.join(name), text).unwrap();
            let f = std::fs::File::options()
                .write(true)
                .open(real.join(name))
                .unwrap();
            f.set_modified(mtime).unwrap();
            let link = dir.join(name);
            if link.symlink_metadata().is_err() {
                symlink(Path::new("..data").join(name), link).unwrap();
            }
        }
        let tmp = dir.join("..data_tmp");
        symlink(ts, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
    }

    #[test]
    fn a_data_swap_with_the_same_length_and_mtime_is_a_change() {
        let dir = std::env::temp_dir().join(format!("tiergate-stamp-{}", fastrand::u64(..)));
        std::fs::create_dir(&dir).unwrap();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        kubelet_write(
            &dir,
            "..2026_01_01_00_00_00.000000001",
            &[("ca.pem", "one")],
            t,
        );
        let path = dir.join("ca.pem");
        let before = stamp(&path).unwrap();
        assert_eq!(stamp(&path), Some(before), "a stamp is stable");
        let before = stamp(&path).unwrap();
        kubelet_write(
            &dir,
            "..2026_01_01_00_01_00.000000002",
            &[("ca.pem", "two")],
            t,
        );
        let after = stamp(&path).unwrap();
        assert_eq!((after.len, after.modified), (before.len, before.modified));
        assert_ne!(after, before);
        // Same bytes in a new directory: still a change (a projected volume whose other
        // file changed swaps every file's target).
        kubelet_write(
            &dir,
            "..2026_01_01_00_02_00.000000003",
            &[("ca.pem", "two")],
            t,
        );
        assert_ne!(stamp(&path).unwrap(), after);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
