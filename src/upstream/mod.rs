//! Upstreams: one pooled HTTP(S) client per upstream, its concurrency limit, and the request
//! builder for its wire format.

mod client;

pub use client::{HttpClient, UpstreamRuntime, build};

/// Anthropic upstreams are served through `translate` (chat completions) or passed through
/// (`/v1/messages`).
pub const ANTHROPIC_SUPPORTED: bool = true;
