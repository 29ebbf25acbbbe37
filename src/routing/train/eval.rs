//! Measuring the classifier on labelled prompts: confusion, precision and recall per tier,
//! accuracy per source, with leave-one-source-out cross-validation, bare and wrapped as IDE
//! clients wrap requests. Pure: rows in, reports out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Deserialize;

use super::calibrate::fit_calibration;
use super::sgd::{self, Example, TrainParams};
use super::wrap::{self, Wrapping};
use crate::routing::classifier;
use crate::routing::features::{FeatureConfig, Lexicon};
use crate::routing::model::Model;
use crate::routing::rules::CompiledClassifier;

/// One labelled prompt (a line of dev.jsonl).
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    #[serde(default)]
    pub id: String,
    pub source: String,
    pub tier: String,
    pub prompt: String,
    #[serde(default)]
    pub ambiguous: bool,
}

impl Row {
    pub fn architecture(&self) -> bool {
        self.tier == "architecture"
    }
}

pub fn parse_rows(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if row.tier != "architecture" && row.tier != "primitive" {
            return Err(format!(
                "line {}: tier {:?} is neither primitive nor architecture",
                n + 1,
                row.tier
            ));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Architecture is the positive class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    pub arch_as_arch: usize,
    pub arch_as_prim: usize,
    pub prim_as_arch: usize,
    pub prim_as_prim: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

impl Confusion {
    pub fn add(&mut self, truth: bool, predicted: bool) {
        match (truth, predicted) {
            (true, true) => self.arch_as_arch += 1,
            (true, false) => self.arch_as_prim += 1,
            (false, true) => self.prim_as_arch += 1,
            (false, false) => self.prim_as_prim += 1,
        }
    }
    pub fn total(&self) -> usize {
        self.arch_as_arch + self.arch_as_prim + self.prim_as_arch + self.prim_as_prim
    }
    pub fn accuracy(&self) -> f64 {
        ratio(self.arch_as_arch + self.prim_as_prim, self.total())
    }
    pub fn arch_recall(&self) -> f64 {
        ratio(self.arch_as_arch, self.arch_as_arch + self.arch_as_prim)
    }
    pub fn arch_precision(&self) -> f64 {
        ratio(self.arch_as_arch, self.arch_as_arch + self.prim_as_arch)
    }
    pub fn prim_recall(&self) -> f64 {
        ratio(self.prim_as_prim, self.prim_as_prim + self.prim_as_arch)
    }
    pub fn prim_precision(&self) -> f64 {
        ratio(self.prim_as_prim, self.prim_as_prim + self.arch_as_prim)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub overall: Confusion,
    pub per_source: BTreeMap<String, Confusion>,
    /// Rows got wrong, as (id, truth is architecture, score).
    pub errors: Vec<(String, bool, f64)>,
}

impl Report {
    pub fn add(&mut self, row: &Row, score: f64, predicted: bool) {
        self.overall.add(row.architecture(), predicted);
        self.per_source
            .entry(row.source.clone())
            .or_default()
            .add(row.architecture(), predicted);
        if predicted != row.architecture() {
            self.errors
                .push((row.id.clone(), row.architecture(), score));
        }
    }

    pub fn worst_source(&self) -> Option<(&str, f64)> {
        self.per_source
            .iter()
            .map(|(s, c)| (s.as_str(), c.accuracy()))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    pub fn render(&self, title: &str) -> String {
        let c = &self.overall;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "== {title}: {} rows, accuracy {:.3}",
            c.total(),
            c.accuracy()
        );
        let _ = writeln!(out, "  tier          precision  recall");
        let _ = writeln!(
            out,
            "  primitive     {:>9.3}  {:>6.3}",
            c.prim_precision(),
            c.prim_recall()
        );
        let _ = writeln!(
            out,
            "  architecture  {:>9.3}  {:>6.3}",
            c.arch_precision(),
            c.arch_recall()
        );
        let _ = writeln!(
            out,
            "  confusion (rows = truth, columns = predicted): primitive architecture"
        );
        let _ = writeln!(
            out,
            "    primitive      {:>5} {:>5}",
            c.prim_as_prim, c.prim_as_arch
        );
        let _ = writeln!(
            out,
            "    architecture   {:>5} {:>5}",
            c.arch_as_prim, c.arch_as_arch
        );
        let _ = writeln!(out, "  per source:");
        for (s, sc) in &self.per_source {
            let _ = writeln!(
                out,
                "    {s:<32} {:>4} rows  accuracy {:.3}",
                sc.total(),
                sc.accuracy()
            );
        }
        out
    }
}

/// 0 = every row counts the same; 1 = every source counts the same.
const SOURCE_BALANCE: f32 = 1.0;

/// Features of every row, computed once.
pub fn featurize(rows: &[Row], cfg: FeatureConfig) -> Vec<Example> {
    let lex = Lexicon::new();
    let mut per_source: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *per_source.entry(&r.source).or_default() += 1;
    }
    let mean = rows.len() as f32 / per_source.len().max(1) as f32;
    rows.iter()
        .map(|r| {
            let mut e = Example::new(&r.prompt, cfg, &lex, r.architecture());
            // Every source counts the same, however many rows it has.
            e.weight = (mean / per_source.get(r.source.as_str()).copied().unwrap_or(1) as f32)
                .powf(SOURCE_BALANCE);
            e
        })
        .collect()
}

fn sources(rows: &[Row]) -> Vec<String> {
    let mut s: Vec<String> = rows.iter().map(|r| r.source.clone()).collect();
    s.sort();
    s.dedup();
    s
}

/// One model per source, each trained on every other source.
pub fn fold_models(
    rows: &[Row],
    examples: &[Example],
    cfg: FeatureConfig,
    p: TrainParams,
) -> Result<BTreeMap<String, Model>, String> {
    let mut out = BTreeMap::new();
    for s in sources(rows) {
        let train: Vec<&Example> = rows
            .iter()
            .zip(examples)
            .filter(|(r, _)| r.source != s)
            .map(|(_, e)| e)
            .collect();
        out.insert(s, sgd::train(&train, cfg, p)?);
    }
    Ok(out)
}

/// (raw logit from the model that did not see the row's source, label) for every row.
fn out_of_fold(
    rows: &[Row],
    examples: &[Example],
    folds: &BTreeMap<String, Model>,
) -> Vec<(f64, f64)> {
    rows.iter()
        .zip(examples)
        .map(|(r, e)| {
            let z = folds.get(&r.source).map_or(0.0, |m| e.raw_logit(m));
            (z, if r.architecture() { 1.0 } else { 0.0 })
        })
        .collect()
}

/// Trains the model to ship: Platt calibration fitted on leave-one-source-out logits, then
/// weights from all rows.
pub fn train_shipped(
    rows: &[Row],
    cfg: FeatureConfig,
    p: TrainParams,
    trained_on: String,
) -> Result<Model, String> {
    let examples = featurize(rows, cfg);
    let folds = fold_models(rows, &examples, cfg, p)?;
    let calibration = fit_calibration(&out_of_fold(rows, &examples, &folds));
    let all: Vec<&Example> = examples.iter().collect();
    Ok(sgd::train(&all, cfg, p)?.with_calibration(calibration, trained_on))
}

/// Leave-one-source-out reports, one per wrapping. Fold models use the policy's threshold,
/// bias and rules (`cc`), so the figures are the ones the gateway would give.
pub fn loso(
    rows: &[Row],
    cc: &CompiledClassifier,
    cfg: FeatureConfig,
    p: TrainParams,
    wrappings: &[Wrapping],
) -> Result<Vec<(Wrapping, Report)>, String> {
    let folds = fold_classifiers(rows, cc, cfg, p)?;
    Ok(wrappings
        .iter()
        .map(|&w| {
            let mut report = Report::default();
            for (i, r) in rows.iter().enumerate() {
                if let Some(fc) = folds.get(&r.source) {
                    let c = classifier::classify(&wrap::wrap(&r.prompt, w, i), fc);
                    report.add(r, c.score, c.score >= fc.threshold);
                }
            }
            (w, report)
        })
        .collect())
}

/// The policy's classifier with each source's fold model: trained on every other source and
/// calibrated on their out-of-fold logits, never its own.
pub fn fold_classifiers(
    rows: &[Row],
    cc: &CompiledClassifier,
    cfg: FeatureConfig,
    p: TrainParams,
) -> Result<BTreeMap<String, CompiledClassifier>, String> {
    let examples = featurize(rows, cfg);
    let folds = fold_models(rows, &examples, cfg, p)?;
    let points = out_of_fold(rows, &examples, &folds);
    let folds: BTreeMap<String, CompiledClassifier> = folds
        .into_iter()
        .map(|(s, m)| {
            let others: Vec<(f64, f64)> = rows
                .iter()
                .zip(&points)
                .filter(|(r, _)| r.source != s)
                .map(|(_, p)| *p)
                .collect();
            let c = fit_calibration(&others);
            (
                s,
                cc.with_model(Arc::new(m.with_calibration(c, String::new()))),
            )
        })
        .collect();
    Ok(folds)
}

/// The given classifier itself on every row (for the shipped model: its fit, not a forecast).
pub fn resubstitution(rows: &[Row], cc: &CompiledClassifier, w: Wrapping) -> Report {
    let mut report = Report::default();
    for (i, r) in rows.iter().enumerate() {
        let c = classifier::classify(&wrap::wrap(&r.prompt, w, i), cc);
        report.add(r, c.score, c.score >= cc.threshold);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_figures() {
        let mut c = Confusion::default();
        for (t, p) in [
            (true, true),
            (true, true),
            (true, false),
            (false, false),
            (false, true),
        ] {
            c.add(t, p);
        }
        assert_eq!(c.total(), 5);
        assert!((c.accuracy() - 0.6).abs() < 1e-9);
        assert!((c.arch_recall() - 2.0 / 3.0).abs() < 1e-9);
        assert!((c.arch_precision() - 2.0 / 3.0).abs() < 1e-9);
        assert!((c.prim_recall() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn rows_parse_and_bad_tiers_are_refused() {
        let rows = parse_rows(
            "{\"id\":\"a\",\"source\":\"s\",\"tier\":\"primitive\",\"prompt\":\"p\"}\n\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(parse_rows("{\"source\":\"s\",\"tier\":\"gold\",\"prompt\":\"p\"}").is_err());
    }
}
