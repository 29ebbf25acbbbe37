//! The learned part at run time: a logistic regression over the task's hashed n-grams and
//! dense features, with Platt calibration. Weights live in `model.json` (committed,
//! embedded); `tiergate train` rebuilds it from labelled data (see `train`, which the serve
//! path never calls).

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

use super::evidence::Evidence;
use super::features::{self, FeatureConfig, Kind, Lexicon};

/// The shipped model, produced by `tiergate train --data tests/fixtures/routing/dev.jsonl`.
pub const EMBEDDED: &str = include_str!("model.json");

static EMBEDDED_MODEL: LazyLock<Result<Arc<Model>, String>> =
    LazyLock::new(|| Model::from_json(EMBEDDED).map(Arc::new));

/// `score = sigmoid(a * raw + b)`, fitted on out-of-fold logits.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration { a: 1.0, b: 0.0 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub features: FeatureConfig,
    pub bias: f32,
    /// Dense weights, by name, in `features::dense_name` order.
    pub dense: Vec<(String, f32)>,
    /// Non-zero hashed weights as (index, weight).
    pub hashed: Vec<(u32, f32)>,
    pub calibration: Calibration,
    /// What it was trained on, for the record.
    #[serde(default)]
    pub trained_on: String,
    #[serde(skip)]
    table: Vec<f32>,
    #[serde(skip)]
    dense_w: Vec<f32>,
    #[serde(skip)]
    lexicon: Lexicon,
}

/// The model's view of one text.
#[derive(Debug, Clone)]
pub struct TextScore {
    /// Uncalibrated logit.
    pub raw: f64,
    /// Calibrated logit: `a * raw + b`.
    pub logit: f64,
    /// Dense feature contributions (already scaled by the calibration slope), by dense index.
    pub dense: Vec<f64>,
    /// Word unigrams that weighed most, as (contribution, stem).
    pub words: Vec<(f64, String)>,
    /// Calibrated contributions of the intercept, of all word n-grams and of all
    /// character n-grams.
    pub intercept: f64,
    pub word_total: f64,
    pub char_total: f64,
    /// Words and phrases of the text that are evidence for architecture (see `features`).
    pub evidence: u32,
    /// Distinct application components the text names.
    pub app_parts: u32,
    /// Where the code the task needs lives.
    pub evidence_of: Evidence,
}

impl Model {
    /// The model compiled into the binary, parsed once.
    pub fn embedded() -> Result<Arc<Model>, String> {
        EMBEDDED_MODEL.clone()
    }

    pub fn from_json(text: &str) -> Result<Model, String> {
        let m: Model = serde_json::from_str(text).map_err(|e| format!("model: {e}"))?;
        m.ready()
    }

    /// Builds the lookup tables and checks the dense features match this build's.
    fn ready(mut self) -> Result<Model, String> {
        if !(8..=24).contains(&self.features.hash_bits) {
            return Err(format!(
                "model: hash_bits {} out of range",
                self.features.hash_bits
            ));
        }
        let names: Vec<&str> = (0..features::dense_len())
            .map(features::dense_name)
            .collect();
        let have: Vec<&str> = self.dense.iter().map(|(n, _)| n.as_str()).collect();
        if names != have {
            return Err(format!(
                "model: dense features {have:?} do not match this build's {names:?}; retrain"
            ));
        }
        let mut table = vec![0.0f32; 1 << self.features.hash_bits];
        for &(i, w) in &self.hashed {
            let slot = table
                .get_mut(i as usize)
                .ok_or_else(|| format!("model: hashed index {i} out of range"))?;
            *slot = w;
        }
        self.table = table;
        self.dense_w = self.dense.iter().map(|(_, w)| *w).collect();
        self.lexicon = Lexicon::new();
        Ok(self)
    }

    pub fn score(&self, text: &str) -> TextScore {
        let (mut word_sum, mut char_sum) = (0.0f64, 0.0f64);
        let mut owned: Vec<(f64, String)> = Vec::new();
        let d = features::extract(text, self.features, &self.lexicon, |kind, i, tok| {
            let w = self.table[i as usize];
            match kind {
                Kind::Word => {
                    word_sum += f64::from(w);
                    if !tok.is_empty() && w != 0.0 {
                        keep_top(&mut owned, w, tok);
                    }
                }
                Kind::Char => char_sum += f64::from(w),
            }
        });
        let word_scale = features::norm(d.words, self.features.norm_power);
        let char_scale = features::norm(d.chars, self.features.norm_power);
        let a = self.calibration.a;
        let dense: Vec<f64> = d
            .values
            .as_slice()
            .iter()
            .zip(&self.dense_w)
            .map(|(x, w)| a * f64::from(x * w))
            .collect();
        let raw = f64::from(self.bias)
            + word_sum * word_scale
            + char_sum * char_scale
            + dense.iter().sum::<f64>() / a;
        let words = owned
            .into_iter()
            .map(|(w, s)| (a * w * word_scale, s))
            .collect();
        TextScore {
            raw,
            logit: a * raw + self.calibration.b,
            dense,
            words,
            intercept: a * f64::from(self.bias) + self.calibration.b,
            word_total: a * word_sum * word_scale,
            char_total: a * char_sum * char_scale,
            evidence: d.evidence,
            app_parts: d.app_parts,
            evidence_of: d.evidence_of,
        }
    }
}

/// Keeps the six strongest distinct words; strings are only made for the kept ones.
fn keep_top(owned: &mut Vec<(f64, String)>, w: f32, tok: &str) {
    if owned.iter().any(|(_, s)| s == tok) {
        return;
    }
    let weakest = owned
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.0.abs().total_cmp(&b.1.0.abs()))
        .map(|(i, (v, _))| (i, v.abs()));
    match weakest {
        _ if owned.len() < 6 => owned.push((f64::from(w), tok.to_string())),
        Some((i, v)) if f64::from(w.abs()) > v => owned[i] = (f64::from(w), tok.to_string()),
        _ => {}
    }
}

impl Model {
    /// A model from trained weights; the lookup tables are built and checked here.
    pub fn new(
        features: FeatureConfig,
        bias: f32,
        dense: Vec<(String, f32)>,
        hashed: Vec<(u32, f32)>,
        calibration: Calibration,
        trained_on: String,
    ) -> Result<Model, String> {
        Model {
            features,
            bias,
            dense,
            hashed,
            calibration,
            trained_on,
            table: Vec::new(),
            dense_w: Vec::new(),
            lexicon: Lexicon::default(),
        }
        .ready()
    }

    /// The raw logit of a featurised text: hashed features as (index, value), dense values.
    pub fn raw_logit(&self, hashed: &[(u32, f32)], dense: &[f32]) -> f64 {
        f64::from(self.bias)
            + hashed
                .iter()
                .map(|&(i, x)| f64::from(self.table.get(i as usize).copied().unwrap_or(0.0) * x))
                .sum::<f64>()
            + dense
                .iter()
                .zip(&self.dense_w)
                .map(|(x, w)| f64::from(x * w))
                .sum::<f64>()
    }

    pub fn with_calibration(mut self, c: Calibration, trained_on: String) -> Model {
        self.calibration = c;
        self.trained_on = trained_on;
        self
    }
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_loads() {
        let m = Model::embedded().unwrap();
        assert!(!m.hashed.is_empty());
        assert!(m.calibration.a > 0.0);
    }
}
