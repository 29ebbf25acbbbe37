//! Features of the task text: hashed word and character n-grams, plus named dense features
//! (cue groups from the labeling rule, paths, code, length). Linear in the text's size: each
//! byte is looked at a bounded number of times, and the n-grams go to a visitor rather than
//! into a vector, so scoring needs no allocation.
//!
//! `words` tokenizes, `stem` normalises, `hash` hashes, `paths` finds files, `cues` holds the
//! compiled lexicon, `dense` names the dense slots, and `extract` walks a text once.

mod cues;
mod dense;
mod extract;
mod hash;
mod paths;
mod stem;
mod words;

pub use cues::Lexicon;
pub use dense::{Extra, Slot, Values, dense_len, dense_name};
pub use extract::{Dense, extract};
pub use hash::Identity;
pub use paths::{count_paths, is_path};
pub use stem::{is_stopword, stem};

/// Hashed feature kinds, each normalised by its own count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Word,
    Char,
}

/// Tasks longer than this are hashed up to here; the rest is still counted for paths.
pub const MAX_HASHED_BYTES: usize = 64 * 1024;

/// How text becomes hashed features; stored with the model so that training and serving agree.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureConfig {
    pub hash_bits: u32,
    pub char_ngrams: bool,
    /// Each hashed feature of a kind emitted n times weighs n^-norm_power (see `norm`).
    #[serde(default = "default_norm_power")]
    pub norm_power: f32,
    /// Function words ("the", "can", "you") are left out of the word n-grams: they carry a
    /// source's style, not the kind of task.
    #[serde(default)]
    pub stopwords: bool,
}

fn default_norm_power() -> f32 {
    0.35
}

/// The scale of each hashed feature of a kind emitted `n` times: between the sum (which
/// lets long texts shout) and the mean (which lets one word decide a short text).
pub fn norm(n: u32, power: f32) -> f64 {
    1.0 / f64::from(n.max(1)).powf(f64::from(power))
}

/// `text` cut to at most `max` bytes, on a char boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
