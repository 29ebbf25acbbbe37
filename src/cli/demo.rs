//! `tiergate demo`: simulated upstreams, the gateway in front, a workload and a summary.

use std::process::ExitCode;

use crate::demo::{self, Options};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Send this many requests, print the summary and exit (default: keep serving).
    #[arg(long)]
    requests: Option<usize>,
    /// Address of the gateway (default: 127.0.0.1:8080 when serving, a free port with --requests).
    #[arg(long)]
    listen: Option<String>,
    /// Requests in flight at once during a --requests run.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// While serving, send no background requests (the live page then moves only with yours).
    #[arg(long)]
    no_background: bool,
}

pub fn run(args: Args) -> ExitCode {
    // The demo talks on stdout; the gateway's own logs stay quiet unless asked for.
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIERGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
    let opts = Options {
        requests: args.requests,
        listen: args.listen,
        concurrency: args.concurrency,
        background: !args.no_background,
    };
    match rt.block_on(demo::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
