//! Routing: which tier and which upstreams answer a request. Pure: no I/O, no tower.
//!
//! `input` turns any wire format into one neutral `Conversation`; `classifier` scores it;
//! `decide` applies explicit choices (model name, header) and the policy's threshold.

pub mod classifier;
pub mod decide;
pub mod input;

pub use classifier::Classification;
pub use decide::{Decision, Target};
pub use input::{Conversation, Role, Turn};
