//! The command line: `serve`, `check`, `classify`, `eval`, `keys`, `demo`, `probe` (and the
//! hidden `train`).

mod check;
mod classify;
mod demo;
mod eval;
mod eval_second;
mod keys;
mod probe;
mod serve;
mod train;

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
        /// A model file from `tiergate train` instead of the embedded one.
        #[arg(long, hide = true)]
        model: Option<PathBuf>,
    },
    /// Measure the classifier on labelled JSON Lines: leave-one-source-out, bare and wrapped.
    Eval {
        /// Rows of {"source", "tier", "prompt"} (e.g. tests/fixtures/routing/dev.jsonl);
        /// repeat to join files.
        #[arg(long, required = true)]
        data: Vec<PathBuf>,
        #[arg(long)]
        policy: Option<PathBuf>,
        /// List the rows each fold got wrong.
        #[arg(long)]
        errors: bool,
        /// Print every contribution for these row ids, as their fold model scores them.
        #[arg(long, value_delimiter = ',')]
        explain: Vec<String>,
        /// Training parameters for the folds, `epochs=20,lr=0.2,l2h=0.001,l2d=0.001,seed=7`
        /// (and features: `bits=16,chars=1,norm=0.35,stop=0`).
        #[arg(long)]
        params: Option<String>,
        /// Score the rows with the shipped model, bare and wrapped, instead of
        /// leave-one-source-out (for held-out data the model never saw).
        #[arg(long)]
        shipped: bool,
        /// Ask the policy's `classifier.second_opinion` upstream about the rows inside its
        /// band and report what it changes (accuracy, latency, share in the band).
        #[arg(long)]
        second_opinion: bool,
    },
    /// Client keys: `keys new` makes one.
    #[command(subcommand)]
    Keys(keys::Command),
    /// Send the embedded suite of single-file coding tasks to each enabled upstream and
    /// score the answers (checks, and running them where this machine can).
    Probe(probe::Args),
    /// The whole product on this machine: simulated upstreams, the gateway, a workload, a summary.
    Demo(demo::Args),
    /// Rebuild the classifier's weights (src/routing/model.json) from labelled JSON Lines.
    #[command(hide = true)]
    Train {
        /// Labelled rows; repeat to join files.
        #[arg(long, required = true)]
        data: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check { policy } => check::run(policy.as_deref()),
        Command::Classify {
            policy,
            explain,
            model,
        } => classify::run(policy.as_deref(), explain, model.as_deref()),
        Command::Eval {
            data,
            policy,
            errors,
            shipped,
            second_opinion: true,
            ..
        } => eval_second::run(&data, policy.as_deref(), shipped, errors),
        Command::Eval {
            data,
            policy,
            errors,
            explain,
            params,
            shipped,
            second_opinion: false,
        } => eval::run(
            &data,
            policy.as_deref(),
            eval::Show { errors, explain },
            params.as_deref(),
            shipped,
        ),
        Command::Demo(args) => demo::run(args),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Probe(args) => probe::run(args),
        Command::Train { data, out } => train::run(&data, &out),
    }
}
