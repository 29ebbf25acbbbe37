//! `tiergate serve`: load the policy, start the listener, reload on SIGHUP, drain on
//! SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::app::{App, Runtime};
use crate::config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (default: the embedded policies/default.yaml).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Address to listen on (default: the policy's server.listen).
    #[arg(long)]
    listen: Option<String>,
    /// Log format: text or json.
    #[arg(long, default_value = "text", env = "TIERGATE_LOG_FORMAT")]
    log_format: String,
    /// How long streams in flight may take to finish after SIGTERM.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// How often the policy and the files it names (keys file, CA bundles) are checked for
    /// changes (0s: only reload on SIGHUP).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    watch: Duration,
}

pub fn run(args: Args) -> ExitCode {
    let _log_guard = crate::logging::init(&args.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn load(policy: Option<&std::path::Path>) -> Result<Runtime, String> {
    let p = config::load(policy).map_err(|e| e.to_string())?;
    Runtime::new(p)
}

async fn serve(args: Args) -> Result<(), String> {
    let runtime = load(args.policy.as_deref())?;
    for w in runtime.policy.warnings() {
        tracing::warn!("{w}");
    }
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| runtime.policy.server.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let tls = match &runtime.policy.server.tls {
        Some(cfg) => Some(Arc::new(crate::tls::Tls::new(cfg)?)),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(policy = %runtime.policy.source, "tiergate listening on {scheme}://{addr}");
    if runtime.policy.governance.is_open() {
        let open = "no client keys are configured (auth.keys_file, TIERGATE_KEYS_FILE): anyone who reaches this port may use every upstream";
        if addr.ip().is_loopback() {
            tracing::info!("{open}");
        } else {
            tracing::warn!("{open}");
        }
    }
    let app = App::new(runtime);
    spawn_reload_on_sighup(app.clone(), args.policy.clone());
    // The embedded default has no file to watch, but the keys file it reads may change.
    if !args.watch.is_zero() {
        crate::reload::watch(&app, args.policy.clone(), args.watch);
    }
    if let Some(tls) = &tls {
        tls.watch();
    }
    crate::server::serve_tls(app, listener, tls, shutdown_signal(), args.drain).await;
    Ok(())
}

/// SIGHUP: parse and validate the policy first; swap only if it is good.
fn spawn_reload_on_sighup(app: Arc<App>, policy: Option<PathBuf>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            crate::reload::reload_logged(&app, policy.as_deref(), "SIGHUP");
        }
    });
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
