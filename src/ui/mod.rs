//! The live page at `/`: one self-contained HTML file (no external scripts, fonts or styles)
//! that polls `/api/stats`, built from the metrics registry and the recent decisions.

pub mod quality;
pub mod recent;
pub mod stats;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::http::{Body, json, text};
use crate::metrics::Metrics;
use crate::upstream::Runtime;
pub use recent::{Entry, Note, Recent};
pub use stats::Stats;

pub const STATS_PATH: &str = "/api/stats";
const INDEX_HTML: &str = include_str!("index.html");
/// The page may load nothing from elsewhere; its script and style are inline.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'";

pub fn page() -> Response<Body> {
    let mut r = text(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from_static(INDEX_HTML.as_bytes()),
    );
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The current stats, from the metrics and the recent decisions.
pub fn snapshot(rt: &Runtime, metrics: &Metrics, recent: &Recent) -> Stats {
    Stats::build(&rt.policy, &metrics.registry.gather(), recent.latest())
}

pub fn stats(rt: &Runtime, metrics: &Metrics, recent: &Recent) -> Response<Body> {
    match serde_json::to_vec(&snapshot(rt, metrics, recent)) {
        Ok(body) => {
            let mut r = json(StatusCode::OK, body);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        // Cannot happen (every map key is a string), but never panic on it.
        Err(e) => crate::error::GatewayError::Internal(format!("cannot encode the stats: {e}"))
            .response(crate::protocol::Format::Chat),
    }
}
