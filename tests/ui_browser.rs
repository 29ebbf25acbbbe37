//! The live page in a real headless Chromium (Debian's `chromium` package), driven over the
//! DevTools protocol: the demo's simulated upstreams and the gateway run in process, the test
//! sends traffic, and the numbers on the page must change with it, with no console error.
//! A screenshot is kept at target/ui-artifacts/live-page.png.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use tiergate::demo::{Upstreams, workload};

/// Chromium, from TIERGATE_CHROMIUM or the Debian package's paths.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("TIERGATE_CHROMIUM") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "Chromium is not installed: this test needs the Debian package `chromium` \
         (apt-get install -y chromium), or TIERGATE_CHROMIUM=/path/to/chromium"
    );
}

/// Chromium with its own profile, in a process group of its own; killed with all its
/// processes (and the profile removed) when dropped.
struct Browser {
    child: Child,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group's id is the browser's pid, not reused until the browser is reaped below.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Starts Chromium and returns it with its DevTools websocket URL.
    fn launch() -> (Browser, String) {
        let profile = std::env::temp_dir().join(format!(
            "tiergate-ui-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1440,1100",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Chromium (Debian package `chromium`): {e}"));
        let browser = Browser { child, profile };
        // Chromium writes the port it chose and the browser target's path here.
        let file = browser.profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    let url = format!("ws://127.0.0.1:{port}{path}");
                    return (browser, url);
                }
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A DevTools protocol client over one websocket, attached to one page.
struct Cdp {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    events: Arc<Mutex<Vec<Value>>>,
    next: u64,
    session: Option<String>,
}

impl Cdp {
    async fn connect(url: &str) -> Cdp {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        let (out, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (p, e) = (pending.clone(), events.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                match v.get("id").and_then(Value::as_u64) {
                    Some(id) => {
                        if let Some(tx) = p.lock().unwrap().remove(&id) {
                            let _ = tx.send(v);
                        }
                    }
                    None => e.lock().unwrap().push(v),
                }
            }
        });
        Cdp {
            out,
            pending,
            events,
            next: 0,
            session: None,
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.out.send(Message::text(msg.to_string())).unwrap();
        let v = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer"))
            .unwrap();
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }

    /// Evaluates `expr` in the page and returns its value.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Console errors, uncaught exceptions and failed loads seen so far.
    fn errors(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.consoleAPICalled") => {
                    matches!(e["params"]["type"].as_str(), Some("error" | "assert"))
                }
                Some("Runtime.exceptionThrown") => true,
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
                _ => false,
            })
            .cloned()
            .collect()
    }
}

/// What the page shows, read from its DOM.
const READ_PAGE: &str = r##"(() => {
  // Still loading (or still about:blank): nothing to read yet.
  if (!document.getElementById("conn") || !document.body.dataset.updates) return null;
  const t = (id) => document.getElementById(id).textContent;
  return {
    updates: Number(document.body.dataset.updates || 0),
    conn: t("conn"),
    requests: t("total-requests"),
    cost: t("total-cost"),
    reference: t("reference-cost"),
    savings: t("savings"),
    tokens: t("total-tokens"),
    tierRows: [...document.querySelectorAll("#tiers tbody tr[data-tier]")].map((r) => [r.dataset.tier, r.cells[1].textContent]),
    recentRows: document.querySelectorAll("#recent tbody tr:not(:has(td.empty))").length,
    recentTiers: [...document.querySelectorAll("#recent tbody tr td:nth-child(3)")].map((c) => c.textContent),
    upstreams: [...document.querySelectorAll("#upstreams tbody tr[data-upstream]")].map((r) => [r.dataset.upstream, r.cells[2].textContent]),
    checkPass: t("q-pass"),
    checked: t("q-checked"),
    checkRoutes: [...document.querySelectorAll("#checks tbody tr[data-route]")].map((r) => r.dataset.route),
  };
})()"##;

async fn wait_page(cdp: &mut Cdp, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = cdp.eval(READ_PAGE).await;
        if !v.is_null() && ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "page never showed {what}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn send_workload(base: &str, range: std::ops::Range<usize>) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let tasks: Vec<_> = range
        .map(|i| {
            let client = client.clone();
            let base = base.to_string();
            tokio::spawn(async move {
                let r = workload::request(i);
                let mut b = http::Request::post(format!("{base}{}", r.path));
                for (k, v) in &r.headers {
                    b = b.header(*k, *v);
                }
                let req = b.body(Full::new(Bytes::from(r.body.to_string()))).unwrap();
                let resp = client.request(req).await.unwrap();
                assert_eq!(resp.status(), 200, "request {i}");
                resp.into_body().collect().await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn dollars(s: &Value) -> f64 {
    s.as_str().unwrap().trim_start_matches('$').parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_follows_the_traffic_without_console_errors() {
    // The demo's upstreams and the gateway with the default policy, in process.
    let ups = Upstreams::start().await.unwrap();
    let app = tiergate::app::App::new(ups.runtime().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(tiergate::server::serve(
        app.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(2),
    ));

    let (browser, ws) = Browser::launch();
    let mut cdp = Cdp::connect(&ws).await;
    let target = cdp
        .call("Target.createTarget", json!({"url": "about:blank"}))
        .await;
    let session = cdp
        .call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        )
        .await;
    cdp.session = Some(session["sessionId"].as_str().unwrap().to_string());
    for m in ["Runtime.enable", "Log.enable", "Page.enable"] {
        cdp.call(m, json!({})).await;
    }
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1440, "height": 1100, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    cdp.call("Page.navigate", json!({"url": format!("{base}/")}))
        .await;

    // Before any traffic: the page is live and shows zero.
    let before = wait_page(&mut cdp, "its first update", |v| {
        v["updates"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert_eq!(before["requests"], "0", "{before}");
    assert_eq!(before["recentRows"], 0, "{before}");
    assert_eq!(
        (before["checkPass"].as_str(), before["checked"].as_str()),
        (Some("–"), Some("0")),
        "{before}"
    );
    assert!(
        before["conn"].as_str().unwrap().starts_with("live"),
        "{before}"
    );
    let upstreams = before["upstreams"].as_array().unwrap();
    assert_eq!(upstreams.len(), 3, "{before}");
    assert!(upstreams.iter().all(|u| u[1] == "up"), "{before}");

    // Traffic: the numbers follow.
    send_workload(&base, 0..12).await;
    let after = wait_page(&mut cdp, "12 requests", |v| v["requests"] == "12").await;
    assert_eq!(after["recentRows"], 12, "{after}");
    let tiers: HashMap<String, u64> = after["tierRows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert!(
        tiers["primitive"] > 0 && tiers["architecture"] > 0,
        "{after}"
    );
    assert_eq!(tiers["primitive"] + tiers["architecture"], 12, "{after}");
    let recent: Vec<&str> = after["recentTiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        recent.contains(&"primitive") && recent.contains(&"architecture"),
        "{after}"
    );
    let (cost, reference, savings) = (
        dollars(&after["cost"]),
        dollars(&after["reference"]),
        dollars(&after["savings"]),
    );
    assert!(cost > 0.0 && reference > cost, "{after}");
    assert!((reference - cost - savings).abs() < 0.0002, "{after}");
    assert_ne!(after["tokens"], before["tokens"]);

    // The quality card: the demo's answers were checked, per route.
    let checked = wait_page(&mut cdp, "checked answers", |v| v["checked"] != "0").await;
    assert!(
        checked["checkPass"].as_str().unwrap().ends_with('%'),
        "{checked}"
    );
    assert!(
        !checked["checkRoutes"].as_array().unwrap().is_empty(),
        "{checked}"
    );

    // More traffic: the page moves again by itself.
    send_workload(&base, 12..18).await;
    let later = wait_page(&mut cdp, "18 requests", |v| v["requests"] == "18").await;
    assert!(dollars(&later["reference"]) > reference, "{later}");

    let shot = cdp
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("live-page.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());

    let errors = cdp.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    drop(browser);
    let _ = stop.send(());
    let _ = server.await;
}
