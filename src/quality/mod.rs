//! Quality: checks on what a tier answered (`checks`), client feedback and the implicit
//! signals of retries and overrides (`feedback`), and the `tiergate probe` suite (`probe`).

pub mod budget;
pub mod checks;
pub mod feedback;
pub mod metrics;
pub mod probe;
pub mod schedule;
pub mod shadow;
