#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboard and the alert rules against a real Prometheus (Debian package `prometheus`):
//! tiergate (in process) serves mock upstreams' traffic, Prometheus scrapes it every second
//! and evaluates deploy/prometheus/alerts.yml, then every query of every panel of
//! dashboards/tiergate.json must parse and return data, every recording rule must return
//! data, every alert must parse and its signal (`lhs op bool rhs`) return data. Without the
//! `prometheus` and `promtool` binaries these tests fail, naming the package.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Gateway;
use common::spec::{MockSpec, StreamReply, chat_body, upstream_yaml};
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The path of `name` on PATH, or a failure that says what to install.
fn binary(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("`{name}` not found on PATH: install the Debian package `prometheus` (apt-get install -y prometheus)")
    })
}

/// Kills and reaps the child, and removes its directory, when dropped.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Prometheus on 127.0.0.1 scraping `target` every second with tiergate's rules.
async fn start_prometheus(target: std::net::SocketAddr) -> Prometheus {
    let bin = binary("prometheus");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "tiergate-prometheus-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let rules = Path::new(ROOT).join("deploy/prometheus/alerts.yml");
    let config = format!(
        "global: {{ scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }}\nrule_files: [\"{}\"]\nscrape_configs:\n  - job_name: tiergate\n    static_configs: [{{ targets: [\"{target}\"] }}]\n",
        rules.display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let p = Prometheus {
        child,
        dir,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Ok((status, _))) = tokio::time::timeout(
            Duration::from_secs(2),
            try_get(&format!("{}/-/ready", p.url)),
        )
        .await
            && status == 200
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not get ready in 30s: {}",
            std::fs::read_to_string(p.dir.join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn try_get(url: &str) -> Result<(u16, bytes::Bytes), String> {
    use http_body_util::{BodyExt, Full};
    let req = http::Request::get(url)
        .body(Full::new(bytes::Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = common::client()
        .request(req)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs an instant query: Ok(number of series) or Err(Prometheus's error).
async fn query(prom: &Prometheus, q: &str) -> Result<usize, String> {
    let (status, body) = try_get(&format!("{}/api/v1/query?query={}", prom.url, encode(q))).await?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("{e}: {status}"))?;
    if v["status"] != "success" {
        return Err(format!("{status} {}: {}", v["errorType"], v["error"]));
    }
    Ok(match &v["data"]["result"] {
        Value::Array(a) => a.len(),
        Value::Null => 0,
        _ => 1, // scalar or string
    })
}

async fn api(prom: &Prometheus, path: &str) -> Value {
    let (status, body) = try_get(&format!("{}{path}", prom.url)).await.unwrap();
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// Every query of every panel (rows' nested panels too), with its panel title.
fn dashboard_queries(dash: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            walk(&p["panels"], out);
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((
                        p["title"].as_str().unwrap_or("?").to_string(),
                        e.to_string(),
                    ));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// Grafana's variables, as Grafana would fill them for "All" over a short range.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "5s")
        .replace("$__range", "5m")
        .replace("$tier", ".*")
        .replace("$upstream", ".*")
        .replace("$team", ".*")
}

/// `lhs op rhs` -> `(lhs) op bool rhs`: data whenever the alert's signal has data.
fn signal_of(expr: &str) -> Option<String> {
    let expr = expr.trim();
    for op in [" == ", " != ", " >= ", " <= ", " > ", " < "] {
        if let Some((lhs, rhs)) = expr.rsplit_once(op)
            && rhs.trim().parse::<f64>().is_ok()
        {
            return Some(format!("({lhs}) {} bool {}", op.trim(), rhs.trim()));
        }
    }
    None
}

fn policy(up: &[String]) -> String {
    format!(
        "upstreams:\n{}  - name: spare\n    kind: openai\n    base_url: http://127.0.0.1:9/v1\n    key_required: false\n    enabled: false\n    model: m\ntiers:\n  - name: primitive\n    upstreams: [local, openai]\n    escalate_on: [syntax]\n    hold_back: {{ max_bytes: 65536, max_wait: 2s }}\n    shadow: {{ rate: 1, daily_usd_cap: 100, judge: {{ upstream: judge, rate: 1, daily_usd_cap: 100 }} }}\n  - name: architecture\n    upstreams: [frontier, openai]\n  - name: flaky\n    upstreams: [shaky, openai]\n  - name: broken\n    upstreams: [down, spare]\nreference_upstream: frontier\nteams: [{{ name: platform, budget_usd: 100 }}]\nprobe: {{ interval: 1h, upstreams: [local], max_tokens: 16 }}\n",
        up.concat()
    )
}

async fn drive_traffic(gw: &Gateway) {
    let url = gw.url("/v1/chat/completions");
    for (model, stream) in [
        ("primitive", false),
        ("primitive", true),
        ("architecture", false),
        ("architecture", true),
    ] {
        let mut body = chat_body(model, "write a function that parses dates", stream);
        if stream {
            // Read the stream to its end, as a client does.
            let mut s = StreamReply::open(gw.addr, "/v1/chat/completions", &body).await;
            assert_eq!(s.status, 200);
            while s.next_data().await.is_some() {}
        } else {
            body["stream"] = json!(false);
            let (status, headers, _) = common::post(&url, body.to_string(), &[]).await;
            assert_eq!(status, 200, "{model}");
            // Feedback on the answer, as an IDE's thumbs up would send it.
            let id = headers["x-tiergate-request-id"].to_str().unwrap();
            let rating = json!({"request_id": id, "rating": "up"}).to_string();
            let (status, _, _) = common::post(&gw.url("/v1/feedback"), rating, &[]).await;
            assert_eq!(status, 204);
        }
    }
    // Classified (model auto): the classifier's score and band families get samples.
    let body = chat_body("auto", "write a function that parses dates", false);
    let (status, _, _) = common::post(&url, body.to_string(), &[]).await;
    assert_eq!(status, 200, "auto");
    let (status, _, _) = common::post(&url, chat_body("flaky", "hi", false).to_string(), &[]).await;
    assert_eq!(status, 200, "the flaky tier falls back to openai");
    let (status, _, _) =
        common::post(&url, chat_body("broken", "hi", false).to_string(), &[]).await;
    // 502 while its upstream is tried, 503 once its circuit is open.
    assert!(
        matches!(status.as_u16(), 502 | 503),
        "the broken tier fails: {status}"
    );
    let (status, _, _) = common::post(&url, r#"{"model":"primitive"}"#, &[]).await;
    assert_eq!(status, 400);
}

#[test]
fn promtool_accepts_the_shipped_config_and_rules() {
    let promtool = binary("promtool");
    for args in [
        ["check", "config", "deploy/prometheus/prometheus.yml"],
        ["check", "rules", "deploy/prometheus/alerts.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(ROOT)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_dashboard_is_provisionable_with_a_datasource_variable() {
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("dashboards/tiergate.json")).unwrap(),
    )
    .unwrap();
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|v| v["name"] == "datasource"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
    assert!(
        dash["uid"].is_string()
            && dash["title"].is_string()
            && dash.get("id").is_none_or(Value::is_null)
    );
    let text = dash.to_string();
    // Every datasource reference goes through the variable; no instance's uid is baked in.
    let mut refs = 0;
    fn check(v: &Value, refs: &mut usize) {
        match v {
            Value::Object(m) => {
                if let Some(ds) = m.get("datasource")
                    && ds.is_object()
                    && ds["type"] == "prometheus"
                {
                    assert_eq!(ds["uid"], "${datasource}", "{ds}");
                    *refs += 1;
                }
                m.values().for_each(|x| check(x, refs));
            }
            Value::Array(a) => a.iter().for_each(|x| check(x, refs)),
            _ => {}
        }
    }
    check(&dash, &mut refs);
    assert!(refs > 20, "{refs} datasource references");
    assert!(!text.contains("__inputs"), "no import-time inputs needed");
    assert!(dashboard_queries(&dash).len() >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_and_alert_query_returns_data_from_a_real_prometheus() {
    let local = MockSpec::new()
        .usage(900, 120, 300)
        .content(["fn ", "parse", "()"])
        .chunk_delay(Duration::from_millis(5))
        .start()
        .await;
    let openai = MockSpec::new().usage(800, 100, 0).start().await;
    let frontier = MockSpec::new()
        .usage(3000, 600, 1000)
        .content(["plan"; 4])
        .chunk_delay(Duration::from_millis(5))
        .start()
        .await;
    let shaky = MockSpec::new().status(500).start().await;
    let down = MockSpec::new().status(503).start().await;
    // Judges every shadow comparison of the primitive tier: the local answer is as good.
    let judge = MockSpec::new().content(["YES"]).start().await;
    let ups = [
        upstream_yaml(
            "local",
            &local,
            "{ gpu_hour: { usd_per_hour: 2.5, output_tokens_per_second: 800 } }",
        ),
        upstream_yaml(
            "openai",
            &openai,
            "{ input_per_mtok: 2.5, output_per_mtok: 10, cached_input_per_mtok: 1.25 }",
        ),
        upstream_yaml(
            "frontier",
            &frontier,
            "{ input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 }",
        ),
        upstream_yaml("shaky", &shaky, "{}"),
        upstream_yaml("down", &down, "{}"),
        upstream_yaml("judge", &judge, "{ input_per_mtok: 1, output_per_mtok: 1 }"),
    ];
    let gw = Gateway::start(&policy(&ups)).await;
    let prom = start_prometheus(gw.addr).await;

    // Traffic over several scrapes, so that rates have two or more samples.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        drive_traffic(&gw).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Let the last counts be scraped and the rules evaluated a few times.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        query(&prom, "up{job=\"tiergate\"} == 1").await.unwrap() == 1,
        "prometheus scrapes tiergate"
    );

    let mut failures = Vec::new();
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("dashboards/tiergate.json")).unwrap(),
    )
    .unwrap();
    let queries = dashboard_queries(&dash);
    for (title, expr) in &queries {
        let q = substitute(expr);
        if q.contains('$') {
            failures.push(format!("panel {title:?}: unknown variable in {q}"));
            continue;
        }
        match query(&prom, &q).await {
            Ok(0) => failures.push(format!("panel {title:?}: no data for {q}")),
            Ok(_) => {}
            Err(e) => failures.push(format!("panel {title:?}: {e} for {q}")),
        }
    }

    let rules: Value = serde_yaml::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    let mut alerts = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            if let Some(name) = rule["record"].as_str() {
                match query(&prom, name).await {
                    Ok(0) => failures.push(format!("recording rule {name}: no data")),
                    Ok(_) => {}
                    Err(e) => failures.push(format!("recording rule {name}: {e}")),
                }
                continue;
            }
            alerts += 1;
            let name = rule["alert"].as_str().unwrap();
            if let Err(e) = query(&prom, expr).await {
                failures.push(format!("alert {name}: {e} for {expr}"));
            }
            match signal_of(expr) {
                None => failures.push(format!(
                    "alert {name}: not of the form `signal op number`: {expr}"
                )),
                Some(signal) => match query(&prom, &signal).await {
                    Ok(0) => {
                        failures.push(format!("alert {name}: its signal has no data: {signal}"))
                    }
                    Ok(_) => {}
                    Err(e) => failures.push(format!("alert {name}: {e} for {signal}")),
                },
            }
        }
    }
    // Prometheus itself evaluated every rule without error.
    let loaded = api(&prom, "/api/v1/rules").await;
    for g in loaded["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            if r["health"] != "ok" {
                failures.push(format!(
                    "rule {}: health {} {}",
                    r["name"], r["health"], r["lastError"]
                ));
            }
        }
    }
    // The disabled upstream makes TiergateUpstreamDown active (pending: it has a `for`).
    let active = api(&prom, "/api/v1/alerts").await;
    let down_alert = active["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| {
            a["labels"]["alertname"] == "TiergateUpstreamDown" && a["labels"]["upstream"] == "spare"
        });
    if !down_alert {
        failures.push(format!(
            "TiergateUpstreamDown is not active for upstream spare: {active}"
        ));
    }
    assert!(
        failures.is_empty(),
        "{} panel queries and {alerts} alerts checked; failures:\n{}",
        queries.len(),
        failures.join("\n")
    );
    assert!(queries.len() >= 20 && alerts >= 6);
}
