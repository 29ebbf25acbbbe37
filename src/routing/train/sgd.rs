//! Training: L2-regularised logistic regression over hashed n-grams and dense features by
//! deterministic stochastic gradient descent. Same inputs, same weights.

use crate::routing::features::{self, Dense, FeatureConfig, Kind, Lexicon};
use crate::routing::model::{Calibration, Model, sigmoid};

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
    Model::new(
        cfg,
        round(bias),
        dense,
        hashed,
        Calibration::default(),
        String::new(),
    )
}

impl Example {
    /// The raw logit `model` gives this example.
    pub fn raw_logit(&self, model: &Model) -> f64 {
        model.raw_logit(&self.hashed, &self.dense)
    }
}

fn round(v: f32) -> f32 {
    (v * 1e4).round() / 1e4
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
            assert_eq!(e.raw_logit(&m1) > 0.0, e.label > 0.5);
        }
        // Scoring text directly agrees with scoring the featurised example.
        let s = m1.score(data[3].0);
        assert!(
            (s.raw - ex[3].raw_logit(&m1)).abs() < 1e-3,
            "{} {}",
            s.raw,
            ex[3].raw_logit(&m1)
        );
    }
}
