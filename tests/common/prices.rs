//! The test policies' prices and helpers shared by the metrics tests: known traffic, known
//! usage, exact dollars.
#![allow(dead_code)]

use http::HeaderMap;
use serde_json::Value;

use super::spec::upstream_yaml;
use super::{Gateway, MockUpstream};

pub const LOCAL_PRICE: &str = "{ gpu_hour: { usd_per_hour: 3.6, output_tokens_per_second: 1000, input_tokens_per_second: 10000 } }";
pub const OPENAI_PRICE: &str =
    "{ input_per_mtok: 2.5, output_per_mtok: 10, cached_input_per_mtok: 1.25 }";
pub const FRONTIER_PRICE: &str =
    "{ input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 }";

/// Per-million prices (fresh input, cached input, output).
pub const LOCAL: (f64, f64, f64) = (0.1, 0.1, 1.0);
pub const OPENAI: (f64, f64, f64) = (2.5, 1.25, 10.0);
pub const FRONTIER: (f64, f64, f64) = (3.0, 0.3, 15.0);

/// Dollars for fresh input, cached input and output tokens at per-million prices `p`.
pub fn usd(fresh: u64, cached: u64, output: u64, p: (f64, f64, f64)) -> f64 {
    (fresh as f64 * p.0 + cached as f64 * p.1 + output as f64 * p.2) / 1e6
}

/// Equal up to float summation error (values are sums of a few products).
pub fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-15 + expected.abs() * 1e-12
}

#[macro_export]
macro_rules! assert_close {
    ($actual:expr, $expected:expr) => {{
        let (a, e): (f64, f64) = ($actual, $expected);
        assert!(
            $crate::common::prices::close(a, e),
            "{} = {a}, expected {e}",
            stringify!($actual)
        );
    }};
}

/// POSTs `body` to /v1/chat/completions with `headers`: status, headers and body.
pub async fn post_json(
    gw: &Gateway,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, bytes::Bytes) {
    let (s, h, b) = super::post(&gw.url("/v1/chat/completions"), body.to_string(), headers).await;
    (s.as_u16(), h, b)
}

pub fn upstream_of(h: &HeaderMap) -> Option<&str> {
    h.get("x-tiergate-upstream").and_then(|v| v.to_str().ok())
}

/// local, openai and frontier upstreams; primitive -> local, openai; architecture ->
/// frontier, openai; the reference is frontier. `extra_*` add upstreams and tiers.
pub fn policy(
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

pub const PRIM_LOCAL: &[(&str, &str)] = &[("tier", "primitive"), ("upstream", "local")];
