//! `tiergate eval --data FILE`: leave-one-source-out figures, bare and wrapped, plus the
//! shipped model's fit on the same rows.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::config;
use crate::routing::train::TrainParams;
use crate::routing::train::eval;
use crate::routing::train::wrap;

pub fn run(
    data: &Path,
    policy: Option<&Path>,
    errors: bool,
    params: Option<&str>,
    shipped: bool,
) -> ExitCode {
    let mut err = std::io::stderr();
    let policy = match config::load(policy) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return ExitCode::FAILURE;
        }
    };
    let rows = match std::fs::read_to_string(data)
        .map_err(|e| e.to_string())
        .and_then(|t| eval::parse_rows(&t))
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", data.display());
            return ExitCode::FAILURE;
        }
    };
    let cc = &policy.classifier;
    if shipped {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "policy {}: threshold {}, bias {}; shipped model {}",
            policy.source, cc.threshold, cc.bias, cc.model.trained_on
        );
        for &w in wrap::ALL {
            let r = eval::resubstitution(&rows, cc, w);
            let _ = write!(out, "{}", r.render(&format!("shipped model, {}", w.name())));
            if errors {
                print_errors(&mut out, &r);
            }
        }
        return ExitCode::SUCCESS;
    }
    // Feature settings are not training parameters: split them off.
    let spec = params.unwrap_or("");
    let mut features = cc.model.features;
    let mut rest = Vec::new();
    for kv in spec.split(',').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("chars", v)) => features.char_ngrams = v == "1",
            Some(("bits", v)) => features.hash_bits = v.parse().unwrap_or(features.hash_bits),
            Some(("norm", v)) => features.norm_power = v.parse().unwrap_or(features.norm_power),
            Some(("stop", v)) => features.stopwords = v == "1",
            _ => rest.push(kv),
        }
    }
    let params = match TrainParams::default().with_spec(&rest.join(",")) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "--params: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reports = match eval::loso(&rows, cc, features, params, wrap::ALL) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "evaluation failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "policy {}: threshold {}, bias {}, {} rules; model {}",
        policy.source,
        cc.threshold,
        cc.bias,
        cc.rules.len(),
        cc.model.trained_on
    );
    let mut summary = String::new();
    for (w, r) in &reports {
        let _ = write!(
            out,
            "{}",
            r.render(&format!("leave-one-source-out, {}", w.name()))
        );
        if errors {
            print_errors(&mut out, r);
        }
        let (worst, acc) = r.worst_source().unwrap_or(("-", 0.0));
        summary.push_str(&format!(
            "  {:<12} accuracy {:.3}  architecture recall {:.3}  worst source {worst} {acc:.3}\n",
            w.name(),
            r.overall.accuracy(),
            r.overall.arch_recall()
        ));
    }
    let fit = eval::resubstitution(&rows, cc, wrap::Wrapping::Bare);
    let _ = writeln!(
        out,
        "== summary (leave-one-source-out)\n{summary}== shipped model on the same rows (its fit, not a forecast): accuracy {:.3}, architecture recall {:.3}",
        fit.overall.accuracy(),
        fit.overall.arch_recall()
    );
    ExitCode::SUCCESS
}

fn print_errors(out: &mut impl Write, r: &eval::Report) {
    for (id, arch, score) in &r.errors {
        let _ = writeln!(
            out,
            "    wrong: {id} (truth {}) score {score:.3}",
            if *arch { "architecture" } else { "primitive" }
        );
    }
}
