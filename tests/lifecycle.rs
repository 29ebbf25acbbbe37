//! The real binary under real signals: SIGTERM drains streams in flight, SIGHUP and file
//! changes reload the policy (a bad file is logged and ignored).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::MockUpstream;
use common::spec::{MockSpec, StreamReply, chat_body, upstream_yaml};

const BIN: &str = env!("CARGO_BIN_EXE_tiergate");

struct Served {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
    policy: std::path::PathBuf,
}

impl Served {
    fn start(policy_text: &str, extra: &[&str]) -> Served {
        let policy = std::env::temp_dir().join(format!("tiergate-life-{}.yaml", fastrand::u64(..)));
        std::fs::write(&policy, policy_text).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--policy"])
            .arg(&policy)
            .args(extra)
            .env("TIERGATE_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) = line.split("listening on http://").nth(1) {
                    let addr: String = a
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                        .collect();
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the binary did not start");
        Served {
            child,
            addr,
            log,
            policy,
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
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

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.policy);
    }
}

fn one_route(up: &MockUpstream, name: &str) -> String {
    format!(
        "upstreams:\n{}tiers:\n  - name: primitive\n    upstreams: [{name}]\n  - name: architecture\n    upstreams: [{name}]\n",
        upstream_yaml(name, up, "{}")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_and_lets_every_stream_in_flight_finish() {
    // Ten content events 200 ms apart: about two seconds per stream.
    let slow = MockSpec::new()
        .content((0..10).map(|i| format!("w{i} ")))
        .chunk_delay(Duration::from_millis(200))
        .start()
        .await;
    let mut gw = Served::start(&one_route(&slow, "local"), &["--drain", "10s"]);
    let mut streams = Vec::new();
    for _ in 0..8 {
        let mut s = StreamReply::open(
            gw.addr,
            "/v1/chat/completions",
            &chat_body("primitive", "hi", true),
        )
        .await;
        assert_eq!(s.status, 200);
        assert!(s.next_data().await.is_some());
        streams.push(s);
    }
    let signalled = Instant::now();
    gw.signal("-TERM");
    // The listener closes at once.
    let deadline = Instant::now() + Duration::from_secs(2);
    while tokio::net::TcpStream::connect(gw.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every stream in flight runs to its end.
    let mut tasks = Vec::new();
    for mut s in streams {
        tasks.push(tokio::spawn(async move {
            let mut data = Vec::new();
            while let Some(d) = s.next_data().await {
                data.push(d);
            }
            data
        }));
    }
    for t in tasks {
        let data = t.await.unwrap();
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
        assert!(data.len() >= 12, "{data:?}");
    }
    let status = gw.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_millis(1500),
        "it waited for the streams"
    );
    let log = gw.log.lock().unwrap().clone();
    assert!(
        log.contains("SIGTERM") && log.contains("all connections drained"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_deadline_bounds_the_wait() {
    let endless = MockSpec::new()
        .content((0..100).map(|i| format!("w{i} ")))
        .chunk_delay(Duration::from_millis(100))
        .start()
        .await;
    let mut gw = Served::start(&one_route(&endless, "local"), &["--drain", "500ms"]);
    let mut s = StreamReply::open(
        gw.addr,
        "/v1/chat/completions",
        &chat_body("primitive", "hi", true),
    )
    .await;
    assert!(s.next_data().await.is_some());
    let signalled = Instant::now();
    gw.signal("-INT");
    let status = gw.wait_exit(Duration::from_secs(5));
    assert!(status.success());
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(gw.log.lock().unwrap().contains("drain deadline reached"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_file_changes_reload_and_a_bad_file_is_refused() {
    let a = MockSpec::new().start().await;
    let b = MockSpec::new().start().await;
    let two = |to: &str| {
        format!(
            "upstreams:\n{}{}tiers:\n  - name: primitive\n    upstreams: [{to}]\n  - name: architecture\n    upstreams: [a]\n",
            upstream_yaml("a", &a, "{}"),
            upstream_yaml("b", &b, "{}")
        )
    };
    // No polling: only SIGHUP reloads.
    let gw = Served::start(&two("a"), &["--watch", "0s"]);
    assert_eq!(gw.upstream_of_next().await, "a");
    std::fs::write(&gw.policy, two("b")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gw.upstream_of_next().await, "a", "no reload without SIGHUP");
    gw.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.upstream_of_next().await != "b" {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&gw.policy, "upstreams: [oops\n").unwrap();
    gw.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.log.lock().unwrap().contains("policy reload rejected") {
        assert!(Instant::now() < deadline, "no log line for the bad file");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.upstream_of_next().await, "b", "the old policy stays");
    drop(gw);

    // Polling the file's modification time.
    let gw = Served::start(&two("a"), &["--watch", "100ms"]);
    assert_eq!(gw.upstream_of_next().await, "a");
    std::fs::write(&gw.policy, two("b") + "\n# changed\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.upstream_of_next().await != "b" {
        assert!(
            Instant::now() < deadline,
            "the file change was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
