//! The policy: read, interpolate, parse strictly, validate, compile into the form routing uses.

mod compile;
mod interpolate;
mod locate;
pub mod quality;
pub mod resilience;
pub mod schema;

pub use compile::{Policy, Tier, Upstream};
pub use interpolate::interpolate;
pub use schema::{PolicyFile, Price, Timeouts, UpstreamKind};

use std::path::Path;

/// The default policy, compiled in so that a bare binary runs.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/default.yaml");
pub const DEFAULT_POLICY_NAME: &str = "policies/default.yaml (embedded)";

/// A policy error with the place it refers to.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &str, line: usize, column: usize, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error at a byte offset of `text`.
    pub fn at(file: &str, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        ConfigError::new(file, line, column, message)
    }
}

/// Loads the policy at `path`, or the embedded default when `path` is None.
pub fn load(path: Option<&Path>) -> Result<Policy, ConfigError> {
    match path {
        Some(p) => {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(p)
                .map_err(|e| ConfigError::new(&name, 0, 0, format!("cannot read: {e}")))?;
            parse(&name, &text, |k| std::env::var(k).ok())
        }
        None => parse(DEFAULT_POLICY_NAME, DEFAULT_POLICY, |k| {
            std::env::var(k).ok()
        }),
    }
}

/// Pure: text and an environment in, a compiled policy or a located error out.
pub fn parse(
    file: &str,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Policy, ConfigError> {
    let text = interpolate(file, text, env)?;
    let raw: PolicyFile = serde_yaml::from_str(&text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        // serde_yaml appends " at line L column C" itself; the prefix already says it.
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        ConfigError::new(file, line, column, msg)
    })?;
    compile::compile(file, &text, raw)
}
