//! `tiergate train` (hidden): rebuilds src/routing/model.json from labelled JSON Lines.
//! Deterministic: the same data give the same bytes.

use std::io::Write;
use std::path::Path;
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

pub fn run(data: &Path, out: &Path) -> ExitCode {
    let mut err = std::io::stderr();
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
    let name = data.file_name().map_or_else(
        || data.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let trained_on = format!("{name}: {} rows", rows.len());
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
