use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::config;

pub fn run(policy: Option<&Path>) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    match config::load(policy) {
        Ok(p) => {
            let _ = writeln!(out, "{}: ok ({} upstreams, {} tiers)", p.source, p.upstreams.len(), p.tiers.len());
            for w in p.warnings() {
                let _ = writeln!(out, "warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            ExitCode::FAILURE
        }
    }
}
