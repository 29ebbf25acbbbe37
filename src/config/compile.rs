//! Validation and compilation of a parsed policy file into indexed, ready-to-route data.

use std::collections::{BTreeMap, HashSet};

use super::ConfigError;
use super::locate::locate;
use super::resilience::{
    AdaptiveFirstByte, BreakerConfig, HealthConfig, RetryBudgetConfig, RetryConfig,
};
use super::schema::{PolicyFile, Price, ServerConfig, Timeouts, UpstreamKind};
use crate::routing::decide::Routes;
use crate::routing::rules::CompiledClassifier;
use crate::secret::Secret;

/// The compiled policy. Upstreams and tiers are addressed by index.
#[derive(Debug)]
pub struct Policy {
    pub source: String,
    pub server: ServerConfig,
    pub upstreams: Vec<Upstream>,
    pub tiers: Vec<Tier>,
    pub classifier: CompiledClassifier,
    pub primitive_tier: usize,
    pub architecture_tier: usize,
    pub reference_upstream: Option<usize>,
    pub model_aliases: BTreeMap<String, String>,
    pub retry_budget: RetryBudgetConfig,
    /// Client keys, teams, budgets and the state store's settings.
    pub governance: crate::govern::Governance,
    pub secrets: crate::secrets::Scanner,
    /// The scheduled probe (`probe:` in the policy).
    pub probe: Option<super::quality::Probe>,
}

#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub kind: UpstreamKind,
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub api_key: Secret,
    pub model: String,
    pub timeouts: Timeouts,
    pub price: Price,
    pub max_concurrency: usize,
    pub ca_file: Option<std::path::PathBuf>,
    pub default_max_tokens: u64,
    pub repair: bool,
    pub escalate_unrepaired_tool_calls: bool,
    /// Whether the upstream speaks the Responses API, when the policy says; otherwise its
    /// provider decides (`provider::openai::speaks_responses`).
    pub responses_api: Option<bool>,
    /// Why routing skips this upstream, if it does (missing key, disabled, unsupported kind).
    pub disabled: Option<String>,
    pub max_queue: usize,
    pub latency_target: Option<std::time::Duration>,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
    pub health: Option<HealthConfig>,
    /// The hedge delay's floor, when hedging is on (resolved from `hedge.enabled`).
    pub hedge_after: Option<std::time::Duration>,
    /// Whole answers are hedged too (`hedge.whole`); streams only otherwise.
    pub hedge_whole: bool,
    pub first_byte_adaptive: AdaptiveFirstByte,
    /// Data may go there: see `UpstreamConfig::local`.
    pub local: bool,
}

impl Upstream {
    pub fn is_enabled(&self) -> bool {
        self.disabled.is_none()
    }
}

#[derive(Debug)]
pub struct Tier {
    pub name: String,
    /// Every upstream the policy lists, in order, enabled or not.
    pub upstreams: Vec<usize>,
    /// Escalation, shadow comparison and quality gate (empty when the policy says nothing).
    pub quality: super::quality::TierQuality,
}

impl Policy {
    pub fn upstream_index(&self, name: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u.name == name)
    }

    pub fn tier_index(&self, name: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.name == name)
    }

    /// The enabled upstreams of a tier, in the policy's order.
    pub fn route(&self, tier: usize) -> impl Iterator<Item = usize> + '_ {
        self.tiers[tier]
            .upstreams
            .iter()
            .copied()
            .filter(|&u| self.upstreams[u].is_enabled())
    }

    /// The first tier that lists an upstream (used to label requests pinned to an upstream).
    pub fn tier_of_upstream(&self, upstream: usize) -> Option<usize> {
        self.tiers
            .iter()
            .position(|t| t.upstreams.contains(&upstream))
    }

    /// Lines worth saying at start: disabled upstreams and tiers left without any.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .upstreams
            .iter()
            .filter_map(|u| {
                u.disabled
                    .as_ref()
                    .map(|why| format!("upstream {} disabled: {why}", u.name))
            })
            .collect();
        if self.secrets.is_enabled() && !self.upstreams.iter().any(|u| u.local && u.is_enabled()) {
            out.push(
                "no enabled upstream is marked local: requests carrying a secret get 503".into(),
            );
        }
        if let Some(so) = &self.classifier.second_opinion
            && let Some(why) = &self.upstreams[so.upstream].disabled
        {
            out.push(format!(
                "classifier.second_opinion: upstream {} is disabled ({why}): second opinions are skipped",
                self.upstreams[so.upstream].name
            ));
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if self.route(i).next().is_none() {
                out.push(format!(
                    "tier {} has no enabled upstream: its requests get 503",
                    t.name
                ));
            }
        }
        out
    }
}

impl Routes for Policy {
    fn tier_index(&self, name: &str) -> Option<usize> {
        Policy::tier_index(self, name)
    }
    fn upstream_index(&self, name: &str) -> Option<usize> {
        Policy::upstream_index(self, name)
    }
    fn tier_of_upstream(&self, upstream: usize) -> Option<usize> {
        Policy::tier_of_upstream(self, upstream)
    }
    fn alias(&self, model: &str) -> Option<&str> {
        self.model_aliases.get(model).map(String::as_str)
    }
    fn primitive_tier(&self) -> usize {
        self.primitive_tier
    }
    fn architecture_tier(&self) -> usize {
        self.architecture_tier
    }
    fn classifier(&self) -> &CompiledClassifier {
        &self.classifier
    }
}

pub(super) fn compile(file: &str, text: &str, raw: PolicyFile) -> Result<Policy, ConfigError> {
    let err = |path: &[&str], msg: String| {
        let (line, column) = locate(text, path);
        ConfigError::new(file, line, column, msg)
    };
    let mut seen = HashSet::new();
    let mut upstreams = Vec::with_capacity(raw.upstreams.len());
    for u in raw.upstreams {
        if !seen.insert(u.name.clone()) {
            return Err(err(
                &["upstreams", &u.name],
                format!("upstream {} is defined twice", u.name),
            ));
        }
        if u.name == "auto" {
            return Err(err(
                &["upstreams", "auto"],
                "`auto` is reserved for the classifier".into(),
            ));
        }
        let base_url = u.base_url.trim_end_matches('/').to_string();
        if let Err(e) = base_url
            .parse::<http::Uri>()
            .map_err(|e| e.to_string())
            .and_then(|uri| match uri.scheme_str() {
                Some("http" | "https") if uri.host().is_some() => Ok(()),
                _ => Err("expected an http:// or https:// URL".to_string()),
            })
        {
            return Err(err(
                &["upstreams", &u.name, "base_url"],
                format!("upstream {}: bad base_url {base_url:?}: {e}", u.name),
            ));
        }
        if let Some(problem) = u.price.problem() {
            return Err(err(
                &["upstreams", &u.name, "price"],
                format!("upstream {}: {problem}", u.name),
            ));
        }
        if u.max_concurrency == 0 {
            return Err(err(
                &["upstreams", &u.name, "max_concurrency"],
                format!("upstream {}: max_concurrency must be at least 1", u.name),
            ));
        }
        if let Some(problem) = super::resilience::problem(&u) {
            return Err(err(
                &["upstreams", &u.name, problem.0],
                format!("upstream {}: {}", u.name, problem.1),
            ));
        }
        if u.escalate_unrepaired_tool_calls && !u.repair {
            return Err(err(
                &["upstreams", &u.name, "escalate_unrepaired_tool_calls"],
                format!(
                    "upstream {}: escalate_unrepaired_tool_calls needs repair: true",
                    u.name
                ),
            ));
        }
        let disabled = if !u.enabled {
            Some("enabled: false in the policy".to_string())
        } else if u.key_required && u.api_key.is_empty() {
            Some("no API key (set its environment variable)".to_string())
        } else {
            None
        };
        let responses_api = u.responses_api;
        let hedge_after = u
            .hedge
            .enabled
            .unwrap_or(!u.key_required || u.api_key.is_empty())
            .then_some(u.hedge.after);
        upstreams.push(Upstream {
            name: u.name,
            kind: u.kind,
            base_url,
            api_key: u.api_key,
            model: u.model,
            timeouts: u.timeouts,
            price: u.price,
            max_concurrency: u.max_concurrency,
            ca_file: u.ca_file,
            default_max_tokens: u.default_max_tokens,
            repair: u.repair,
            escalate_unrepaired_tool_calls: u.escalate_unrepaired_tool_calls,
            responses_api,
            disabled,
            max_queue: u.max_queue,
            latency_target: u.latency_target,
            retry: u.retry,
            breaker: u.breaker,
            health: u.health,
            hedge_after,
            hedge_whole: u.hedge.whole,
            first_byte_adaptive: u.first_byte_adaptive,
            local: u.local,
        });
    }
    let index = |name: &str| upstreams.iter().position(|u| u.name == name);

    let mut tiers: Vec<super::Tier> = Vec::with_capacity(raw.tiers.len());
    for t in raw.tiers {
        if t.name == "auto" || index(&t.name).is_some() || tiers.iter().any(|x| x.name == t.name) {
            return Err(err(
                &["tiers", &t.name],
                format!(
                    "tier name {} is already taken (auto, an upstream or another tier)",
                    t.name
                ),
            ));
        }
        if t.upstreams.is_empty() {
            return Err(err(
                &["tiers", &t.name],
                format!("tier {} lists no upstream", t.name),
            ));
        }
        let mut ids = Vec::with_capacity(t.upstreams.len());
        for name in &t.upstreams {
            let Some(i) = index(name) else {
                return Err(err(
                    &["tiers", &t.name, name],
                    format!(
                        "tier {} names upstream {name}, which is not defined",
                        t.name
                    ),
                ));
            };
            ids.push(i);
        }
        let quality = super::quality::compile_tier(
            &super::quality::TierSections {
                name: &t.name,
                escalate_on: &t.escalate_on,
                hold_back: t.hold_back,
                shadow: t.shadow.as_ref(),
                quality_gate: t.quality_gate,
                checks_per_second: t.checks_per_second,
            },
            &index,
            &err,
        )?;
        tiers.push(Tier {
            name: t.name,
            upstreams: ids,
            quality,
        });
    }
    let tier_index = |name: &str, key: &str| {
        tiers.iter().position(|t| t.name == name).ok_or_else(|| {
            err(
                &["classifier", key],
                format!("classifier.{key}: no tier named {name}"),
            )
        })
    };
    let primitive_tier = tier_index(&raw.classifier.primitive_tier, "primitive_tier")?;
    let architecture_tier = tier_index(&raw.classifier.architecture_tier, "architecture_tier")?;
    let rule_err = |e: crate::routing::rules::RuleError| {
        let path: Vec<&str> = e.path.iter().map(String::as_str).collect();
        err(&path, e.message)
    };
    let mut classifier = CompiledClassifier::compile(&raw.classifier).map_err(rule_err)?;
    if let Some(so) = &raw.classifier.second_opinion {
        classifier.second_opinion = Some(
            crate::routing::second_opinion::compile(
                so,
                classifier.uncertain_band,
                index,
                tiers[primitive_tier].upstreams[0],
            )
            .map_err(rule_err)?,
        );
    }
    let reference_upstream = match &raw.reference_upstream {
        None => None,
        Some(name) => Some(index(name).ok_or_else(|| {
            err(
                &["reference_upstream"],
                format!("reference_upstream: no upstream named {name}"),
            )
        })?),
    };
    for (alias, target) in &raw.model_aliases {
        let known =
            target == "auto" || index(target).is_some() || tiers.iter().any(|t| &t.name == target);
        if !known {
            return Err(err(
                &["model_aliases", alias],
                format!("model alias {alias} points to {target}: not auto, a tier or an upstream"),
            ));
        }
    }
    let rb = &raw.retry_budget;
    if !(rb.ratio.is_finite()
        && rb.ratio >= 0.0
        && rb.min_per_second.is_finite()
        && rb.min_per_second >= 0.0)
    {
        return Err(err(
            &["retry_budget"],
            "retry_budget: ratio and min_per_second must be finite and not negative".into(),
        ));
    }
    let keys_file = raw.auth.keys_file.trim().to_string();
    let file_entries = if keys_file.is_empty() {
        Vec::new()
    } else {
        crate::govern::keys::read_file(std::path::Path::new(&keys_file))
            .map_err(|e| err(&["auth", "keys_file"], e))?
    };
    let governance = crate::govern::Governance::compile(
        raw.auth,
        raw.teams,
        raw.budgets,
        raw.state,
        file_entries,
    )
    .map_err(|p| {
        let path: Vec<&str> = p.path.iter().map(String::as_str).collect();
        err(&path, p.message)
    })?;
    let secrets = crate::secrets::Scanner::new(&raw.secrets)
        .map_err(|e| err(&["secrets", &e.name], e.to_string()))?;
    let enabled: Vec<usize> = (0..upstreams.len())
        .filter(|&i| upstreams[i].is_enabled())
        .collect();
    let probe = match &raw.probe {
        None => None,
        Some(p) => Some(super::quality::compile_probe(p, &index, &enabled, &err)?),
    };
    Ok(Policy {
        source: file.to_string(),
        server: raw.server,
        upstreams,
        tiers,
        classifier,
        primitive_tier,
        architecture_tier,
        reference_upstream,
        model_aliases: raw.model_aliases,
        retry_budget: raw.retry_budget,
        governance,
        secrets,
        probe,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    const GOOD: &str = "upstreams:\n  - name: a\n    kind: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    key_required: false\ntiers:\n  - name: primitive\n    upstreams: [a]\n  - name: architecture\n    upstreams: [a]\n";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn good_policy_compiles() {
        let p = parse("p.yaml", GOOD, no_env).unwrap();
        assert_eq!(p.upstreams.len(), 1);
        assert_eq!(p.route(0).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn unknown_key_is_located() {
        let text = GOOD.replace("    model: m\n", "    model: m\n    modle: x\n");
        let e = parse("p.yaml", &text, no_env).unwrap_err();
        assert_eq!((e.line, e.column), (6, 5), "{e}");
        assert!(e.message.contains("unknown field `modle`"), "{e}");
    }

    #[test]
    fn wrong_type_is_located() {
        let text = GOOD.replace("key_required: false", "key_required: maybe");
        let e = parse("p.yaml", &text, no_env).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
    }

    #[test]
    fn tier_naming_a_missing_upstream_is_located() {
        let text = GOOD.replace(
            "  - name: architecture\n    upstreams: [a]",
            "  - name: architecture\n    upstreams: [a, b]",
        );
        let e = parse("p.yaml", &text, no_env).unwrap_err();
        assert_eq!((e.line, e.column), (11, 20), "{e}");
        assert!(e.message.contains("upstream b"), "{e}");
    }

    #[test]
    fn checks_per_second_is_read_and_a_negative_one_is_located() {
        let p = parse("p.yaml", GOOD, no_env).unwrap();
        assert_eq!(p.tiers[0].quality.checks_per_second, 50.0);
        let all = GOOD.replace(
            "    upstreams: [a]\n  - name: arch",
            "    upstreams: [a]\n    checks_per_second: .inf\n  - name: arch",
        );
        let p = parse("p.yaml", &all, no_env).unwrap();
        assert!(p.tiers[0].quality.checks_per_second.is_infinite());
        let bad = all.replace(".inf", "-1");
        let e = parse("p.yaml", &bad, no_env).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains("checks_per_second"), "{e}");
    }

    #[test]
    fn missing_key_disables_the_upstream() {
        let text = GOOD.replace("    key_required: false\n", "    api_key: \"\"\n");
        let p = parse("p.yaml", &text, no_env).unwrap();
        assert!(!p.upstreams[0].is_enabled());
        assert_eq!(p.route(0).count(), 0);
        assert!(
            p.warnings()
                .iter()
                .any(|w| w.contains("no enabled upstream"))
        );
    }

    #[test]
    fn gpu_hour_price_is_amortised_per_token() {
        let text = GOOD.replace("    key_required: false\n", "    key_required: false\n    price: { gpu_hour: { usd_per_hour: 3.6, output_tokens_per_second: 1000, input_tokens_per_second: 10000 } }\n");
        let p = parse("p.yaml", &text, no_env).unwrap();
        let e = p.upstreams[0].price.per_mtok();
        // 3.6 $/h over 3.6M output tokens/h = 1 $/Mtok; over 36M input tokens/h = 0.1 $/Mtok.
        assert!(
            (e.output - 1.0).abs() < 1e-12
                && (e.input - 0.1).abs() < 1e-12
                && (e.cached_input - 0.1).abs() < 1e-12,
            "{e:?}"
        );
    }

    #[test]
    fn gpu_hour_without_throughput_is_located() {
        let text = GOOD.replace("    key_required: false\n", "    key_required: false\n    price: { gpu_hour: { usd_per_hour: 2, output_tokens_per_second: 0 } }\n");
        let e = parse("p.yaml", &text, no_env).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("throughput"), "{e}");
    }

    #[test]
    fn escalation_needs_repair() {
        let text = GOOD.replace(
            "    model: m\n",
            "    model: m\n    escalate_unrepaired_tool_calls: true\n",
        );
        let e = parse("p.yaml", &text, no_env).unwrap_err();
        assert!(e.message.contains("needs repair: true"), "{e}");
        let text = text.replace("    model: m\n", "    model: m\n    repair: true\n");
        assert!(parse("p.yaml", &text, no_env).unwrap().upstreams[0].repair);
    }

    #[test]
    fn resilience_settings_are_read_and_checked() {
        let text = GOOD.replace(
            "    model: m\n",
            "    model: m\n    timeouts: { idle: 3s }\n    retry: { attempts: 2 }\n    health: { interval: 1s }\n    max_queue: 4\n    latency_target: 250ms\n",
        );
        let p = parse("p.yaml", &text, no_env).unwrap();
        let u = &p.upstreams[0];
        assert_eq!(u.timeouts.idle, std::time::Duration::from_secs(3));
        assert_eq!((u.retry.attempts, u.max_queue), (2, 4));
        assert_eq!(u.health.as_ref().unwrap().path, "/models");
        assert_eq!(
            u.latency_target,
            Some(std::time::Duration::from_millis(250))
        );
        for (bad, why) in [
            ("timeouts: { idle: 0s }", "longer than zero"),
            ("breaker: { error_rate: 1.5 }", "error_rate"),
            ("health: { path: models }", "path starting with /"),
        ] {
            let text = GOOD.replace("    model: m\n", &format!("    model: m\n    {bad}\n"));
            let e = parse("p.yaml", &text, no_env).unwrap_err();
            assert!(e.message.contains(why), "{bad}: {e}");
        }
        let e = parse(
            "p.yaml",
            &format!("{GOOD}retry_budget: {{ ratio: -1 }}\n"),
            no_env,
        )
        .unwrap_err();
        assert!(e.message.contains("retry_budget"), "{e}");
    }

    #[test]
    fn embedded_default_policy_compiles() {
        let p = parse("default", super::super::DEFAULT_POLICY, no_env).unwrap();
        let names: Vec<_> = p.upstreams.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["local", "openai", "anthropic"]);
        assert!(p.upstreams[0].is_enabled(), "local needs no key");
        assert!(p.upstreams[0].repair && p.upstreams[0].escalate_unrepaired_tool_calls);
        assert!(!p.upstreams[1].is_enabled() && !p.upstreams[2].is_enabled());
        assert!(p.upstreams[0].health.is_some(), "local is health-checked");
        assert_eq!(p.upstreams[1].retry.attempts, 1);
    }
}
