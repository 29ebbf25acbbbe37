//! Routing: which tier and which upstreams answer a request. Pure: no I/O, no tower
//! (`metrics` holds the classifier's metric families, updated by the proxy).
//!
//! `input` turns any wire format into one neutral `Conversation`; `task` finds the user's task
//! in it; `features`, `structure` and `artifact` describe it; `model` (learned) and `rules` (policy) score
//! it in `classifier`; `decide` applies explicit choices (model name, header) and the
//! policy's threshold. `train` (training, evaluation, wrappings) is used by `tiergate train` and
//! `tiergate eval` only, never by the serve path.

pub mod artifact;
pub mod classifier;
pub mod decide;
pub mod evidence;
pub mod features;
pub mod input;
pub mod lexicon;
pub mod metrics;
pub mod model;
pub mod phrases;
pub mod policy;
pub mod priors;
pub mod rules;
pub mod second_opinion;
pub mod structure;
pub mod task;
pub mod train;

pub use classifier::Classification;
pub use decide::{Decision, Target};
pub use input::{Conversation, Role, Turn};
pub use rules::CompiledClassifier;
