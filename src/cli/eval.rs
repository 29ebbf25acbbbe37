//! `tiergate eval --data FILE [--data FILE...]`: leave-one-source-out figures, bare and
//! wrapped, plus the shipped model's fit on the same rows.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config;
use crate::routing::classifier;
use crate::routing::train::TrainParams;
use crate::routing::train::eval::{self, Row};
use crate::routing::train::wrap;

/// What to print besides the figures.
pub struct Show {
    /// The rows each fold got wrong.
    pub errors: bool,
    /// Row ids whose every contribution is printed, as their fold model scores them.
    pub explain: Vec<String>,
}

/// The rows of every file, in order.
pub fn read_rows(files: &[PathBuf]) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        rows.extend(eval::parse_rows(&text).map_err(|e| format!("{}: {e}", f.display()))?);
    }
    Ok(rows)
}

/// A name for what was read: "dev.jsonl + dev2.jsonl: 859 rows".
pub fn describe(files: &[PathBuf], rows: usize) -> String {
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_name().map_or_else(
                || f.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect();
    format!("{}: {rows} rows", names.join(" + "))
}

pub fn run(
    data: &[PathBuf],
    policy: Option<&Path>,
    show: Show,
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
    let rows = match read_rows(data) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return ExitCode::FAILURE;
        }
    };
    let errors = show.errors;
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
    if !show.explain.is_empty() {
        return explain_rows(&rows, cc, features, params, &show.explain);
    }
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

/// Every contribution to the given rows' scores, from the fold model that did not see their
/// source (bare).
fn explain_rows(
    rows: &[Row],
    cc: &crate::routing::CompiledClassifier,
    features: crate::routing::features::FeatureConfig,
    params: TrainParams,
    ids: &[String],
) -> ExitCode {
    let folds = match eval::fold_classifiers(rows, cc, features, params) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "evaluation failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    for (i, r) in rows.iter().enumerate() {
        let Some(fc) = folds.get(&r.source).filter(|_| ids.contains(&r.id)) else {
            continue;
        };
        let bare = classifier::explain(&wrap::wrap(&r.prompt, wrap::Wrapping::Bare, i), fc);
        let _ = writeln!(
            out,
            "{} (truth {}, source {}): score {:.3}",
            r.id, r.tier, r.source, bare.classification.score
        );
        for (name, w) in bare.contributions.iter().filter(|(_, w)| w.abs() >= 0.01) {
            let _ = writeln!(out, "    {w:+.3}  {name}");
        }
        // A wrapping that decides otherwise, and what it changed.
        let arch = |x: &classifier::Explanation| x.classification.score >= fc.threshold;
        for &w in &wrap::ALL[1..] {
            let x = classifier::explain(&wrap::wrap(&r.prompt, w, i), fc);
            if arch(&x) == arch(&bare) {
                continue;
            }
            let _ = writeln!(out, "  {}: score {:.3}", w.name(), x.classification.score);
            for (name, v) in &x.contributions {
                let before = bare
                    .contributions
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| *v);
                if before.is_none_or(|b| (b - v).abs() >= 0.01) {
                    let _ = writeln!(
                        out,
                        "    {v:+.3}  {name} (bare {})",
                        before.map_or("-".into(), |b| format!("{b:+.3}"))
                    );
                }
            }
        }
    }
    ExitCode::SUCCESS
}
