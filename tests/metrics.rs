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

use common::Gateway;
use common::prices::*;
use common::spec::{
    MockSpec, StreamReply, chat_body, est, metric_sum, sample_sum, scrape, sse_data, wait_for,
    wait_metric,
};
use serde_json::json;

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
