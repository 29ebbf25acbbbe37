//! Training and measurement of the classifier: featurising labelled rows, SGD, calibration,
//! leave-one-source-out evaluation and the IDE wrappings it is measured in. Used by
//! `tiergate train` and `tiergate eval` only; nothing on the serve path calls into here.

pub mod calibrate;
pub mod eval;
pub mod sgd;
pub mod wrap;

pub use eval::{Report, Row, parse_rows};
pub use sgd::{Example, TrainParams};

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every source file outside `routing/train` and the `train` and `eval` commands.
    fn serve_path_sources(dir: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.display().to_string();
            if p.is_dir() {
                if !name.ends_with("routing/train") {
                    serve_path_sources(&p, out);
                }
            } else if name.ends_with(".rs")
                && !name.ends_with("cli/train.rs")
                && !name.ends_with("cli/eval.rs")
                && !name.ends_with("cli/eval_second.rs")
            {
                out.push((name, std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
    }

    #[test]
    fn the_serve_path_never_reaches_training_or_evaluation() {
        let mut files = Vec::new();
        serve_path_sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        assert!(files.len() > 20, "{}", files.len());
        for (name, text) in files {
            // `pub mod train;` declares the module; nothing else may use it.
            let uses = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//") && l.trim() != "pub mod train;")
                .any(|l| l.contains("routing::train") || l.contains("super::train"));
            assert!(!uses, "{name} uses routing::train");
        }
    }
}
