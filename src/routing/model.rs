//! The learned part: L2-regularised logistic regression over the task's hashed n-grams and
//! dense features, trained by deterministic SGD, with Platt calibration. Weights live in
//! `model.json` (committed, embedded); `tiergate train` rebuilds it from labelled data.

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

use super::features::{self, Dense, FeatureConfig, Kind, Lexicon};

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

/// One labelled example, already turned into features.
#[derive(Debug, Clone)]
pub struct Example {
    pub hashed: Vec<(u32, f32)>,
    pub dense: Vec<f32>,
    /// 1.0 = architecture.
    pub label: f32,
    /// Relative weight in training (sources are balanced so none dominates).
    pub weight: f32,
}

impl Example {
    pub fn new(text: &str, cfg: FeatureConfig, lexicon: &Lexicon, architecture: bool) -> Example {
        let mut raw: Vec<(Kind, u32)> = Vec::new();
        let d: Dense = features::extract(text, cfg, lexicon, |k, i, _| raw.push((k, i)));
        let ws = features::norm(d.words, cfg.norm_power) as f32;
        let cs = features::norm(d.chars, cfg.norm_power) as f32;
        let mut hashed: Vec<(u32, f32)> = raw
            .into_iter()
            .map(|(k, i)| (i, if k == Kind::Word { ws } else { cs }))
            .collect();
        hashed.sort_unstable_by_key(|e| e.0);
        hashed.dedup_by(|b, a| {
            if a.0 == b.0 {
                a.1 += b.1;
                true
            } else {
                false
            }
        });
        Example {
            hashed,
            dense: d.values.0,
            label: if architecture { 1.0 } else { 0.0 },
            weight: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct TrainParams {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2_hashed: f32,
    pub l2_dense: f32,
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            epochs: 40,
            learning_rate: 0.2,
            l2_hashed: 1e-3,
            l2_dense: 1e-3,
            seed: 7,
        }
    }
}

impl TrainParams {
    /// Overrides from `key=value,...` (epochs, lr, l2h, l2d, seed), for tuning runs.
    pub fn with_spec(mut self, spec: &str) -> Result<Self, String> {
        for kv in spec.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {kv:?}"))?;
            let f = || v.parse::<f32>().map_err(|e| format!("{k}: {e}"));
            match k {
                "epochs" => self.epochs = v.parse().map_err(|e| format!("{k}: {e}"))?,
                "lr" => self.learning_rate = f()?,
                "l2h" => self.l2_hashed = f()?,
                "l2d" => self.l2_dense = f()?,
                "seed" => self.seed = v.parse().map_err(|e| format!("{k}: {e}"))?,
                _ => return Err(format!("unknown training parameter {k}")),
            }
        }
        Ok(self)
    }
}

/// How fast the intercept learns relative to the weights (0 = no intercept).
const INTERCEPT_RATE: f32 = 0.0;

/// Trains on `examples` (classes weighted to balance). Deterministic for given inputs.
pub fn train(examples: &[&Example], cfg: FeatureConfig, p: TrainParams) -> Result<Model, String> {
    let n_dense = features::dense_len();
    let mut w = vec![0.0f32; 1 << cfg.hash_bits];
    let mut wd = vec![0.0f32; n_dense];
    let mut bias = 0.0f32;
    let pos = examples
        .iter()
        .filter(|e| e.label > 0.5)
        .map(|e| e.weight)
        .sum::<f32>()
        .max(1e-3);
    let neg = examples
        .iter()
        .filter(|e| e.label <= 0.5)
        .map(|e| e.weight)
        .sum::<f32>()
        .max(1e-3);
    let total = pos + neg;
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = p.seed.max(1);
    for epoch in 0..p.epochs {
        shuffle(&mut order, &mut rng);
        let lr = p.learning_rate / (1.0 + epoch as f32 * 0.1).sqrt();
        for &k in &order {
            let e = examples[k];
            let z = bias
                + e.hashed
                    .iter()
                    .map(|&(i, x)| w[i as usize] * x)
                    .sum::<f32>()
                + e.dense.iter().zip(&wd).map(|(x, w)| x * w).sum::<f32>();
            let weight = if e.label > 0.5 {
                total / (2.0 * pos)
            } else {
                total / (2.0 * neg)
            };
            let g = (sigmoid(f64::from(z)) as f32 - e.label) * weight * e.weight;
            for &(i, x) in &e.hashed {
                let wi = &mut w[i as usize];
                *wi -= lr * (g * x + p.l2_hashed * *wi);
            }
            for (wj, x) in wd.iter_mut().zip(&e.dense) {
                *wj -= lr * (g * x + p.l2_dense * *wj);
            }
            bias -= lr * g * INTERCEPT_RATE;
        }
    }
    let hashed = w
        .iter()
        .enumerate()
        .filter(|(_, v)| v.abs() >= 1e-4)
        .map(|(i, v)| (i as u32, round(*v)))
        .collect();
    let dense = wd
        .iter()
        .enumerate()
        .map(|(i, v)| (features::dense_name(i).to_string(), round(*v)))
        .collect();
    let model = Model {
        features: cfg,
        bias: round(bias),
        dense,
        hashed,
        calibration: Calibration::default(),
        trained_on: String::new(),
        table: Vec::new(),
        dense_w: Vec::new(),
        lexicon: Lexicon::default(),
    };
    model.ready()
}

impl Model {
    /// The raw logit of an already featurised example.
    pub fn raw_logit(&self, e: &Example) -> f64 {
        f64::from(self.bias)
            + e.hashed
                .iter()
                .map(|&(i, x)| f64::from(self.table[i as usize] * x))
                .sum::<f64>()
            + e.dense
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

/// Platt scaling: fits `sigmoid(a * z + b)` to labels by Newton's method, with Platt's
/// smoothed targets so that separable data still give finite values.
pub fn fit_calibration(points: &[(f64, f64)]) -> Calibration {
    let pos = points.iter().filter(|p| p.1 > 0.5).count() as f64;
    let neg = points.len() as f64 - pos;
    let (hi, lo) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
    let targets: Vec<(f64, f64)> = points
        .iter()
        .map(|&(z, l)| (z, if l > 0.5 { hi } else { lo }))
        .collect();
    let loss = |a: f64, b: f64| -> f64 {
        targets
            .iter()
            .map(|&(z, y)| {
                let f = a * z + b;
                // log(1 + e^f) - y f, written to stay finite.
                f.max(0.0) + (-f.abs()).exp().ln_1p() - y * f
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-6, 0.0, 1e-6);
        for &(z, y) in &targets {
            let p = sigmoid(a * z + b);
            let r = p - y;
            let s = p * (1.0 - p);
            ga += r * z;
            gb += r;
            haa += s * z * z;
            hab += s * z;
            hbb += s;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        // Backtracking: a full Newton step can overshoot when the start is far off.
        let mut step = 1.0;
        while step > 1e-6 {
            let next = loss(a - step * da, b - step * db);
            if next <= current {
                current = next;
                break;
            }
            step /= 2.0;
        }
        if step <= 1e-6 {
            break;
        }
        a -= step * da;
        b -= step * db;
        if (step * da).abs() + (step * db).abs() < 1e-9 {
            break;
        }
    }
    Calibration {
        a: round64(a),
        b: round64(b),
    }
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn round(v: f32) -> f32 {
    (v * 1e4).round() / 1e4
}

fn round64(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn shuffle(v: &mut [usize], state: &mut u64) {
    for i in (1..v.len()).rev() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let j = (*state % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: FeatureConfig = FeatureConfig {
        hash_bits: 16,
        char_ngrams: true,
        norm_power: 0.35,
        stopwords: false,
    };

    #[test]
    fn embedded_model_loads() {
        let m = Model::embedded().unwrap();
        assert!(!m.hashed.is_empty());
        assert!(m.calibration.a > 0.0);
    }

    #[test]
    fn training_separates_and_is_deterministic() {
        let lex = Lexicon::new();
        let data = [
            ("Write a function that reverses a string.", false),
            ("Write a function to sum a list of integers.", false),
            ("Implement binary search over a sorted array.", false),
            (
                "Split our monolith into services with a message bus and a shared database.",
                true,
            ),
            (
                "We need to choose a cloud platform and deploy our services on Kubernetes.",
                true,
            ),
            (
                "Migrate the project from MySQL to Postgres across all modules.",
                true,
            ),
        ];
        let ex: Vec<Example> = data
            .iter()
            .map(|(t, a)| Example::new(t, CFG, &lex, *a))
            .collect();
        let refs: Vec<&Example> = ex.iter().collect();
        let m1 = train(&refs, CFG, TrainParams::default()).unwrap();
        let m2 = train(&refs, CFG, TrainParams::default()).unwrap();
        assert_eq!(m1.hashed, m2.hashed);
        for e in &ex {
            assert_eq!(m1.raw_logit(e) > 0.0, e.label > 0.5);
        }
        // Scoring text directly agrees with scoring the featurised example.
        let s = m1.score(data[3].0);
        assert!(
            (s.raw - m1.raw_logit(&ex[3])).abs() < 1e-3,
            "{} {}",
            s.raw,
            m1.raw_logit(&ex[3])
        );
    }

    #[test]
    fn calibration_fits_a_scaled_logit() {
        // Labels drawn so that the true probability is sigmoid(0.5 z - 1).
        let mut pts = Vec::new();
        let mut state = 88172645463325252u64;
        for i in 0..4000 {
            let z = (i as f64 - 2000.0) / 200.0;
            let p = sigmoid(0.5 * z - 1.0);
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state % 10_000) as f64 / 10_000.0;
            pts.push((z, if u < p { 1.0 } else { 0.0 }));
        }
        let c = fit_calibration(&pts);
        assert!((c.a - 0.5).abs() < 0.1 && (c.b + 1.0).abs() < 0.2, "{c:?}");
        // Separable data stay finite.
        let c = fit_calibration(&[(-2.0, 0.0), (-1.0, 0.0), (1.0, 1.0), (2.0, 1.0)]);
        assert!(c.a.is_finite() && c.a > 0.0 && c.a < 10.0, "{c:?}");
    }
}
