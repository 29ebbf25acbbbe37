//! `tiergate probe`: the embedded suite against each enabled upstream of the policy (or the
//! one named); a table per upstream, or JSON Lines with `--json`, printed as results come.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config;
use crate::quality::probe::{self, Options, Programs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (default: the embedded policies/default.yaml).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Probe only this upstream (enabled or not: a disabled one says why on each line).
    #[arg(long)]
    upstream: Option<String>,
    /// JSON Lines, one per upstream and task, instead of tables.
    #[arg(long)]
    json: bool,
    /// `max_tokens` of each task (default: the policy's `probe.max_tokens`, else 2048).
    #[arg(long)]
    max_tokens: Option<u64>,
    /// Run only these tasks (repeatable; default: the whole suite).
    #[arg(long = "task")]
    tasks: Vec<String>,
    /// Write each answer's text to DIR/UPSTREAM-TASK.md (for inspection and fixtures).
    #[arg(long, hide = true)]
    save: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    let mut err = std::io::stderr().lock();
    let policy = match config::load(args.policy.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(bad) = args
        .tasks
        .iter()
        .find(|t| !probe::SUITE.iter().any(|s| s.name == t.as_str()))
    {
        let names: Vec<&str> = probe::SUITE.iter().map(|t| t.name).collect();
        let _ = writeln!(err, "no task named {bad} (tasks: {})", names.join(", "));
        return ExitCode::FAILURE;
    }
    let targets = match probe::targets(&policy, args.upstream.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return ExitCode::FAILURE;
        }
    };
    if targets.is_empty() {
        let _ = writeln!(err, "no enabled upstream in {}", policy.source);
        for w in policy.warnings() {
            let _ = writeln!(err, "warning: {w}");
        }
        return ExitCode::FAILURE;
    }
    let opts = Options {
        max_tokens: args
            .max_tokens
            .or(policy.probe.as_ref().map(|p| p.max_tokens))
            .unwrap_or(2048),
        tasks: args.tasks,
    };
    let programs = Programs::find();
    if !args.json {
        let missing: Vec<&str> = [
            ("python3", programs.python.is_none()),
            ("node", programs.node.is_none()),
            ("bash", programs.bash.is_none()),
            ("chromium", programs.chromium.is_none()),
        ]
        .iter()
        .filter(|(_, m)| *m)
        .map(|(n, _)| *n)
        .collect();
        if !missing.is_empty() {
            let _ = writeln!(
                err,
                "not installed, their runs are skipped: {}",
                missing.join(", ")
            );
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(err, "cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        for i in targets {
            let up = &policy.upstreams[i];
            let runtime = match crate::upstream::build(up) {
                Ok(r) => r,
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "{e}");
                    continue;
                }
            };
            let json = args.json;
            let save = args.save.clone();
            let results = probe::probe_upstream(up, &runtime, &opts, &programs, |r| {
                if let Some(dir) = &save {
                    let _ = std::fs::create_dir_all(dir);
                    let _ = std::fs::write(
                        dir.join(format!("{}-{}.md", r.upstream, r.task)),
                        &r.answer,
                    );
                }
                if json {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", r.json());
                    let _ = out.flush();
                }
            })
            .await;
            if !json {
                let _ = writeln!(std::io::stdout(), "{}", probe::table(up, &results));
            }
        }
    });
    ExitCode::SUCCESS
}
