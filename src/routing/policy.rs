//! The classifier's part of the policy file (`classifier:`), as written: strict and typed.
//! It lives in routing so that routing needs nothing from `config`; `config::schema`
//! re-exports it.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierConfig {
    pub primitive_tier: String,
    pub architecture_tier: String,
    /// A score at or above the threshold routes to the architecture tier.
    pub threshold: f64,
    /// Added to the classifier's logit: > 0 leans towards the architecture tier.
    pub bias: f64,
    /// Route side calls (title generation, compaction) to the primitive tier.
    pub side_calls: bool,
    /// Patterns over the user's task, each adding a weight or forcing a tier; in order.
    pub rules: Vec<RuleConfig>,
    /// Scores within `[low, high]` are decisions the classifier is unsure of: counted in
    /// `tiergate_classifier_uncertain_total`.
    pub uncertain_band: [f64; 2],
    /// Off when absent: inside a band, a short classification prompt to an upstream decides.
    pub second_opinion: Option<SecondOpinionConfig>,
}

/// `classifier.second_opinion`: ask an upstream (the local model by default) to classify the
/// requests whose score falls in `band`; past `deadline` the first opinion stands.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondOpinionConfig {
    /// Default: the primitive tier's first upstream.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Default: `uncertain_band`.
    #[serde(default)]
    pub band: Option<[f64; 2]>,
    #[serde(default = "default_deadline", with = "humantime_serde")]
    pub deadline: Duration,
    /// The answer is one word.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u64,
}

fn default_deadline() -> Duration {
    Duration::from_millis(400)
}

fn default_max_tokens() -> u64 {
    4
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(default)]
    pub name: Option<String>,
    /// A regular expression (Rust `regex` syntax) searched in the task text.
    pub pattern: String,
    /// Logit added when the pattern matches.
    #[serde(default)]
    pub weight: Option<f64>,
    /// Or: the tier to force (the classifier's primitive or architecture tier).
    #[serde(default)]
    pub tier: Option<String>,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            primitive_tier: "primitive".into(),
            architecture_tier: "architecture".into(),
            threshold: 0.5,
            bias: 0.0,
            side_calls: true,
            rules: Vec::new(),
            uncertain_band: [0.25, 0.6],
            second_opinion: None,
        }
    }
}
