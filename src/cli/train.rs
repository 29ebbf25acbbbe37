//! `tiergate train` (hidden): rebuilds src/routing/model.json from labelled JSON Lines
//! (one or more `--data` files, joined in order).
//! Deterministic: the same data give the same bytes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::routing::features::FeatureConfig;
use crate::routing::train::TrainParams;
use crate::routing::train::eval;

pub const FEATURES: FeatureConfig = FeatureConfig {
    hash_bits: 16,
    char_ngrams: true,
    norm_power: 0.35,
    stopwords: false,
};

pub fn run(data: &[PathBuf], out: &Path) -> ExitCode {
    let mut err = std::io::stderr();
    let rows = match super::eval::read_rows(data) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return ExitCode::FAILURE;
        }
    };
    let trained_on = super::eval::describe(data, rows.len());
    let model = match eval::train_shipped(&rows, FEATURES, TrainParams::default(), trained_on) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(err, "training failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = match serde_json::to_string(&model) {
        Ok(j) => j,
        Err(e) => {
            let _ = writeln!(err, "serialising the model: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(out, json + "\n") {
        let _ = writeln!(err, "{}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let _ = writeln!(
        err,
        "wrote {} ({} hashed weights, calibration a={} b={})",
        out.display(),
        model.hashed.len(),
        model.calibration.a,
        model.calibration.b
    );
    ExitCode::SUCCESS
}
