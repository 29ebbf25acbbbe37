//! tiergate: an OpenAI-compatible gateway that routes coding requests between a local model
//! and frontier APIs.
//!
//! The request's way: `server` (listener) -> `router` (route table) -> `proxy` (the one
//! lifecycle: parse with `protocol`, decide with `routing`, plan and forward to `upstream`
//! through a `provider` adapter, translate with `translate`, repair with `local`) -> back
//! through `proxy::respond` to the client, accounted once in `proxy::record` into `metrics`.
//! `app` is the shared state, `config` the policy, `error` every client-visible error.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod cli;
pub mod clients;
pub mod config;
pub mod demo;
pub mod digits;
pub mod error;
pub mod govern;
pub mod http;
pub mod local;
pub mod logfields;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod provider;
pub mod proxy;
pub mod quality;
pub mod reload;
pub mod router;
pub mod routing;
pub mod secret;
pub mod secrets;
pub mod server;
pub mod status;
pub mod tls;
pub mod translate;
pub mod ui;
pub mod upstream;
