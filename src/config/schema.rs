//! The policy file as written by the user: strict (unknown keys are errors) and typed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::quality::{HoldBack, ProbeConfig, QualityGateConfig, ShadowConfig};
use super::resilience::{
    AdaptiveFirstByte, BreakerConfig, ClientLimits, HealthConfig, HedgeConfig, RetryBudgetConfig,
    RetryConfig,
};
pub use crate::routing::policy::{ClassifierConfig, RuleConfig};
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub server: ServerConfig,
    pub upstreams: Vec<UpstreamConfig>,
    pub tiers: Vec<TierConfig>,
    #[serde(default)]
    pub classifier: ClassifierConfig,
    /// The upstream whose prices define "what it would have cost on the frontier".
    #[serde(default)]
    pub reference_upstream: Option<String>,
    /// Extra model names accepted from clients, each mapped to `auto`, a tier or an upstream.
    #[serde(default)]
    pub model_aliases: BTreeMap<String, String>,
    #[serde(default)]
    pub retry_budget: RetryBudgetConfig,
    /// Client keys and who may read the gateway's own surfaces.
    #[serde(default)]
    pub auth: crate::govern::config::AuthConfig,
    /// Teams: their budgets and what happens when one runs out.
    #[serde(default)]
    pub teams: Vec<crate::govern::config::TeamConfig>,
    /// How a request's cost is reserved against budgets.
    #[serde(default)]
    pub budgets: crate::govern::limits::ReserveConfig,
    /// Where counters live: Redis, shared by replicas, or memory.
    #[serde(default)]
    pub state: crate::govern::state::StateConfig,
    /// Secrets in requests: keep them local, or refuse them.
    #[serde(default)]
    pub secrets: crate::secrets::SecretsConfig,
    /// The probe suite run by `serve` on a schedule (off when absent).
    #[serde(default)]
    pub probe: Option<ProbeConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub max_body_bytes: usize,
    /// Show the start of each task on the live page (`/`); off: tiers, scores and numbers only.
    pub ui_show_prompts: bool,
    pub limits: ClientLimits,
    /// TLS termination (plain HTTP when absent).
    pub tls: Option<TlsConfig>,
}

/// Certificate and key files (PEM), reloaded when they change; a CA file makes client
/// certificates required (mTLS).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// How often the files are checked for changes.
    #[serde(default = "tls_watch", with = "humantime_serde")]
    pub watch: Duration,
}

fn tls_watch() -> Duration {
    Duration::from_secs(10)
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 16 * 1024 * 1024,
            ui_show_prompts: false,
            limits: ClientLimits::default(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    Openai,
    Anthropic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    pub kind: UpstreamKind,
    pub base_url: String,
    #[serde(default)]
    pub api_key: Secret,
    /// When false the upstream is enabled without a key (local servers).
    #[serde(default = "yes")]
    pub key_required: bool,
    /// When false the upstream is configured but never routed to.
    #[serde(default = "yes")]
    pub enabled: bool,
    pub model: String,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub price: Price,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// An extra PEM file of CA certificates trusted for this upstream (on-premise endpoints).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `max_tokens` sent to an Anthropic upstream when the client gives none (the Messages
    /// API requires one).
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u64,
    /// Normalise the answers of a real local server to OpenAI's shape and turn tool calls
    /// written as text into `tool_calls` (see `local`).
    #[serde(default)]
    pub repair: bool,
    /// With `repair`: a tool-offering request whose answer cannot be repaired goes to the
    /// tier's next upstream.
    #[serde(default)]
    pub escalate_unrepaired_tool_calls: bool,
    /// Whether the upstream speaks the Responses API (`/v1/responses` is then passed through
    /// to it rather than translated to chat completions). Default: true for `kind: openai` at
    /// api.openai.com, false elsewhere (local servers do not speak it).
    #[serde(default)]
    pub responses_api: Option<bool>,
    /// Requests that may wait for a slot when the upstream is at `max_concurrency` and is
    /// the last of its route; one more gets 503.
    #[serde(default = "default_queue")]
    pub max_queue: usize,
    /// When the upstream's recent time to first byte is above this and the route has a
    /// next upstream, requests spill over to it.
    #[serde(default, with = "humantime_serde")]
    pub latency_target: Option<Duration>,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Active health checks (off when absent).
    #[serde(default)]
    pub health: Option<HealthConfig>,
    #[serde(default)]
    pub hedge: HedgeConfig,
    #[serde(default)]
    pub first_byte_adaptive: AdaptiveFirstByte,
    /// Runs where the data may go: requests carrying a secret, and every request of a key
    /// with `local_only`, are answered by local upstreams only.
    #[serde(default)]
    pub local: bool,
}

fn default_queue() -> usize {
    256
}

fn yes() -> bool {
    true
}

fn default_max_tokens() -> u64 {
    4096
}

fn default_concurrency() -> usize {
    256
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// From sending the request to the response head (for streams: the first event).
    #[serde(with = "humantime_serde")]
    pub first_byte: Duration,
    /// Longest silence between two chunks of a streamed answer.
    #[serde(with = "humantime_serde")]
    pub idle: Duration,
    #[serde(with = "humantime_serde")]
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Price of prompt tokens served from the provider's cache; defaults to the input price.
    pub cached_input_per_mtok: Option<f64>,
    /// A local upstream's hardware, amortised over the tokens it is expected to serve;
    /// added on top of the per-token prices above.
    pub gpu_hour: Option<GpuHour>,
}

/// GPU-hour amortisation: a box costing `usd_per_hour` that serves `output_tokens_per_second`
/// (aggregate, at its usual batch) costs `usd_per_hour / (output_tokens_per_second * 3600)`
/// per output token. Prompt tokens are priced the same way at `input_tokens_per_second`
/// (prefill throughput) when given, else they carry no hardware share.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuHour {
    pub usd_per_hour: f64,
    pub output_tokens_per_second: f64,
    #[serde(default)]
    pub input_tokens_per_second: Option<f64>,
}

/// Effective prices in US dollars per million tokens, hardware share included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerMtok {
    pub input: f64,
    pub output: f64,
    pub cached_input: f64,
}

impl Price {
    /// The per-million-token prices that cost is computed from. Cached prompt tokens cost
    /// `cached_input_per_mtok` when given, else the effective input price.
    pub fn per_mtok(&self) -> PerMtok {
        let share = |usd_per_hour: f64, tps: f64| {
            if tps > 0.0 {
                usd_per_hour * 1e6 / (tps * 3600.0)
            } else {
                0.0
            }
        };
        let (gpu_in, gpu_out) = match self.gpu_hour {
            Some(g) => (
                g.input_tokens_per_second
                    .map_or(0.0, |t| share(g.usd_per_hour, t)),
                share(g.usd_per_hour, g.output_tokens_per_second),
            ),
            None => (0.0, 0.0),
        };
        let input = self.input_per_mtok + gpu_in;
        PerMtok {
            input,
            output: self.output_per_mtok + gpu_out,
            cached_input: self.cached_input_per_mtok.unwrap_or(input),
        }
    }

    /// Why the price cannot be used, if it cannot: negative or non-finite values, or a
    /// GPU-hour price without a positive throughput.
    pub fn problem(&self) -> Option<&'static str> {
        let bad = |v: f64| !v.is_finite() || v < 0.0;
        if bad(self.input_per_mtok)
            || bad(self.output_per_mtok)
            || self.cached_input_per_mtok.is_some_and(bad)
        {
            return Some("prices must be finite and not negative");
        }
        if let Some(g) = self.gpu_hour {
            if bad(g.usd_per_hour) {
                return Some("gpu_hour.usd_per_hour must be finite and not negative");
            }
            let positive = |t: f64| t.is_finite() && t > 0.0;
            if !positive(g.output_tokens_per_second)
                || g.input_tokens_per_second.is_some_and(|t| !positive(t))
            {
                return Some("gpu_hour throughput (tokens per second) must be positive");
            }
        }
        None
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub name: String,
    pub upstreams: Vec<String>,
    /// Answer checks whose failure re-asks the tier's next upstream (non-streamed requests,
    /// and streams with `hold_back`).
    #[serde(default)]
    pub escalate_on: Vec<String>,
    #[serde(default)]
    pub hold_back: Option<HoldBack>,
    #[serde(default)]
    pub shadow: Option<ShadowConfig>,
    #[serde(default)]
    pub quality_gate: Option<QualityGateConfig>,
    /// Answers the checks read per second, at most (`.inf`: every one). A tier that
    /// escalates, holds back or shadows checks every answer whatever this says.
    #[serde(default = "checks_per_second")]
    pub checks_per_second: f64,
}

fn checks_per_second() -> f64 {
    crate::config::quality::DEFAULT_CHECKS_PER_SECOND
}
