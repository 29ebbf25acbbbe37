//! Upstreams: one pooled HTTP(S) client per upstream, its concurrency limit, and its health
//! at run time (breaker, checks, budget). How a provider is spoken to is `crate::provider`.

pub mod breaker;
pub mod budget;
mod client;
pub mod health;
mod runtime;
pub mod state;
pub mod ttfb;

pub use client::{HttpClient, UpstreamRuntime, build, inherit};
pub use runtime::Runtime;
