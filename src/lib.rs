//! tiergate: an OpenAI-compatible gateway that routes coding requests between a local model
//! and frontier APIs. The request's way: `server` -> `app` -> `proxy` (using `routing` and
//! `upstream`) -> back through `proxy::stream` / `proxy::record` to `metrics`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod cli;
pub mod clients;
pub mod config;
pub mod error;
pub mod local;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod secret;
pub mod server;
pub mod translate;
pub mod upstream;
