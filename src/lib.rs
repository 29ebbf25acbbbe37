//! tiergate: an OpenAI-compatible gateway that routes coding requests between a local model
//! and frontier APIs.
//!
//! The request's way: `server` (listener) -> `app` (route table, shared state) -> `proxy`
//! (parse with `protocol`, decide with `routing`, forward with fallback to `upstream`,
//! translate with `translate` for Anthropic, repair with `local` for local servers) -> back
//! through `proxy::stream` / `proxy::translated` to the client, accounted once in
//! `proxy::record` into `metrics`. `config` is the policy; `error` every client-visible error.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod cli;
pub mod clients;
pub mod config;
pub mod demo;
pub mod error;
pub mod local;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod quality;
pub mod reload;
pub mod routing;
pub mod secret;
pub mod server;
pub mod translate;
pub mod ui;
pub mod upstream;
