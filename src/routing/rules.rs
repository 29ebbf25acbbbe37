//! The classifier's part of the policy, compiled once at load: threshold, bias, side calls,
//! and rules (regular expressions over the task, each adding a weight or forcing a tier).

use std::fmt;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};

use super::model::Model;
use super::policy::ClassifierConfig;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Added to the logit.
    Weight(f64),
    /// Forces the primitive (false) or architecture (true) tier.
    Force { architecture: bool },
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub regex: Regex,
    pub effect: Effect,
}

/// Everything `classify` needs, built once per policy.
#[derive(Clone)]
pub struct CompiledClassifier {
    pub threshold: f64,
    pub bias: f64,
    pub side_calls: bool,
    pub rules: Vec<Rule>,
    pub model: Arc<Model>,
    /// Scores within `[low, high]` are uncertain decisions.
    pub uncertain_band: (f64, f64),
    /// Set by the policy's compiler, which knows the upstreams (`second_opinion::compile`).
    pub second_opinion: Option<super::second_opinion::SecondOpinion>,
}

impl fmt::Debug for CompiledClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledClassifier")
            .field("threshold", &self.threshold)
            .field("bias", &self.bias)
            .field("side_calls", &self.side_calls)
            .field(
                "rules",
                &self
                    .rules
                    .iter()
                    .map(|r| (&r.name, r.effect))
                    .collect::<Vec<_>>(),
            )
            .field("model", &self.model.trained_on)
            .field("uncertain_band", &self.uncertain_band)
            .field("second_opinion", &self.second_opinion)
            .finish()
    }
}

impl CompiledClassifier {
    /// Whether `score` is a decision the classifier is unsure of.
    pub fn uncertain(&self, score: f64) -> bool {
        within(self.uncertain_band, score)
    }
}

fn within((low, high): (f64, f64), score: f64) -> bool {
    score >= low && score <= high
}

/// A compile error and the policy keys it refers to (for file:line:column).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    pub path: Vec<String>,
    pub message: String,
}

/// Compiled regexes are bounded so a policy cannot make classification slow or huge.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl CompiledClassifier {
    /// The defaults with the embedded model (threshold 0.5, no rules).
    pub fn embedded() -> Result<Self, String> {
        Ok(CompiledClassifier {
            threshold: 0.5,
            bias: 0.0,
            side_calls: true,
            rules: Vec::new(),
            model: Model::embedded()?,
            uncertain_band: (0.25, 0.6),
            second_opinion: None,
        })
    }

    pub fn compile(cfg: &ClassifierConfig) -> Result<Self, RuleError> {
        let err = |path: &[&str], message: String| RuleError {
            path: path.iter().map(|s| s.to_string()).collect(),
            message,
        };
        if !(0.0..=1.0).contains(&cfg.threshold) {
            return Err(err(
                &["classifier", "threshold"],
                "classifier.threshold must be within 0..1".into(),
            ));
        }
        if !cfg.bias.is_finite() || cfg.bias.abs() > 10.0 {
            return Err(err(
                &["classifier", "bias"],
                "classifier.bias must be within -10..10 (logit units)".into(),
            ));
        }
        let mut rules = Vec::with_capacity(cfg.rules.len());
        for (i, r) in cfg.rules.iter().enumerate() {
            let name = r.name.clone().unwrap_or_else(|| format!("rule {}", i + 1));
            // Every rule has a pattern: the (i+1)-th `pattern` after `rules` is this rule.
            let at = |key: &'static str| -> Vec<&str> {
                let mut p = vec!["classifier", "rules"];
                p.extend(std::iter::repeat_n("pattern", i + 1));
                if key != "pattern" {
                    p.push(key);
                }
                p
            };
            let regex = RegexBuilder::new(&r.pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    err(
                        &at("pattern"),
                        format!("classifier rule {name}: bad pattern: {e}"),
                    )
                })?;
            let effect = match (r.weight, r.tier.as_deref()) {
                (Some(w), None) if w.is_finite() && w.abs() <= 20.0 => Effect::Weight(w),
                (Some(_), None) => {
                    return Err(err(
                        &at("weight"),
                        format!("classifier rule {name}: weight must be within -20..20"),
                    ));
                }
                (None, Some(t)) if t == cfg.primitive_tier => Effect::Force {
                    architecture: false,
                },
                (None, Some(t)) if t == cfg.architecture_tier => {
                    Effect::Force { architecture: true }
                }
                (None, Some(t)) => {
                    return Err(err(
                        &at("tier"),
                        format!(
                            "classifier rule {name}: tier {t} is neither {} nor {}",
                            cfg.primitive_tier, cfg.architecture_tier
                        ),
                    ));
                }
                _ => {
                    return Err(err(
                        &at("pattern"),
                        format!("classifier rule {name}: give exactly one of weight or tier"),
                    ));
                }
            };
            rules.push(Rule {
                name,
                regex,
                effect,
            });
        }
        let band = |b: [f64; 2], path: &[&str]| {
            if b.iter().all(|v| (0.0..=1.0).contains(v)) && b[0] <= b[1] {
                Ok((b[0], b[1]))
            } else {
                Err(err(
                    path,
                    format!(
                        "{}: give [low, high] within 0..1, low <= high",
                        path.join(".")
                    ),
                ))
            }
        };
        let uncertain_band = band(cfg.uncertain_band, &["classifier", "uncertain_band"])?;
        let model = Model::embedded().map_err(|e| err(&["classifier"], e))?;
        Ok(CompiledClassifier {
            threshold: cfg.threshold,
            bias: cfg.bias,
            side_calls: cfg.side_calls,
            rules,
            model,
            uncertain_band,
            second_opinion: None,
        })
    }

    /// The same policy with another model (evaluation of cross-validation folds).
    pub fn with_model(&self, model: Arc<Model>) -> Self {
        CompiledClassifier {
            model,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::policy::RuleConfig;

    fn rule(pattern: &str, weight: Option<f64>, tier: Option<&str>) -> RuleConfig {
        RuleConfig {
            name: None,
            pattern: pattern.into(),
            weight,
            tier: tier.map(Into::into),
        }
    }

    #[test]
    fn rules_compile_and_bad_ones_are_refused() {
        let mut cfg = ClassifierConfig {
            rules: vec![
                rule("(?i)terraform", Some(1.5), None),
                rule("^/local", None, Some("primitive")),
            ],
            ..ClassifierConfig::default()
        };
        let c = CompiledClassifier::compile(&cfg).unwrap();
        assert_eq!(c.rules[0].effect, Effect::Weight(1.5));
        assert_eq!(
            c.rules[1].effect,
            Effect::Force {
                architecture: false
            }
        );

        for (bad, key) in [
            (rule("(", Some(1.0), None), "pattern"),
            (rule("x", None, Some("gold")), "tier"),
            (rule("x", Some(1.0), Some("primitive")), "pattern"),
            (rule("x", Some(99.0), None), "weight"),
        ] {
            cfg.rules = vec![bad];
            let e = CompiledClassifier::compile(&cfg).unwrap_err();
            assert_eq!(e.path.last().map(String::as_str), Some(key), "{e:?}");
        }
        cfg.rules.clear();
        cfg.bias = f64::NAN;
        assert!(CompiledClassifier::compile(&cfg).is_err());
        cfg.bias = 0.0;
        for bad in [[0.7, 0.2], [-0.1, 0.5], [0.2, 1.5]] {
            cfg.uncertain_band = bad;
            let e = CompiledClassifier::compile(&cfg).unwrap_err();
            assert_eq!(e.path.last().map(String::as_str), Some("uncertain_band"));
        }
        cfg.uncertain_band = [0.3, 0.4];
        let c = CompiledClassifier::compile(&cfg).unwrap();
        assert!(c.uncertain(0.3) && c.uncertain(0.4) && !c.uncertain(0.41) && !c.uncertain(0.29));
    }
}
