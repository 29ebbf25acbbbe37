#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Known traffic through mock upstreams with known usage; the exact tokens, cost, reference
//! cost and avoided cost are read back from `GET /metrics`.
//!
//! Prices (US dollars per million tokens) in every test policy:
//! - `local`: GPU-hour amortised, 3.6 $/h at 1,000 output and 10,000 input tokens/s, so
//!   output 1.0, input 0.1, cached input 0.1 (no cached price given: the input price);
//! - `openai`: input 2.5, output 10, cached 1.25;
//! - `frontier` (the reference): input 3, output 15, cached 0.3.

mod common;

use std::time::Duration;

use common::spec::{
    MockSpec, StreamReply, chat_body, est, metric_sum, sample_sum, scrape, sse_data, upstream_yaml,
    wait_for, wait_metric,
};
use common::{Gateway, MockUpstream};
use http::HeaderMap;
use serde_json::{Value, json};

const LOCAL_PRICE: &str = "{ gpu_hour: { usd_per_hour: 3.6, output_tokens_per_second: 1000, input_tokens_per_second: 10000 } }";
const OPENAI_PRICE: &str =
    "{ input_per_mtok: 2.5, output_per_mtok: 10, cached_input_per_mtok: 1.25 }";
const FRONTIER_PRICE: &str =
    "{ input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 }";

/// Per-million prices (fresh input, cached input, output).
const LOCAL: (f64, f64, f64) = (0.1, 0.1, 1.0);
const OPENAI: (f64, f64, f64) = (2.5, 1.25, 10.0);
const FRONTIER: (f64, f64, f64) = (3.0, 0.3, 15.0);

/// Dollars for fresh input, cached input and output tokens at per-million prices `p`.
fn usd(fresh: u64, cached: u64, output: u64, p: (f64, f64, f64)) -> f64 {
    (fresh as f64 * p.0 + cached as f64 * p.1 + output as f64 * p.2) / 1e6
}

/// Equal up to float summation error (values are sums of a few products).
fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-15 + expected.abs() * 1e-12
}

macro_rules! assert_close {
    ($actual:expr, $expected:expr) => {{
        let (a, e): (f64, f64) = ($actual, $expected);
        assert!(close(a, e), "{} = {a}, expected {e}", stringify!($actual));
    }};
}

/// POSTs `body` to /v1/chat/completions with `headers`: status, headers and body.
async fn post_json(
    gw: &Gateway,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, bytes::Bytes) {
    let (s, h, b) = common::post(&gw.url("/v1/chat/completions"), body.to_string(), headers).await;
    (s.as_u16(), h, b)
}

fn upstream_of(h: &HeaderMap) -> Option<&str> {
    h.get("x-tiergate-upstream").and_then(|v| v.to_str().ok())
}

/// local, openai and frontier upstreams; primitive -> local, openai; architecture ->
/// frontier, openai; the reference is frontier. `extra_*` add upstreams and tiers.
fn policy(
    local: &MockUpstream,
    openai: &MockUpstream,
    frontier: &MockUpstream,
    extra_upstreams: &str,
    extra_tiers: &str,
) -> String {
    format!(
        "upstreams:\n{}{}{}{extra_upstreams}tiers:\n  - name: primitive\n    upstreams: [local, openai]\n  - name: architecture\n    upstreams: [frontier, openai]\n{extra_tiers}reference_upstream: frontier\n",
        upstream_yaml("local", local, LOCAL_PRICE),
        upstream_yaml("openai", openai, OPENAI_PRICE),
        upstream_yaml("frontier", frontier, FRONTIER_PRICE),
    )
}

const PRIM_LOCAL: &[(&str, &str)] = &[("tier", "primitive"), ("upstream", "local")];

#[tokio::test]
async fn non_streamed_usage_is_counted_and_priced_exactly() {
    let local = MockSpec::new().usage(1000, 200, 400).start().await;
    let openai = MockSpec::new().usage(1, 1, 0).start().await;
    let frontier = MockSpec::new().usage(2000, 500, 1000).start().await;
    let gw = Gateway::start(&policy(&local, &openai, &frontier, "", "")).await;

    for ua in ["OpenAI/Python 1.99.0", "curl/8.5"] {
        let (status, h, _) = post_json(
            &gw,
            &chat_body("primitive", "write a function", false),
            &[("user-agent", ua)],
        )
        .await;
        assert_eq!((status, upstream_of(&h)), (200, Some("local")));
    }
    let (status, _, body) =
        post_json(&gw, &chat_body("architecture", "design it", false), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        common::json(&body)["usage"]["prompt_tokens"],
        2000,
        "the body passes through untouched"
    );

    let m = scrape(&gw).await;
    let get = |name: &str, labels: &[(&str, &str)]| sample_sum(&m, name, labels);
    let reported = [
        ("tier", "primitive"),
        ("upstream", "local"),
        ("source", "reported"),
    ];
    assert_eq!(get("tiergate_input_tokens_total", &reported), Some(2000.0));
    assert_eq!(get("tiergate_output_tokens_total", &reported), Some(400.0));
    assert_eq!(
        get("tiergate_cached_input_tokens_total", PRIM_LOCAL),
        Some(800.0)
    );
    assert_eq!(
        get("tiergate_input_tokens_total", &[("source", "estimated")]),
        Some(0.0)
    );
    // Two requests of 600 fresh + 400 cached input and 200 output tokens each.
    let cost = 2.0 * usd(600, 400, 200, LOCAL);
    let reference = 2.0 * usd(600, 400, 200, FRONTIER);
    assert_close!(cost, 0.0006);
    assert_close!(reference, 0.00984);
    assert_close!(get("tiergate_cost_usd_total", PRIM_LOCAL).unwrap(), cost);
    assert_close!(
        get("tiergate_reference_cost_usd_total", PRIM_LOCAL).unwrap(),
        reference
    );
    assert_close!(
        get("tiergate_avoided_cost_usd_total", PRIM_LOCAL).unwrap(),
        0.00924
    );

    // On the reference upstream itself nothing is avoided.
    let arch = [("tier", "architecture"), ("upstream", "frontier")];
    assert_close!(get("tiergate_cost_usd_total", &arch).unwrap(), 0.0108);
    assert_close!(
        get("tiergate_reference_cost_usd_total", &arch).unwrap(),
        0.0108
    );
    assert_eq!(get("tiergate_avoided_cost_usd_total", &arch), Some(0.0));
    assert_eq!(
        get("tiergate_cached_input_tokens_total", &arch),
        Some(1000.0)
    );

    let ok = [
        ("endpoint", "chat_completions"),
        ("tier", "primitive"),
        ("upstream", "local"),
        ("status_class", "2xx"),
    ];
    assert_eq!(get("tiergate_requests_total", &ok), Some(2.0));
    assert_eq!(
        get("tiergate_requests_total", &[("client", "openai-sdk")]),
        Some(1.0)
    );
    assert_eq!(
        get("tiergate_requests_total", &[("client", "other")]),
        Some(2.0)
    );
    assert_eq!(
        get(
            "tiergate_routing_decisions_total",
            &[("tier", "primitive"), ("reason", "model_tier")]
        ),
        Some(2.0)
    );
    assert_eq!(
        get(
            "tiergate_request_duration_seconds_count",
            &[("tier", "primitive"), ("stream", "false")]
        ),
        Some(2.0)
    );
    assert_eq!(
        get(
            "tiergate_gateway_overhead_seconds_count",
            &[("tier", "primitive")]
        ),
        Some(2.0)
    );
    assert_eq!(
        get("tiergate_time_to_first_token_seconds_count", &[]),
        Some(0.0),
        "no stream, no TTFT (the series is there from the start, at zero)"
    );
    assert_eq!(
        get("tiergate_upstream_up", &[("upstream", "local")]),
        Some(1.0)
    );
    assert_eq!(
        get(
            "tiergate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(get("tiergate_requests_in_flight", &[]), Some(0.0));
    assert_eq!(
        get(
            "tiergate_upstream_requests_in_flight",
            &[("upstream", "local")]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn stream_usage_is_asked_for_counted_and_stripped_unless_the_client_asked() {
    let local = MockSpec::new()
        .usage(120, 30, 0)
        .content(["Hel", "lo"])
        .start()
        .await;
    let (openai, frontier) = (MockSpec::new().start().await, MockSpec::new().start().await);
    let gw = Gateway::start(&policy(&local, &openai, &frontier, "", "")).await;

    let (status, _, body) = post_json(&gw, &chat_body("primitive", "hi", true), &[]).await;
    assert_eq!(status, 200);
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(
        !data.iter().any(|d| d.contains("\"usage\"")),
        "usage chunk leaked: {data:?}"
    );
    assert_eq!(data.len(), 5, "role, two pieces, finish, [DONE]: {data:?}");
    assert_eq!(
        local.requests()[0].json()["stream_options"]["include_usage"],
        true,
        "tiergate asks for usage"
    );

    let mut asked = chat_body("primitive", "hi", true);
    asked["stream_options"] = json!({"include_usage": true});
    let (_, _, body) = post_json(&gw, &asked, &[]).await;
    let data = sse_data(&body);
    assert!(
        data.iter().any(|d| d.contains("\"prompt_tokens\":120")),
        "the client asked for usage: {data:?}"
    );

    let reported = [
        ("tier", "primitive"),
        ("upstream", "local"),
        ("source", "reported"),
    ];
    // Both streams recorded (each a moment after its client saw the end).
    wait_for(&gw, "tiergate_input_tokens_total", &reported, |v| {
        v == 240.0
    })
    .await;
    let m = scrape(&gw).await;
    let get = |name: &str, labels: &[(&str, &str)]| sample_sum(&m, name, labels);
    assert_eq!(get("tiergate_output_tokens_total", &reported), Some(60.0));
    assert_eq!(
        get("tiergate_cached_input_tokens_total", PRIM_LOCAL),
        Some(0.0),
        "no cached tokens reported"
    );
    // Per stream: 120 * 0.1 + 30 * 1.0 = 42 micro-dollars; reference 120 * 3 + 30 * 15 = 810.
    assert_close!(
        get("tiergate_cost_usd_total", PRIM_LOCAL).unwrap(),
        0.000084
    );
    assert_close!(
        get("tiergate_reference_cost_usd_total", PRIM_LOCAL).unwrap(),
        0.00162
    );
    assert_close!(
        get("tiergate_avoided_cost_usd_total", PRIM_LOCAL).unwrap(),
        0.001536
    );
    assert_eq!(
        get("tiergate_time_to_first_token_seconds_count", PRIM_LOCAL),
        Some(2.0)
    );
    assert_eq!(
        get(
            "tiergate_request_duration_seconds_count",
            &[("tier", "primitive"), ("stream", "true")]
        ),
        Some(2.0)
    );
    assert!(get("tiergate_time_between_chunks_seconds_count", PRIM_LOCAL).unwrap() >= 2.0);
}

#[tokio::test]
async fn usage_an_upstream_does_not_report_is_estimated_under_its_own_label() {
    // Never reports usage, streamed or not.
    let local = MockSpec::new()
        .content(["abcd", "efghij", "k"])
        .start()
        .await;
    let frontier = MockSpec::new().content(["Hello, world"]).start().await;
    let openai = MockSpec::new().start().await;
    let gw = Gateway::start(&policy(&local, &openai, &frontier, "", "")).await;

    let req = chat_body("primitive", "write a regex for dates", true);
    let prompt_bytes = req["messages"].to_string().len();
    assert_eq!(post_json(&gw, &req, &[]).await.0, 200);
    let arch = chat_body("architecture", "plan the migration", false);
    let arch_prompt = arch["messages"].to_string().len();
    assert_eq!(post_json(&gw, &arch, &[]).await.0, 200);

    let estimated = [
        ("tier", "primitive"),
        ("upstream", "local"),
        ("source", "estimated"),
    ];
    let input = wait_metric(&gw, "tiergate_input_tokens_total", &estimated).await;
    assert_eq!(input, est(prompt_bytes) as f64);
    assert_eq!(input, 14.0, "56 bytes of messages JSON");
    // 11 bytes of generated text -> 3 tokens.
    assert_eq!(
        metric_sum(&gw, "tiergate_output_tokens_total", &estimated).await,
        Some(3.0)
    );
    assert_eq!(
        metric_sum(
            &gw,
            "tiergate_input_tokens_total",
            &[("source", "reported")]
        )
        .await,
        Some(0.0)
    );
    assert_close!(
        metric_sum(&gw, "tiergate_cost_usd_total", PRIM_LOCAL)
            .await
            .unwrap(),
        usd(14, 0, 3, LOCAL)
    );
    assert_close!(
        metric_sum(&gw, "tiergate_avoided_cost_usd_total", PRIM_LOCAL)
            .await
            .unwrap(),
        usd(14, 0, 3, FRONTIER) - usd(14, 0, 3, LOCAL)
    );

    // "Hello, world": 12 bytes -> 3 tokens, not streamed.
    let arch_est = [
        ("tier", "architecture"),
        ("upstream", "frontier"),
        ("source", "estimated"),
    ];
    assert_eq!(
        metric_sum(&gw, "tiergate_input_tokens_total", &arch_est).await,
        Some(est(arch_prompt) as f64)
    );
    assert_eq!(
        metric_sum(&gw, "tiergate_output_tokens_total", &arch_est).await,
        Some(3.0)
    );
}

#[tokio::test]
async fn hang_up_after_the_usage_chunk_counts_the_reported_usage() {
    // role, a, b, finish, usage ... then the upstream holds [DONE] back for 10 s.
    let local = MockSpec::new()
        .usage(500, 40, 100)
        .content(["a", "b"])
        .stall_after(5, Duration::from_secs(10))
        .start()
        .await;
    let (openai, frontier) = (MockSpec::new().start().await, MockSpec::new().start().await);
    let gw = Gateway::start(&policy(&local, &openai, &frontier, "", "")).await;

    let mut req = chat_body("primitive", "hi", true);
    req["stream_options"] = json!({"include_usage": true});
    let mut s = StreamReply::open(gw.addr, "/v1/chat/completions", &req).await;
    assert_eq!(s.status, 200);
    loop {
        let d = s
            .next_data()
            .await
            .expect("the usage chunk comes before the stall");
        if d.contains("\"usage\":{") {
            break;
        }
    }
    drop(s);

    let reported = [
        ("tier", "primitive"),
        ("upstream", "local"),
        ("source", "reported"),
    ];
    assert_eq!(
        wait_metric(&gw, "tiergate_input_tokens_total", &reported).await,
        500.0
    );
    assert_eq!(
        metric_sum(&gw, "tiergate_output_tokens_total", &reported).await,
        Some(40.0)
    );
    assert_eq!(
        metric_sum(&gw, "tiergate_cached_input_tokens_total", PRIM_LOCAL).await,
        Some(100.0)
    );
    // 400 * 0.1 + 100 * 0.1 + 40 * 1.0 = 90 micro-dollars; reference 400 * 3 + 100 * 0.3 + 40 * 15 = 1830.
    assert_close!(
        metric_sum(&gw, "tiergate_cost_usd_total", PRIM_LOCAL)
            .await
            .unwrap(),
        0.00009
    );
    assert_close!(
        metric_sum(&gw, "tiergate_reference_cost_usd_total", PRIM_LOCAL)
            .await
            .unwrap(),
        0.00183
    );
    assert_close!(
        metric_sum(&gw, "tiergate_avoided_cost_usd_total", PRIM_LOCAL)
            .await
            .unwrap(),
        0.00174
    );
    assert_eq!(
        metric_sum(&gw, "tiergate_requests_in_flight", &[]).await,
        Some(0.0)
    );
    assert_eq!(
        metric_sum(
            &gw,
            "tiergate_upstream_requests_in_flight",
            &[("upstream", "local")]
        )
        .await,
        Some(0.0)
    );
}

#[tokio::test]
async fn hang_up_before_the_usage_chunk_counts_an_estimate_and_cancels_upstream() {
    // 40 pieces of 4 bytes (one estimated token each); after role + 3 pieces the upstream
    // pauses, then trickles on, and reports usage only at the end.
    let pieces: Vec<String> = (0..40).map(|i| format!("t{i:02} ")).collect();
    let local = MockSpec::new()
        .usage(999, 999, 0)
        .content(pieces)
        .stall_after(4, Duration::from_millis(300))
        .chunk_delay(Duration::from_millis(20))
        .start()
        .await;
    let (openai, frontier) = (MockSpec::new().start().await, MockSpec::new().start().await);
    let gw = Gateway::start(&policy(&local, &openai, &frontier, "", "")).await;

    let req = chat_body("primitive", "write one function", true);
    let prompt_bytes = req["messages"].to_string().len();
    let mut s = StreamReply::open(gw.addr, "/v1/chat/completions", &req).await;
    let mut pieces_seen = 0;
    while pieces_seen < 3 {
        let d = s.next_data().await.expect("three pieces before the pause");
        if d.contains("\"content\":\"t") {
            pieces_seen += 1;
        }
    }
    assert_eq!(
        metric_sum(&gw, "tiergate_requests_in_flight", &[]).await,
        Some(1.0)
    );
    assert_eq!(
        metric_sum(
            &gw,
            "tiergate_upstream_requests_in_flight",
            &[("upstream", "local")]
        )
        .await,
        Some(1.0)
    );
    drop(s);

    let estimated = [
        ("tier", "primitive"),
        ("upstream", "local"),
        ("source", "estimated"),
    ];
    assert_eq!(
        wait_metric(&gw, "tiergate_input_tokens_total", &estimated).await,
        est(prompt_bytes) as f64
    );
    let output = metric_sum(&gw, "tiergate_output_tokens_total", &estimated)
        .await
        .unwrap();
    // The gateway may read a piece or two more than the client before its write fails,
    // never the whole answer.
    assert!(
        (3.0..40.0).contains(&output),
        "estimated output tokens {output}"
    );
    assert_eq!(
        metric_sum(
            &gw,
            "tiergate_input_tokens_total",
            &[("source", "reported")]
        )
        .await,
        Some(0.0)
    );
    assert_close!(
        metric_sum(&gw, "tiergate_cost_usd_total", PRIM_LOCAL)
            .await
            .unwrap(),
        usd(est(prompt_bytes), 0, output as u64, LOCAL)
    );
    assert_eq!(
        metric_sum(&gw, "tiergate_requests_in_flight", &[]).await,
        Some(0.0)
    );
    assert_eq!(
        metric_sum(
            &gw,
            "tiergate_upstream_requests_in_flight",
            &[("upstream", "local")]
        )
        .await,
        Some(0.0)
    );
    // The upstream saw its reader leave before the end: nobody pays for the rest.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while *local.dropped_count.lock().unwrap() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream stream was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
