#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fallbacks, errors and the access log: counted with bounded labels, logged without the
//! prompt or a key (prices as in `metrics.rs`).
//!
//! Prices (US dollars per million tokens) in every test policy:
//! - `local`: GPU-hour amortised, 3.6 $/h at 1,000 output and 10,000 input tokens/s, so
//!   output 1.0, input 0.1, cached input 0.1 (no cached price given: the input price);
//! - `openai`: input 2.5, output 10, cached 1.25;
//! - `frontier` (the reference): input 3, output 15, cached 0.3.

mod common;

use std::time::Duration;

use common::Gateway;
use common::prices::*;
use common::spec::{MockSpec, chat_body, sample_sum, scrape, upstream_yaml};
use serde_json::{Value, json};

#[tokio::test]
async fn fallbacks_and_errors_are_counted_with_bounded_labels() {
    let local = MockSpec::new().status(500).start().await;
    let openai = MockSpec::new().usage(1000, 100, 0).start().await;
    let frontier = MockSpec::new().start().await;
    let down = MockSpec::new().status(503).start().await;
    let picky = MockSpec::new().status(400).start().await;
    let extra =
        upstream_yaml("down", &down, "{}") + &upstream_yaml("picky", &picky, FRONTIER_PRICE);
    let tiers =
        "  - name: broken\n    upstreams: [down]\n  - name: strict\n    upstreams: [picky]\n";
    let gw = Gateway::start(&policy(&local, &openai, &frontier, &extra, tiers)).await;

    let (status, h, _) = post_json(&gw, &chat_body("primitive", "hi", false), &[]).await;
    assert_eq!((status, upstream_of(&h)), (200, Some("openai")));
    assert_eq!(
        post_json(&gw, &chat_body("broken", "hi", false), &[])
            .await
            .0,
        502
    );
    assert_eq!(
        post_json(&gw, &chat_body("strict", "hi", false), &[])
            .await
            .0,
        400
    );
    assert_eq!(
        post_json(&gw, &json!({"model": "primitive"}), &[]).await.0,
        400
    );
    assert_eq!(
        post_json(&gw, &chat_body("gpt-9-secret-name", "hi", false), &[])
            .await
            .0,
        404
    );
    // /v1/messages is counted the same way; a routed error names its tier.
    let messages = gw.url("/v1/messages");
    let body = json!({"model": "broken", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let (status, h, _) = common::post(&messages, body.to_string(), &[]).await;
    assert_eq!(status, 502);
    assert_eq!(h["x-tiergate-tier"], "broken");
    let (status, h, _) = common::post(&messages, "{}", &[]).await;
    assert_eq!(status, 400);
    assert!(h.get("x-tiergate-tier").is_none());

    let m = scrape(&gw).await;
    let get = |name: &str, labels: &[(&str, &str)]| sample_sum(&m, name, labels);
    assert_eq!(
        get(
            "tiergate_fallbacks_total",
            &[
                ("from", "local"),
                ("to", "openai"),
                ("reason", "server_error")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        get(
            "tiergate_upstream_errors_total",
            &[("upstream", "local"), ("type", "server_error")]
        ),
        Some(1.0)
    );
    assert_eq!(
        get(
            "tiergate_upstream_errors_total",
            &[("upstream", "down"), ("type", "server_error")]
        ),
        Some(2.0),
        "once for chat, once for messages"
    );
    // The fallback's tokens at openai's prices, measured against the frontier's.
    let via = [("tier", "primitive"), ("upstream", "openai")];
    assert_close!(usd(1000, 0, 100, OPENAI), 0.0035);
    assert_close!(get("tiergate_cost_usd_total", &via).unwrap(), 0.0035);
    assert_close!(
        get("tiergate_reference_cost_usd_total", &via).unwrap(),
        0.0045
    );
    assert_close!(get("tiergate_avoided_cost_usd_total", &via).unwrap(), 0.001);
    // Gateway errors: under upstream `none`, and tier `none` before a tier was decided.
    for (endpoint, want) in [("chat_completions", 2.0), ("messages", 1.0)] {
        let of = |tier, class| {
            let labels = [
                ("endpoint", endpoint),
                ("tier", tier),
                ("upstream", "none"),
                ("status_class", class),
            ];
            get("tiergate_requests_total", &labels)
        };
        assert_eq!(of("broken", "5xx"), Some(1.0), "{endpoint}");
        assert_eq!(of("none", "4xx"), Some(want), "{endpoint}");
    }
    // An upstream's refusal is answered and counted, but bills no tokens.
    assert_eq!(
        get(
            "tiergate_requests_total",
            &[
                ("tier", "strict"),
                ("upstream", "picky"),
                ("status_class", "4xx")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        get("tiergate_input_tokens_total", &[("upstream", "picky")]),
        Some(0.0)
    );
    assert_eq!(
        get("tiergate_cost_usd_total", &[("upstream", "picky")]),
        Some(0.0)
    );
    assert!(
        !m.contains("gpt-9-secret-name"),
        "a client's model name never becomes a label"
    );
    assert_eq!(get("tiergate_requests_in_flight", &[]), Some(0.0));
}

#[tokio::test]
async fn the_json_access_log_has_one_line_per_request_without_prompt_or_key() {
    use std::io::BufRead;
    let local = MockSpec::new().usage(1000, 200, 400).start().await;
    let dir = std::env::temp_dir().join(format!("tiergate-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = format!(
        "upstreams:\n  - name: local\n    kind: openai\n    base_url: \"{}\"\n    api_key: sk-very-secret-key-123\n    model: m\n    price: {LOCAL_PRICE}\ntiers:\n  - name: primitive\n    upstreams: [local]\n  - name: architecture\n    upstreams: [local]\nreference_upstream: local\n",
        local.base_url()
    );
    std::fs::write(dir.join("p.yaml"), policy).unwrap();
    let mut child = common::Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_tiergate"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--policy",
            ])
            .arg(dir.join("p.yaml"))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let next_json = |what: &str| -> Value {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no log line for {what}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let addr = loop {
        let v = next_json("the listen address");
        if let Some(a) = v["message"]
            .as_str()
            .and_then(|m| m.strip_prefix("tiergate listening on http://"))
        {
            break a.parse::<std::net::SocketAddr>().unwrap();
        }
    };
    let url = format!("http://{addr}/v1/chat/completions");
    let body = chat_body("primitive", "SECRET-PROMPT-TEXT please", false).to_string();
    let (status, _, _) = common::post(&url, body, &[("x-request-id", "req-42")]).await;
    assert_eq!(status, 200);
    let (status, _, _) = common::post(
        &url,
        "{\"model\":\"nope\",\"messages\":[]}",
        &[("x-request-id", "req-43")],
    )
    .await;
    assert_eq!(status, 404);

    let mut lines = Vec::new();
    while lines.len() < 2 {
        let v = next_json("the access lines");
        if v["target"] == "tiergate::access" {
            lines.push(v);
        }
    }
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    let ok = &lines[0];
    assert_eq!(ok["request_id"], "req-42", "{ok}");
    assert_eq!(
        (
            ok["tier"].as_str(),
            ok["upstream"].as_str(),
            ok["reason"].as_str()
        ),
        (Some("primitive"), Some("local"), Some("model_tier"))
    );
    assert_eq!(
        (
            ok["status"].as_u64(),
            ok["input_tokens"].as_u64(),
            ok["output_tokens"].as_u64(),
            ok["cached_tokens"].as_u64()
        ),
        (Some(200), Some(1000), Some(200), Some(400))
    );
    assert_eq!(ok["usage_source"], "reported");
    assert_close!(ok["cost_usd"].as_f64().unwrap(), usd(600, 400, 200, LOCAL));
    assert!(
        ok["duration_ms"].as_f64().unwrap() > 0.0 && ok["overhead_ms"].as_f64().is_some(),
        "{ok}"
    );
    let err = &lines[1];
    assert_eq!(
        (
            err["request_id"].as_str(),
            err["status"].as_u64(),
            err["error"].as_str()
        ),
        (Some("req-43"), Some(404), Some("model_not_found"))
    );
    let all = lines.iter().map(Value::to_string).collect::<String>();
    assert!(
        !all.contains("SECRET-PROMPT-TEXT") && !all.contains("sk-very-secret"),
        "{all}"
    );
}
