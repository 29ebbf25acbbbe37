//! State shared by replicas, with the real binary and a real `redis-server`: two gateway
//! processes on one Redis enforce one rate limit and one budget (concurrent requests never
//! both spend its last dollar); Redis stopped mid-run and started again, failing open
//! (counted locally, `tiergate_state_backend_up 0`, back to 1) and closed (429). Their logs
//! carry no key, key hash or secret.
//!
//! Needs `redis-server`: `.ci/run` starts one and sets TIERGATE_TEST_REDIS_URL; without it
//! these tests say so and skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::spec::{MockSpec, upstream_yaml};
use common::{MockUpstream, metric, post};
use tiergate::govern::keys::{generate, hash_hex};

const BIN: &str = env!("CARGO_BIN_EXE_tiergate");

fn redis_url(test: &str) -> Option<String> {
    match std::env::var("TIERGATE_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "{test}: skipped: TIERGATE_TEST_REDIS_URL is not set (.ci/run starts a redis-server and sets it)"
            );
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of this test's own, on `port`, that the test stops and starts.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            child: Some(child),
            port,
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Served {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(policy: &PathBuf) -> Served {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--watch",
        "0s",
        "--policy",
    ])
    .arg(policy);
    let (child, addr, log) = common::binary::spawn_serving(cmd);
    Served { child, addr, log }
}

struct Key {
    key: String,
    yaml: String,
}

fn key(name: &str, extra: &str) -> Key {
    let key = generate().unwrap().expose().to_string();
    let yaml = format!(
        "    - {{ name: {name}, team: t, sha256: {}{extra} }}\n",
        hash_hex(&key)
    );
    Key { key, yaml }
}

/// A policy on `url` with its own counter prefix; the frontier's 1024 completion tokens
/// cost $0.25, exactly what a request reserves (no prompt price).
fn policy_file(
    local: &MockUpstream,
    frontier: &MockUpstream,
    keys: &[&Key],
    state: &str,
) -> PathBuf {
    let local_yaml = upstream_yaml("local", local, "{}")
        .replace("    price: {}\n", "    price: {}\n    local: true\n");
    let frontier_yaml = upstream_yaml(
        "frontier",
        frontier,
        "{ input_per_mtok: 0, output_per_mtok: 244.140625 }",
    );
    let entries: String = keys.iter().map(|k| k.yaml.as_str()).collect();
    let text = format!(
        "upstreams:\n{local_yaml}{frontier_yaml}tiers:\n  - name: primitive\n    upstreams: [local]\n  - name: architecture\n    upstreams: [frontier]\nauth:\n  keys:\n{entries}budgets: {{ reserve_max_usd: 1, reserve_output_tokens: 1024 }}\nstate: {state}\n"
    );
    let path = std::env::temp_dir().join(format!("tiergate-shared-{:x}.yaml", fastrand::u64(..)));
    std::fs::write(&path, text).unwrap();
    path
}

fn prefix() -> String {
    format!("tiergate-test-{:x}:", fastrand::u64(..))
}

async fn ask(
    gw: &Served,
    k: &Key,
    model: &str,
    text: &str,
) -> (u16, http::HeaderMap, bytes::Bytes) {
    let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
        .to_string();
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    let (s, h, b) = post(
        &url,
        body,
        &[("authorization", &format!("Bearer {}", k.key))],
    )
    .await;
    (s.as_u16(), h, b)
}

async fn scrape(gw: &Served) -> String {
    let (_, b) = common::get(&format!("http://{}/metrics", gw.addr)).await;
    String::from_utf8(b.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_enforce_one_rate_limit_and_one_budget() {
    let Some(url) = redis_url("two_gateways_on_one_redis_enforce_one_rate_limit_and_one_budget")
    else {
        return;
    };
    let local = MockSpec::new().start().await;
    let frontier = MockSpec::new().usage(0, 1024, 0).start().await;
    let rate = key("rate", ", rpm: 5");
    let money = key("money", ", budget_usd: 1.0");
    let state = format!(
        "{{ redis_url: \"{url}\", on_failure: closed, prefix: \"{}\" }}",
        prefix()
    );
    let file = policy_file(&local, &frontier, &[&rate, &money], &state);
    let (a, b) = (serve(&file), serve(&file));

    // One rate limit: five a minute between them, whichever gateway is asked.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let gw = if i % 2 == 0 { &a } else { &b };
        statuses.push(ask(gw, &rate, "primitive", "hello").await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);

    // One budget: $1 holds four requests of $0.25; ten at once on both gateways, and a
    // secret among what they carry.
    let text = format!(
        "Plan it. token ghp_{}",
        "k7Qz9XwP2mLr5TnB8vYc3HdJ6sFa1GeU4iOq"
    );
    let futures = (0..10).map(|i| {
        let (gw, k, text) = (
            if i % 2 == 0 { &a } else { &b },
            &money,
            if i == 0 {
                text.clone()
            } else {
                "Plan the migration.".to_string()
            },
        );
        async move { ask(gw, k, "architecture", &text).await.0 }
    });
    let results = futures_util::future::join_all(futures).await;
    // The one with the secret is answered locally and reserves nothing.
    assert_eq!(results[0], 200, "{results:?}");
    let won = results[1..].iter().filter(|&&s| s == 200).count();
    assert_eq!(won, 4, "{results:?}");
    assert!(results.iter().all(|&s| s == 200 || s == 429), "{results:?}");
    assert!(
        frontier
            .requests()
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains("ghp_"))
    );
    assert_eq!(frontier.requests().len(), 4, "{results:?}");
    assert!(
        local
            .requests()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("ghp_"))
    );
    let (_, _, body) = ask(&b, &money, "architecture", "once more").await;
    assert_eq!(common::json(&body)["error"]["code"], "insufficient_quota");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = scrape(&a).await + &scrape(&b).await;
    assert_eq!(
        metric(&scrape(&a).await, "tiergate_state_backend_up"),
        Some(1.0)
    );
    for gw in [&a, &b] {
        let log = gw.log.lock().unwrap().clone();
        for leak in [
            rate.key.as_str(),
            money.key.as_str(),
            &hash_hex(&rate.key),
            &hash_hex(&money.key),
            "k7Qz9XwP2mLr5TnB8vYc3HdJ6sFa1GeU4iOq",
            &url,
        ] {
            assert!(
                !log.contains(leak) && !m.contains(leak),
                "leaked into logs or metrics"
            );
        }
    }
    let _ = std::fs::remove_file(file);
}

async fn outage(on_failure: &str) -> (Vec<u16>, Vec<Option<f64>>) {
    let port = free_port();
    let mut redis = Redis::start(port);
    let local = MockSpec::new().start().await;
    let frontier = MockSpec::new().start().await;
    let k = key("k", ", rpm: 1000");
    let state = format!(
        "{{ redis_url: \"redis://127.0.0.1:{port}/0\", on_failure: {on_failure}, timeout: 200ms }}"
    );
    let file = policy_file(&local, &frontier, &[&k], &state);
    let gw = serve(&file);
    let mut statuses = vec![ask(&gw, &k, "primitive", "hi").await.0];
    let mut up = vec![metric(&scrape(&gw).await, "tiergate_state_backend_up")];
    redis.stop();
    statuses.push(ask(&gw, &k, "primitive", "hi").await.0);
    up.push(metric(&scrape(&gw).await, "tiergate_state_backend_up"));
    let redis = Redis::start(redis.port);
    // It reconnects by itself: the first request after the restart may still find it down.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = ask(&gw, &k, "primitive", "hi").await.0;
        if s == 200 && metric(&scrape(&gw).await, "tiergate_state_backend_up") == Some(1.0) {
            statuses.push(s);
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    up.push(metric(&scrape(&gw).await, "tiergate_state_backend_up"));
    let log = gw.log.lock().unwrap().clone();
    assert!(log.contains("state store"), "{log}");
    drop(redis);
    let _ = std::fs::remove_file(file);
    (statuses, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_counting_locally_and_comes_back() {
    if redis_url("redis_down_fails_open_counting_locally_and_comes_back").is_none() {
        return;
    }
    let (statuses, up) = outage("open").await;
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(up, [Some(1.0), Some(0.0), Some(1.0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_with_429_and_comes_back() {
    if redis_url("redis_down_fails_closed_with_429_and_comes_back").is_none() {
        return;
    }
    let (statuses, up) = outage("closed").await;
    assert_eq!(statuses, [200, 429, 200]);
    assert_eq!(up, [Some(1.0), Some(0.0), Some(1.0)]);
}
