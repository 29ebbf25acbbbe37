//! Hot reload from a mounted ConfigMap or Secret, laid out on disk exactly as the kubelet
//! writes it: the files live in `..<timestamp>/`, `..data` links to that directory and each
//! visible name links to `..data/<name>`; an update writes a new timestamped directory and
//! renames a fresh `..data` link over the old one. The new file may keep the old one's length
//! and modification time. The real binary must serve the new policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::MockUpstream;
use common::spec::{MockSpec, chat_body, upstream_yaml};

const BIN: &str = env!("CARGO_BIN_EXE_tiergate");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/deploy");

/// A volume directory as the kubelet keeps it (ConfigMap, Secret and projected volumes alike).
struct Volume {
    dir: PathBuf,
    generation: u32,
}

impl Volume {
    fn new(files: &[(&str, &str)]) -> Volume {
        Volume::at(Volume::fresh_dir(), files)
    }

    fn fresh_dir() -> PathBuf {
        std::env::temp_dir().join(format!("tiergate-volume-{}", fastrand::u64(..)))
    }

    fn at(dir: PathBuf, files: &[(&str, &str)]) -> Volume {
        std::fs::create_dir(&dir).unwrap();
        let mut v = Volume { dir, generation: 0 };
        v.update(files);
        v
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The kubelet's atomic update: new `..TS` directory, `..data_tmp -> ..TS`, rename over
    /// `..data`, then the old directory goes. Every file gets the same fixed mtime, so only
    /// the swap itself can tell the watcher that something changed.
    fn update(&mut self, files: &[(&str, &str)]) {
        self.generation += 1;
        let ts = format!(
            "..2026_05_13_10_26_{:02}.{:09}",
            self.generation, self.generation
        );
        let real = self.dir.join(&ts);
        std::fs::create_dir(&real).unwrap();
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_778_668_000);
        for (name, text) in files {
            std::fs::write(real.join(name), text).unwrap();
            std::fs::File::options()
                .write(true)
                .open(real.join(name))
                .unwrap()
                .set_modified(mtime)
                .unwrap();
            let link = self.dir.join(name);
            if link.symlink_metadata().is_err() {
                symlink(Path::new("..data").join(name), link).unwrap();
            }
        }
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        let tmp = self.dir.join("..data_tmp");
        symlink(&ts, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `tiergate serve --policy <policy> --watch 100ms` on a free port, its stderr collected.
struct Served {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Served {
    fn start(policy: &Path) -> Served {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--watch",
            "100ms",
            "--policy",
        ])
        .arg(policy)
        .env("TIERGATE_LOG", "info");
        let (child, addr, log) = common::binary::spawn_serving(cmd);
        Served { child, addr, log }
    }

    async fn upstream_of_next(&self) -> String {
        let (s, h, b) = common::post(
            &format!("http://{}/v1/chat/completions", self.addr),
            chat_body("primitive", "hi", false).to_string(),
            &[],
        )
        .await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
        h["x-tiergate-upstream"].to_str().unwrap().to_string()
    }

    fn log_count(&self, needle: &str) -> usize {
        self.log.lock().unwrap().matches(needle).count()
    }

    /// Waits until `needle` has been logged `n` times.
    async fn wait_log(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.log_count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "`{needle}` not logged {n} times:\n{}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two upstreams, `a` and `b`; the primitive tier goes to `to`. Same length for either.
fn route_to(a: &MockUpstream, b: &MockUpstream, to: &str) -> String {
    format!(
        "upstreams:\n{}{}tiers:\n  - name: primitive\n    upstreams: [{to}]\n  - name: architecture\n    upstreams: [a]\n",
        upstream_yaml("a", a, "{}"),
        upstream_yaml("b", b, "{}")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_data_swap_is_served_though_length_and_mtime_stay() {
    let a = MockSpec::new().start().await;
    let b = MockSpec::new().start().await;
    let (old, new) = (route_to(&a, &b, "a"), route_to(&a, &b, "b"));
    assert_eq!(old.len(), new.len());
    let mut cm = Volume::new(&[("policy.yaml", &old)]);
    let gw = Served::start(&cm.path("policy.yaml"));
    assert_eq!(gw.upstream_of_next().await, "a");

    cm.update(&[("policy.yaml", &new)]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.upstream_of_next().await != "b" {
        assert!(
            Instant::now() < deadline,
            "the ..data swap was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, body) = common::get(&format!("http://{}/readyz", gw.addr)).await;
    assert_eq!(s, 200);
    assert_eq!(
        common::json(&body)["tiers"]["primitive"],
        serde_json::json!(["b"])
    );
    // The log is written in batches: wait for the line, then make sure no second one follows.
    gw.wait_log("policy reloaded", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gw.log_count("policy reloaded"), 1, "one swap, one reload");
}

/// The upstream key written in the policy, the policy mounted from a Secret: rotating the
/// Secret sends the new key upstream with no restart.
fn keyed(up: &MockUpstream, key: &str) -> String {
    format!(
        "upstreams:\n  - name: a\n    kind: openai\n    base_url: \"{}\"\n    api_key: \"{key}\"\n    model: m\n    price: {{}}\ntiers:\n  - name: primitive\n    upstreams: [a]\n  - name: architecture\n    upstreams: [a]\n",
        up.base_url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotation_sends_the_new_upstream_key() {
    let up = MockSpec::new().start().await;
    let auth = |up: &MockUpstream| {
        let r = up.requests();
        r.last().unwrap().headers["authorization"]
            .to_str()
            .unwrap()
            .to_string()
    };
    let mut secret = Volume::new(&[("policy.yaml", &keyed(&up, "sk-rotate-one"))]);
    let gw = Served::start(&secret.path("policy.yaml"));
    assert_eq!(gw.upstream_of_next().await, "a");
    assert_eq!(auth(&up), "Bearer sk-rotate-one");

    secret.update(&[("policy.yaml", &keyed(&up, "sk-rotate-two"))]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        gw.upstream_of_next().await;
        if auth(&up) == "Bearer sk-rotate-two" {
            break;
        }
        assert!(Instant::now() < deadline, "the rotated key was not used");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = gw.log.lock().unwrap().clone();
    assert!(!log.contains("sk-rotate"), "a key reached the log:\n{log}");
}

/// A projected volume as the Kubernetes manifests mount it: the policy from a ConfigMap and,
/// beside it, a file from a Secret that the policy names (here an upstream's `ca_file`). The
/// policy's bytes never change; rotating the Secret item reloads, a broken one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_file_named_by_the_policy_reloads_it() {
    let up = MockSpec::new().start().await;
    let ca = |n: &str| std::fs::read_to_string(format!("{FIXTURES}/ca-{n}.pem")).unwrap();
    let dir = Volume::fresh_dir();
    let policy = format!(
        "upstreams:\n{}    ca_file: \"{}\"\ntiers:\n  - name: primitive\n    upstreams: [a]\n  - name: architecture\n    upstreams: [a]\n",
        upstream_yaml("a", &up, "{}"),
        dir.join("upstream-ca.pem").display()
    );
    let mut vol = Volume::at(
        dir,
        &[("policy.yaml", &policy), ("upstream-ca.pem", &ca("one"))],
    );
    let gw = Served::start(&vol.path("policy.yaml"));
    assert_eq!(gw.upstream_of_next().await, "a");
    assert_eq!(gw.log_count("policy reloaded"), 0);

    // The other CA: same length, same mtime, same policy bytes.
    assert_eq!(ca("one").len(), ca("two").len());
    vol.update(&[("policy.yaml", &policy), ("upstream-ca.pem", &ca("two"))]);
    gw.wait_log("policy reloaded", 1).await;

    // A CA that does not parse: refused, the running policy stays.
    let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    vol.update(&[("policy.yaml", &policy), ("upstream-ca.pem", broken)]);
    gw.wait_log("policy reload rejected", 1).await;
    assert!(gw.log.lock().unwrap().contains("upstream-ca.pem"));
    assert_eq!(gw.upstream_of_next().await, "a");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        gw.log_count("policy reload rejected"),
        1,
        "a refused file is not retried until it changes"
    );
}
