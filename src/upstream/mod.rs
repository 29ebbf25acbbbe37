//! Upstreams: one pooled HTTP(S) client per upstream, its concurrency limit, and the request
//! builder for its wire format.

mod client;

pub use client::{HttpClient, UpstreamRuntime, build};

/// Anthropic upstreams need the translation of the issue "Anthropic both ways"; until it lands
/// an enabled one is skipped by routing (with a warning at start).
pub const ANTHROPIC_SUPPORTED: bool = false;
