//! Accounting of one finished request: tokens, cost, avoided cost, durations, access log.
//! Called exactly once per forwarded request, whether it ended well, broke, or the client left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::{App, Runtime};
use crate::config::Price;
use crate::metrics::status_class;
use crate::protocol::openai::Usage;

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Complete,
    /// The upstream broke off after the response started.
    Broken,
    /// The client hung up before the end.
    ClientGone,
}

impl End {
    fn label(self) -> &'static str {
        match self {
            End::Complete => "complete",
            End::Broken => "broken",
            End::ClientGone => "client_gone",
        }
    }
}

/// What is known of a forwarded request, filled in along the way.
pub struct Ledger {
    pub app: Arc<App>,
    pub rt: Arc<Runtime>,
    pub request_id: String,
    pub endpoint: &'static str,
    pub client: &'static str,
    pub reason: &'static str,
    pub tier: usize,
    pub upstream: usize,
    pub status: u16,
    pub stream: bool,
    pub started: Instant,
    /// Time spent in the gateway before the first upstream attempt was sent, plus after.
    pub overhead: Duration,
    /// Prompt size in bytes, for an estimate when the upstream reports no usage.
    pub request_bytes: usize,
}

impl Ledger {
    /// Records everything about the request. `output_bytes` feeds the estimate when `usage`
    /// is None.
    pub fn finish(self, usage: Option<Usage>, output_bytes: usize, ttft: Option<Duration>, end: End) {
        let m = &self.app.metrics;
        let p = &self.rt.policy;
        let tier = p.tiers[self.tier].name.as_str();
        let up = &p.upstreams[self.upstream];
        let labels = [tier, up.name.as_str()];
        let elapsed = self.started.elapsed();

        let (usage, source) = match usage {
            Some(u) => (u, "reported"),
            // About four bytes per token for code and English; counted under its own label.
            None => (Usage { prompt_tokens: (self.request_bytes / 4) as u64, completion_tokens: (output_bytes / 4) as u64, prompt_tokens_details: None }, "estimated"),
        };
        let cached = usage.cached_tokens().min(usage.prompt_tokens);
        m.input_tokens.with_label_values(&[tier, &up.name, source]).inc_by(usage.prompt_tokens);
        m.output_tokens.with_label_values(&[tier, &up.name, source]).inc_by(usage.completion_tokens);
        if cached > 0 {
            m.cached_tokens.with_label_values(&labels).inc_by(cached);
        }
        let cost = cost_usd(&up.price, &usage);
        let reference = p.reference_upstream.map(|r| cost_usd(&p.upstreams[r].price, &usage));
        m.cost_usd.with_label_values(&labels).inc_by(cost);
        if let Some(reference) = reference {
            m.reference_cost_usd.with_label_values(&labels).inc_by(reference);
            if reference > cost {
                m.avoided_cost_usd.with_label_values(&labels).inc_by(reference - cost);
            }
        }
        let status = if end == End::Broken { 502 } else { self.status };
        m.requests.with_label_values(&[self.endpoint, tier, &up.name, status_class(status), self.client]).inc();
        m.duration.with_label_values(&[tier, &up.name, if self.stream { "true" } else { "false" }]).observe(elapsed.as_secs_f64());
        m.overhead.with_label_values(&[tier]).observe(self.overhead.as_secs_f64());
        if let Some(t) = ttft {
            m.ttft.with_label_values(&labels).observe(t.as_secs_f64());
        }
        tracing::info!(
            target: "tiergate::access",
            request_id = %self.request_id,
            endpoint = self.endpoint,
            client = self.client,
            tier,
            upstream = %up.name,
            reason = self.reason,
            status,
            stream = self.stream,
            end = end.label(),
            input_tokens = usage.prompt_tokens,
            output_tokens = usage.completion_tokens,
            cached_tokens = cached,
            usage_source = source,
            cost_usd = cost,
            duration_ms = elapsed.as_secs_f64() * 1e3,
            ttft_ms = ttft.map(|t| t.as_secs_f64() * 1e3),
            overhead_ms = self.overhead.as_secs_f64() * 1e3,
        );
    }
}

/// Cost of `usage` at `price`; cached prompt tokens at the cached price (the input price when
/// the policy gives none). Cached tokens are part of prompt tokens, never added on top.
pub fn cost_usd(price: &Price, usage: &Usage) -> f64 {
    let cached = usage.cached_tokens().min(usage.prompt_tokens);
    let fresh = usage.prompt_tokens - cached;
    let cached_price = price.cached_input_per_mtok.unwrap_or(price.input_per_mtok);
    (fresh as f64 * price.input_per_mtok + cached as f64 * cached_price + usage.completion_tokens as f64 * price.output_per_mtok) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::openai::PromptDetails;

    #[test]
    fn cached_tokens_are_priced_once() {
        let price = Price { input_per_mtok: 3.0, output_per_mtok: 15.0, cached_input_per_mtok: Some(0.3) };
        let u = Usage { prompt_tokens: 1_000_000, completion_tokens: 100_000, prompt_tokens_details: Some(PromptDetails { cached_tokens: Some(400_000) }) };
        let c = cost_usd(&price, &u);
        assert!((c - (0.6 * 3.0 + 0.4 * 0.3 + 0.1 * 15.0)).abs() < 1e-9, "{c}");
    }
}
