//! Policy sections for answer quality: per tier, which failed checks escalate to the tier's
//! next upstream (`escalate_on`, and `hold_back` for streams, opt-in), a sampled shadow
//! comparison with the frontier (`shadow`, with an optional `judge`) and the gate it feeds
//! (`quality_gate`); at the top level, the scheduled probe (`probe`). All absent by default:
//! a policy that says nothing behaves as before.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::quality::checks::Check;

/// Streams held back before their first byte so that a failed check can still escalate.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldBack {
    /// Past this many bytes the stream is released as it is (no escalation for it).
    pub max_bytes: usize,
    /// Past this long without the end, likewise.
    #[serde(default = "default_hold", with = "humantime_serde")]
    pub max_wait: Duration,
}

fn default_hold() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// Share of the tier's requests also sent to the shadow upstream, in [0, 1].
    pub rate: f64,
    /// Shadow spend per UTC day, in US dollars; no shadow call past it.
    pub daily_usd_cap: f64,
    /// Where shadows go (default: the next upstream of the tier's route after the one that
    /// answered).
    #[serde(default)]
    pub upstream: Option<String>,
    #[serde(default)]
    pub judge: Option<JudgeConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeConfig {
    pub upstream: String,
    /// Share of shadow comparisons also judged, in [0, 1].
    pub rate: f64,
    pub daily_usd_cap: f64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityGateConfig {
    /// Under this judged win rate a segment (client and kind of task) goes to the frontier.
    pub min_win_rate: f64,
    /// Samples a segment needs before the gate applies to it.
    pub min_samples: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// How often `serve` runs the probe suite.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Upstreams probed (default: every enabled one).
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// While the primitive tier's first upstream scores under this (0..1), the tier spills
    /// over to its next upstream.
    #[serde(default)]
    pub floor: Option<f64>,
    /// `max_tokens` of each probe task.
    #[serde(default = "default_probe_tokens")]
    pub max_tokens: u64,
}

fn default_probe_tokens() -> u64 {
    2048
}

/// Answers checked per second and tier when the policy does not say: every answer of a
/// team's working day, a bounded CPU share under a load test.
pub const DEFAULT_CHECKS_PER_SECOND: f64 = 50.0;

/// A tier's quality settings, compiled: upstreams by index.
#[derive(Debug, Clone)]
pub struct TierQuality {
    pub escalate_on: Vec<Check>,
    pub hold_back: Option<HoldBack>,
    pub shadow: Option<Shadow>,
    pub quality_gate: Option<QualityGateConfig>,
    pub checks_per_second: f64,
}

impl Default for TierQuality {
    fn default() -> Self {
        TierQuality {
            escalate_on: Vec::new(),
            hold_back: None,
            shadow: None,
            quality_gate: None,
            checks_per_second: DEFAULT_CHECKS_PER_SECOND,
        }
    }
}

impl TierQuality {
    /// Whether every answer is checked: the verdict decides an escalation or a comparison.
    pub fn checks_all(&self) -> bool {
        !self.escalate_on.is_empty() || self.shadow.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct Shadow {
    pub rate: f64,
    pub daily_usd_cap: f64,
    pub upstream: Option<usize>,
    pub judge: Option<Judge>,
}

#[derive(Debug, Clone)]
pub struct Judge {
    pub upstream: usize,
    pub rate: f64,
    pub daily_usd_cap: f64,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub interval: Duration,
    /// Upstreams probed, by index (every enabled one when the policy names none).
    pub upstreams: Vec<usize>,
    pub floor: Option<f64>,
    pub max_tokens: u64,
}

/// The raw sections of one tier, as read.
pub struct TierSections<'a> {
    pub name: &'a str,
    pub escalate_on: &'a [String],
    pub hold_back: Option<HoldBack>,
    pub shadow: Option<&'a ShadowConfig>,
    pub quality_gate: Option<QualityGateConfig>,
    pub checks_per_second: f64,
}

type Err<'e> = &'e dyn Fn(&[&str], String) -> ConfigError;

fn share(v: f64) -> bool {
    v.is_finite() && (0.0..=1.0).contains(&v)
}

fn usd(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

pub fn compile_tier(
    t: &TierSections<'_>,
    index: &dyn Fn(&str) -> Option<usize>,
    err: Err<'_>,
) -> Result<TierQuality, ConfigError> {
    let name = t.name;
    let mut escalate_on = Vec::with_capacity(t.escalate_on.len());
    for c in t.escalate_on {
        let Some(check) = Check::from_name(c) else {
            let known: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
            return Err(err(
                &["tiers", name, "escalate_on", c],
                format!(
                    "tier {name}: unknown check {c} (known: {})",
                    known.join(", ")
                ),
            ));
        };
        escalate_on.push(check);
    }
    if let Some(h) = t.hold_back {
        if escalate_on.is_empty() {
            return Err(err(
                &["tiers", name, "hold_back"],
                format!("tier {name}: hold_back needs escalate_on"),
            ));
        }
        if h.max_bytes == 0 || h.max_wait.is_zero() {
            return Err(err(
                &["tiers", name, "hold_back"],
                format!("tier {name}: hold_back max_bytes and max_wait must be above zero"),
            ));
        }
    }
    let shadow = match t.shadow {
        None => None,
        Some(s) => {
            let at = |k: &str| err(&["tiers", name, "shadow", k], String::new());
            let fail = |k: &str, msg: String| {
                let mut e = at(k);
                e.message = format!("tier {name}: shadow.{k}: {msg}");
                e
            };
            if !share(s.rate) {
                return Err(fail("rate", "must be in [0, 1]".into()));
            }
            if !usd(s.daily_usd_cap) {
                return Err(fail(
                    "daily_usd_cap",
                    "must be finite and not negative".into(),
                ));
            }
            let upstream = match &s.upstream {
                None => None,
                Some(u) => Some(
                    index(u).ok_or_else(|| fail("upstream", format!("no upstream named {u}")))?,
                ),
            };
            let judge = match &s.judge {
                None => None,
                Some(j) => {
                    let Some(upstream) = index(&j.upstream) else {
                        return Err(fail("judge", format!("no upstream named {}", j.upstream)));
                    };
                    if !share(j.rate) || !usd(j.daily_usd_cap) {
                        return Err(fail(
                            "judge",
                            "rate must be in [0, 1] and daily_usd_cap not negative".into(),
                        ));
                    }
                    Some(Judge {
                        upstream,
                        rate: j.rate,
                        daily_usd_cap: j.daily_usd_cap,
                    })
                }
            };
            Some(Shadow {
                rate: s.rate,
                daily_usd_cap: s.daily_usd_cap,
                upstream,
                judge,
            })
        }
    };
    if let Some(g) = t.quality_gate {
        if shadow.as_ref().and_then(|s| s.judge.as_ref()).is_none() {
            return Err(err(
                &["tiers", name, "quality_gate"],
                format!(
                    "tier {name}: quality_gate needs shadow.judge (the win rate comes from the judge)"
                ),
            ));
        }
        if !share(g.min_win_rate) || g.min_samples == 0 {
            return Err(err(
                &["tiers", name, "quality_gate"],
                format!(
                    "tier {name}: quality_gate min_win_rate must be in [0, 1] and min_samples at least 1"
                ),
            ));
        }
    }
    if t.checks_per_second.is_nan() || t.checks_per_second < 0.0 {
        return Err(err(
            &["tiers", name, "checks_per_second"],
            format!("tier {name}: checks_per_second must not be negative (.inf: every answer)"),
        ));
    }
    Ok(TierQuality {
        escalate_on,
        hold_back: t.hold_back,
        shadow,
        quality_gate: t.quality_gate,
        checks_per_second: t.checks_per_second,
    })
}

pub fn compile_probe(
    p: &ProbeConfig,
    index: &dyn Fn(&str) -> Option<usize>,
    enabled: &[usize],
    err: Err<'_>,
) -> Result<Probe, ConfigError> {
    if p.interval < Duration::from_secs(1) {
        return Err(err(
            &["probe", "interval"],
            "probe.interval must be at least 1s".into(),
        ));
    }
    if p.floor.is_some_and(|f| !share(f)) {
        return Err(err(
            &["probe", "floor"],
            "probe.floor must be in [0, 1]".into(),
        ));
    }
    if p.max_tokens == 0 {
        return Err(err(
            &["probe", "max_tokens"],
            "probe.max_tokens must be at least 1".into(),
        ));
    }
    let mut upstreams = Vec::with_capacity(p.upstreams.len());
    for u in &p.upstreams {
        upstreams.push(index(u).ok_or_else(|| {
            err(
                &["probe", "upstreams", u],
                format!("probe.upstreams: no upstream named {u}"),
            )
        })?);
    }
    if upstreams.is_empty() {
        upstreams = enabled.to_vec();
    }
    Ok(Probe {
        interval: p.interval,
        upstreams,
        floor: p.floor,
        max_tokens: p.max_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use crate::quality::checks::Check;

    const BASE: &str = "upstreams:\n  - name: local\n    kind: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    key_required: false\n  - name: frontier\n    kind: openai\n    base_url: http://127.0.0.1:2/v1\n    model: f\n    key_required: false\ntiers:\n  - name: primitive\n    upstreams: [local, frontier]\nTIER  - name: architecture\n    upstreams: [frontier]\n";

    fn policy(tier: &str, top: &str) -> Result<super::super::Policy, super::super::ConfigError> {
        let text = format!("{}{top}", BASE.replace("TIER", tier));
        parse("p.yaml", &text, |_| None)
    }

    #[test]
    fn absent_sections_change_nothing() {
        let p = policy("", "").unwrap();
        assert!(p.tiers[0].quality.escalate_on.is_empty());
        assert!(p.tiers[0].quality.shadow.is_none() && p.probe.is_none());
        let d = parse("d", super::super::DEFAULT_POLICY, |_| None).unwrap();
        assert!(
            d.tiers
                .iter()
                .all(|t| t.quality.escalate_on.is_empty() && t.quality.shadow.is_none())
        );
    }

    #[test]
    fn sections_are_read() {
        let p = policy(
            "    escalate_on: [truncated, syntax]\n    hold_back: { max_bytes: 65536 }\n    shadow:\n      rate: 0.05\n      daily_usd_cap: 5\n      judge: { upstream: frontier, rate: 0.5, daily_usd_cap: 1 }\n    quality_gate: { min_win_rate: 0.7, min_samples: 50 }\n",
            "probe: { interval: 1h, upstreams: [local], floor: 0.5, max_tokens: 512 }\n",
        )
        .unwrap();
        let q = &p.tiers[0].quality;
        assert_eq!(q.escalate_on, [Check::Truncated, Check::Syntax]);
        assert_eq!(q.hold_back.unwrap().max_bytes, 65536);
        assert_eq!(
            q.hold_back.unwrap().max_wait,
            std::time::Duration::from_secs(30)
        );
        let s = q.shadow.as_ref().unwrap();
        assert_eq!(
            (s.rate, s.upstream, s.judge.as_ref().unwrap().upstream),
            (0.05, None, 1)
        );
        assert_eq!(q.quality_gate.unwrap().min_samples, 50);
        let probe = p.probe.unwrap();
        assert_eq!(
            (probe.upstreams.clone(), probe.floor, probe.max_tokens),
            (vec![0], Some(0.5), 512)
        );
        let all = policy("", "probe: { interval: 10m }\n")
            .unwrap()
            .probe
            .unwrap();
        assert_eq!((all.upstreams, all.max_tokens), (vec![0, 1], 2048));
    }

    #[test]
    fn bad_sections_are_located() {
        for (tier, top, line, why) in [
            (
                "    escalate_on: [truncated, syntx]\n",
                "",
                15,
                "unknown check syntx",
            ),
            (
                "    escalate_on: [syntax]\n    hold_back: { max_bytes: 0 }\n",
                "",
                16,
                "max_bytes",
            ),
            (
                "    hold_back: { max_bytes: 10 }\n",
                "",
                15,
                "needs escalate_on",
            ),
            (
                "    shadow: { rate: 1.5, daily_usd_cap: 1 }\n",
                "",
                15,
                "shadow.rate",
            ),
            (
                "    shadow: { rate: 0.1, daily_usd_cap: -1 }\n",
                "",
                15,
                "daily_usd_cap",
            ),
            (
                "    shadow: { rate: 0.1, daily_usd_cap: 1, upstream: nope }\n",
                "",
                15,
                "no upstream named nope",
            ),
            (
                "    shadow: { rate: 0.1, daily_usd_cap: 1 }\n    quality_gate: { min_win_rate: 0.5, min_samples: 5 }\n",
                "",
                16,
                "needs shadow.judge",
            ),
            (
                "    shadow: { rate: 0.1, daily_usd_cap: 1, shadw: 1 }\n",
                "",
                15,
                "unknown field `shadw`",
            ),
            ("", "probe: { interval: 1h, floor: 2 }\n", 17, "probe.floor"),
            (
                "",
                "probe: { interval: 1h, upstreams: [ghost] }\n",
                17,
                "no upstream named ghost",
            ),
            ("", "probe: { interval: 0s }\n", 17, "at least 1s"),
        ] {
            let e = policy(tier, top).unwrap_err();
            assert!(e.message.contains(why), "{why}: {e}");
            assert_eq!(e.line, line, "{why}: {e}");
        }
    }
}
