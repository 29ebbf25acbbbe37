//! Upstreams: one pooled HTTP(S) client per upstream, its concurrency limit, the request
//! builder for its wire format, and its health at run time (breaker, checks, budget).

pub mod breaker;
pub mod budget;
mod client;
pub mod health;
pub mod state;

pub use client::{HttpClient, UpstreamRuntime, build, inherit};

/// Anthropic upstreams are served through `translate` (chat completions) or passed through
/// (`/v1/messages`).
pub const ANTHROPIC_SUPPORTED: bool = true;
