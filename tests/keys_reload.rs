//! The keys file is watched on its own, also under the embedded default policy (no policy
//! file): the real binary, `TIERGATE_KEYS_FILE` pointing at a file of `tiergate keys new`
//! entries, the default watch interval. A key appended to the file is accepted without a
//! restart, a removed one is refused, a malformed or emptied file keeps the last good keys and
//! the log says why, naming the file but never a key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::spec::{MockSpec, chat_body};

const BIN: &str = env!("CARGO_BIN_EXE_tiergate");

/// `tiergate keys new`: the key (first line) and the entry to append.
fn new_key(name: &str) -> (String, String) {
    let out = Command::new(BIN)
        .args(["keys", "new", "--name", name, "--team", "payments"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let (key, entry) = text.split_once('\n').unwrap();
    (key.to_string(), entry.to_string())
}

/// `tiergate serve` with the embedded default policy, its stderr collected.
struct Served {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Served {
    fn start(local_base_url: &str, keys_file: &Path) -> Served {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("TIERGATE_LOCAL_BASE_URL", local_base_url)
            .env("TIERGATE_KEYS_FILE", keys_file)
            .env("TIERGATE_LOG", "info")
            .env_remove("OPENAI_API_KEY")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("TIERGATE_REDIS_URL");
        let (child, addr, log) = common::binary::spawn_serving(cmd);
        Served { child, addr, log }
    }

    async fn status_with(&self, key: &str) -> u16 {
        let (s, _, b) = common::post(
            &format!("http://{}/v1/chat/completions", self.addr),
            chat_body("primitive", "hi", false).to_string(),
            &[("authorization", &format!("Bearer {key}"))],
        )
        .await;
        assert!(s == 200 || s == 401, "{s}: {}", String::from_utf8_lossy(&b));
        s.as_u16()
    }

    /// Waits (a few watch intervals at most) until `key` gets `status`.
    async fn wait_status(&self, key: &str, status: u16, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status_with(key).await != status {
            assert!(
                Instant::now() < deadline,
                "{what}: not picked up\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn wait_log(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "`{needle}` not logged {n} times:\n{}",
                self.log()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_file_of_the_default_policy_reloads_without_a_restart() {
    let local = MockSpec::new().usage(5, 2, 0).start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.yaml");
    let (alice, alice_entry) = new_key("alice");
    let (bob, bob_entry) = new_key("bob");
    std::fs::write(&file, &alice_entry).unwrap();
    let gw = Served::start(&local.base_url(), &file);

    assert_eq!(gw.status_with(&alice).await, 200);
    assert_eq!(
        gw.status_with(&bob).await,
        401,
        "bob is not in the file yet"
    );

    // Appended, as `tiergate keys new ... | tail -n +2 >> keys.yaml` does.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all(bob_entry.as_bytes()).unwrap();
    drop(f);
    gw.wait_status(&bob, 200, "a key appended to the file")
        .await;
    assert_eq!(gw.status_with(&alice).await, 200);

    std::fs::write(&file, &bob_entry).unwrap();
    gw.wait_status(&alice, 401, "a key removed from the file")
        .await;
    assert_eq!(gw.status_with(&bob).await, 200);
    // The log is written in batches: the second reload's line may follow its effect.
    gw.wait_log("policy reloaded", 2).await;
    let reloads = gw.log().matches("policy reloaded").count();

    // Malformed: rejected with the file, line and reason; the last good keys stay.
    std::fs::write(&file, format!("{bob_entry}  colour: red\n")).unwrap();
    gw.wait_log("policy reload rejected", 1).await;
    let log = gw.log();
    let rejected = log
        .lines()
        .find(|l| l.contains("policy reload rejected"))
        .unwrap();
    assert!(
        rejected.contains(&format!("{}:", file.display())) && rejected.contains("colour"),
        "{rejected}"
    );
    assert_eq!(gw.status_with(&bob).await, 200);
    assert_eq!(gw.status_with(&alice).await, 401);

    // Emptied (or caught mid-write): that would open the gateway, so it is refused too.
    std::fs::write(&file, "").unwrap();
    gw.wait_log("policy reload rejected", 2).await;
    assert!(gw.log().contains("has no keys"), "{}", gw.log());
    assert_eq!(gw.status_with(&alice).await, 401);
    assert_eq!(gw.status_with(&bob).await, 200);

    // Fixed again: picked up.
    std::fs::write(&file, format!("{alice_entry}{bob_entry}")).unwrap();
    gw.wait_status(&alice, 200, "the repaired file").await;
    // The log is written in batches: wait for the line, then make sure no other follows.
    gw.wait_log("policy reloaded", reloads + 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        gw.log().matches("policy reloaded").count(),
        reloads + 1,
        "one reload per good change:\n{}",
        gw.log()
    );

    let log = gw.log();
    for (k, entry) in [(&alice, &alice_entry), (&bob, &bob_entry)] {
        assert!(!log.contains(k.as_str()), "a key reached the log:\n{log}");
        let hash = entry
            .split("sha256: ")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap();
        assert!(
            !log.contains(hash.trim()),
            "a key hash reached the log:\n{log}"
        );
    }
}
