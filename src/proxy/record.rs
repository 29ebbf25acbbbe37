//! Accounting of one finished request: tokens, cost, avoided cost, durations, access log.
//! Called exactly once per forwarded request, whether it ended well, broke, or the client left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderMap;

use super::forward::Forwarded;
use crate::app::App;
use crate::clients;
use crate::config::Price;
use crate::error::{ErrorReply, GatewayError};
use crate::govern::auth::NO_TEAM;
use crate::govern::metrics::TeamObservation;
use crate::metrics::{InFlight, NONE, status_class};
use crate::protocol::Format;
use crate::protocol::openai::Usage;
use crate::routing::Decision;
use crate::ui::{Entry, Note};
use crate::upstream::Runtime;

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
    /// Bytes of the prompt (messages and tools, or prompt and suffix), for an estimate when
    /// the upstream reports no usage.
    pub prompt_bytes: usize,
    /// The request's and the upstream's in-flight gauges, lowered when the ledger is done.
    pub in_flight: Option<InFlight>,
    pub upstream_in_flight: Option<InFlight>,
    /// Whether the answer is generated text that bills (a token count does not).
    pub bills: bool,
    /// Score and reasons of the decision, for the live page's recent decisions.
    pub note: Note,
    /// The caller and its budget reservation, settled with the real cost at the end.
    pub settle: Option<super::guard::Settle>,
    /// Set for chat-shaped answers: the answer checks run on them once complete.
    pub checks: Option<Arc<super::quality::Asked>>,
}

/// About four bytes per token for code and English (JSON framing of messages included):
/// the estimate used when an upstream reports no usage, counted under `source="estimated"`.
pub fn estimate_tokens(bytes: usize) -> u64 {
    bytes.div_ceil(4) as u64
}

impl Ledger {
    /// Records everything about the request. `output_text_bytes` (see `protocol::scan`)
    /// feeds the estimate when `usage` is None. An upstream answer that is not a success and
    /// reports no usage counts no tokens: providers do not bill refused requests.
    pub fn finish(
        self,
        usage: Option<Usage>,
        output_text_bytes: usize,
        ttft: Option<Duration>,
        end: End,
    ) {
        let m = &self.app.metrics;
        let p = &self.rt.policy;
        let tier = p.tiers[self.tier].name.as_str();
        let up = &p.upstreams[self.upstream];
        let labels = [tier, up.name.as_str()];
        let elapsed = self.started.elapsed();
        let status = if end == End::Broken { 502 } else { self.status };

        let (usage, source) = match usage {
            _ if !self.bills => (Usage::default(), "none"),
            Some(u) => (u, "reported"),
            None if !(200..300).contains(&self.status) => (Usage::default(), "none"),
            None => (
                Usage {
                    prompt_tokens: estimate_tokens(self.prompt_bytes),
                    completion_tokens: estimate_tokens(output_text_bytes),
                    prompt_tokens_details: None,
                },
                "estimated",
            ),
        };
        let cached = usage.cached_tokens().min(usage.prompt_tokens);
        let mut cost = 0.0;
        if source != "none" {
            m.input_tokens
                .with_label_values(&[tier, &up.name, source])
                .inc_by(usage.prompt_tokens);
            m.output_tokens
                .with_label_values(&[tier, &up.name, source])
                .inc_by(usage.completion_tokens);
            if cached > 0 {
                m.cached_tokens.with_label_values(&labels).inc_by(cached);
            }
            cost = cost_usd(&up.price, &usage);
            m.cost_usd.with_label_values(&labels).inc_by(cost);
            if let Some(r) = p.reference_upstream {
                let reference = cost_usd(&p.upstreams[r].price, &usage);
                m.reference_cost_usd
                    .with_label_values(&labels)
                    .inc_by(reference);
                // Counters only grow: a request dearer than the reference avoids nothing.
                m.avoided_cost_usd
                    .with_label_values(&labels)
                    .inc_by((reference - cost).max(0.0));
            }
        }
        m.requests
            .with_label_values(&[
                self.endpoint,
                tier,
                &up.name,
                status_class(status),
                self.client,
            ])
            .inc();
        let avoided = match p.reference_upstream {
            Some(r) if source != "none" => {
                (cost_usd(&p.upstreams[r].price, &usage) - cost).max(0.0)
            }
            _ => 0.0,
        };
        let team = self.settle.as_ref().map_or(NO_TEAM, |s| s.caller.team());
        m.team.observe(&TeamObservation {
            team,
            tier,
            status,
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
            cost_usd: cost,
            avoided_cost_usd: avoided,
        });
        m.duration
            .with_label_values(&[tier, &up.name, if self.stream { "true" } else { "false" }])
            .observe(elapsed.as_secs_f64());
        m.overhead
            .with_label_values(&[tier])
            .observe(self.overhead.as_secs_f64());
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
        if let Some(settle) = self.settle {
            let tokens = usage.prompt_tokens + usage.completion_tokens;
            settle.finish(&self.app, &self.rt, self.upstream, cost, tokens);
        }
        self.app.recent.push(Entry {
            at_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            request_id: self.request_id,
            endpoint: self.endpoint,
            client: self.client,
            tier: tier.to_string(),
            upstream: up.name.clone(),
            reason: self.reason,
            score: self.note.score,
            reasons: self.note.reasons,
            status,
            stream: self.stream,
            end: end.label(),
            latency_ms: elapsed.as_secs_f64() * 1e3,
            ttft_ms: ttft.map(|t| t.as_secs_f64() * 1e3),
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
            cost_usd: cost,
            prompt: self.note.prompt,
        });
    }
}

impl Ledger {
    /// Counts and logs a stream that broke after its first byte, and tells the breaker;
    /// returns the error event's code and message.
    pub fn broken(&self, e: &(dyn std::error::Error + 'static)) -> (&'static str, String) {
        let (reason, code, message) = super::deadline::fault_of(e);
        let p = &self.rt.policy;
        let (up, run) = (
            &p.upstreams[self.upstream],
            &self.rt.upstreams[self.upstream],
        );
        self.app
            .metrics
            .stream_errors
            .with_label_values(&[p.tiers[self.tier].name.as_str(), &up.name, reason])
            .inc();
        tracing::warn!(request_id = %self.request_id, upstream = %up.name, reason, "upstream stream broke: {e}");
        let t = run.state.record(&up.breaker, false, false);
        crate::upstream::health::note(&self.app.metrics, &self.rt, &up.name, t);
        (code, message)
    }
}

/// How far a request got, for recording it when it fails.
pub struct Progress {
    /// Moves into the ledger once an upstream answers.
    pub in_flight: Option<InFlight>,
    /// Set once the request is routed.
    pub tier: Option<usize>,
    /// Set once a ledger recorded the request.
    pub recorded: bool,
    /// Who is calling, once the key is checked (the `team` of what is recorded).
    pub caller: crate::govern::Caller,
}

impl Progress {
    /// Notes the tier `decision` chose and counts the decision; returns the tier's name.
    /// (The same request is never routed twice.)
    pub fn routed<'r>(&mut self, origin: &'r Origin, decision: &Decision) -> &'r str {
        self.tier = Some(decision.tier);
        let tier = origin.rt.policy.tiers[decision.tier].name.as_str();
        origin
            .app
            .metrics
            .decisions
            .with_label_values(&[tier, decision.reason])
            .inc();
        tier
    }

    pub fn new(app: &App) -> Self {
        Progress {
            in_flight: Some(InFlight::new(app.metrics.in_flight.clone())),
            tier: None,
            recorded: false,
            caller: crate::govern::Caller::default(),
        }
    }
}

/// Who asked for what, and when: what a handler knows before it routes. Every ledger starts
/// from one, and a request the gateway itself refuses is recorded from it.
pub struct Origin {
    pub app: Arc<App>,
    pub rt: Arc<Runtime>,
    pub request_id: String,
    pub format: Format,
    pub endpoint: &'static str,
    pub client: &'static str,
    pub started: Instant,
}

impl Origin {
    /// Takes the policy snapshot the whole request will use.
    pub fn new(app: &Arc<App>, headers: &HeaderMap, request_id: &str, format: Format) -> Self {
        Origin {
            app: app.clone(),
            rt: app.runtime.load_full(),
            request_id: request_id.to_string(),
            format,
            endpoint: format.label(),
            client: clients::kind(headers),
            started: Instant::now(),
        }
    }

    /// The end of a handler. An error no ledger recorded (the gateway's own: bad input, no
    /// upstream, every upstream failed) is recorded here; the decided tier goes with it.
    pub fn conclude<T>(
        &self,
        result: Result<T, GatewayError>,
        progress: &Progress,
    ) -> Result<T, ErrorReply> {
        result.map_err(|error| {
            if !progress.recorded {
                self.rejected(progress.tier, &error, progress.caller.team());
            }
            let tier = progress.tier.map(|t| self.rt.policy.tiers[t].name.clone());
            ErrorReply { error, tier }
        })
    }

    /// Records a request tiergate answered itself, on purpose, without an upstream (a token
    /// count estimated): counted under upstream `none`, with an access-log line.
    pub fn answered_here(&self, tier: usize, status: u16, what: &'static str, team: &str) {
        self.unforwarded(Some(tier), status, None, Some(what), team);
    }

    /// Records a request that got an error from the gateway itself (bad input, no upstream,
    /// every upstream failed): counted under upstream `none`, and under tier `none` when it
    /// failed before a tier was decided.
    fn rejected(&self, tier: Option<usize>, error: &GatewayError, team: &str) {
        self.unforwarded(
            tier,
            error.status().as_u16(),
            Some(error.code()),
            None,
            team,
        );
    }

    /// Counts and logs a request no upstream answered: the error's code, or what tiergate
    /// answered itself.
    fn unforwarded(
        &self,
        tier: Option<usize>,
        status: u16,
        error: Option<&str>,
        answered: Option<&str>,
        team: &str,
    ) {
        let tier = tier.map_or(NONE, |t| self.rt.policy.tiers[t].name.as_str());
        self.app.metrics.team.observe(&TeamObservation {
            team,
            tier,
            status,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            avoided_cost_usd: 0.0,
        });
        self.app
            .metrics
            .requests
            .with_label_values(&[self.endpoint, tier, NONE, status_class(status), self.client])
            .inc();
        tracing::info!(
            target: "tiergate::access",
            request_id = %self.request_id,
            endpoint = self.endpoint,
            client = self.client,
            tier,
            upstream = NONE,
            status,
            error,
            answered,
            duration_ms = self.started.elapsed().as_secs_f64() * 1e3,
        );
    }
}

impl Ledger {
    /// The ledger of a request that `decision` routed and `fwd` answered; the upstream's
    /// in-flight gauge moves into it. A handler adds what only it knows with struct update
    /// syntax: `Ledger { stream, overhead, prompt_bytes, in_flight, note, ..Ledger::open(..) }`.
    pub(crate) fn open(origin: &Origin, decision: &Decision, fwd: &mut Forwarded) -> Ledger {
        Ledger {
            app: origin.app.clone(),
            rt: origin.rt.clone(),
            request_id: origin.request_id.clone(),
            endpoint: origin.endpoint,
            client: origin.client,
            reason: decision.reason,
            tier: decision.tier,
            upstream: fwd.upstream,
            status: fwd.response.status().as_u16(),
            stream: false,
            started: origin.started,
            overhead: Duration::ZERO,
            prompt_bytes: 0,
            in_flight: None,
            upstream_in_flight: fwd.in_flight.take(),
            bills: true,
            note: Note::default(),
            settle: None,
            checks: None,
        }
    }
}

/// Cost of `usage` at `price` (GPU-hour share included); cached prompt tokens at the cached
/// price. Cached tokens are part of prompt tokens, never added on top.
pub fn cost_usd(price: &Price, usage: &Usage) -> f64 {
    let p = price.per_mtok();
    let cached = usage.cached_tokens().min(usage.prompt_tokens);
    let fresh = usage.prompt_tokens - cached;
    (fresh as f64 * p.input
        + cached as f64 * p.cached_input
        + usage.completion_tokens as f64 * p.output)
        / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::openai::PromptDetails;

    #[test]
    fn cached_tokens_are_priced_once() {
        let price = Price {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
            cached_input_per_mtok: Some(0.3),
            gpu_hour: None,
        };
        let u = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 100_000,
            prompt_tokens_details: Some(PromptDetails {
                cached_tokens: Some(400_000),
            }),
        };
        let c = cost_usd(&price, &u);
        assert!(
            (c - (0.6 * 3.0 + 0.4 * 0.3 + 0.1 * 15.0)).abs() < 1e-9,
            "{c}"
        );
    }

    #[test]
    fn gpu_hour_share_is_added_per_token() {
        let price = Price {
            gpu_hour: Some(crate::config::schema::GpuHour {
                usd_per_hour: 3.6,
                output_tokens_per_second: 1000.0,
                input_tokens_per_second: None,
            }),
            ..Price::default()
        };
        let u = Usage {
            prompt_tokens: 5_000,
            completion_tokens: 2_000,
            prompt_tokens_details: None,
        };
        // 1 $ per million output tokens, prompt tokens free without a prefill throughput.
        assert!((cost_usd(&price, &u) - 0.002).abs() < 1e-15);
    }

    #[test]
    fn estimates_round_up() {
        assert_eq!(
            (
                estimate_tokens(0),
                estimate_tokens(1),
                estimate_tokens(4),
                estimate_tokens(5)
            ),
            (0, 1, 1, 2)
        );
    }
}
