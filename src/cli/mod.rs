//! The command line: `serve`, `check`, `classify`.

mod check;
mod classify;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tiergate",
    version,
    about = "Routes coding requests between a local model and frontier APIs"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible API.
    Serve(serve::Args),
    /// Validate a policy; errors print as file:line:column.
    Check {
        /// Policy file (default: the embedded policies/default.yaml).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Classify requests: JSON Lines in on stdin, one decision per line out.
    Classify {
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Add the features and the per-feature weights behind each decision.
        #[arg(long)]
        explain: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check { policy } => check::run(policy.as_deref()),
        Command::Classify { policy, explain } => classify::run(policy.as_deref(), explain),
    }
}
