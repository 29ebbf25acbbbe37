//! Platt calibration of raw logits into probabilities.

use crate::routing::model::{Calibration, sigmoid};

/// Platt scaling: fits `sigmoid(a * z + b)` to labels by Newton's method, with Platt's
/// smoothed targets so that separable data still give finite values.
pub fn fit_calibration(points: &[(f64, f64)]) -> Calibration {
    let pos = points.iter().filter(|p| p.1 > 0.5).count() as f64;
    let neg = points.len() as f64 - pos;
    let (hi, lo) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
    let targets: Vec<(f64, f64)> = points
        .iter()
        .map(|&(z, l)| (z, if l > 0.5 { hi } else { lo }))
        .collect();
    let loss = |a: f64, b: f64| -> f64 {
        targets
            .iter()
            .map(|&(z, y)| {
                let f = a * z + b;
                // log(1 + e^f) - y f, written to stay finite.
                f.max(0.0) + (-f.abs()).exp().ln_1p() - y * f
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-6, 0.0, 1e-6);
        for &(z, y) in &targets {
            let p = sigmoid(a * z + b);
            let r = p - y;
            let s = p * (1.0 - p);
            ga += r * z;
            gb += r;
            haa += s * z * z;
            hab += s * z;
            hbb += s;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        // Backtracking: a full Newton step can overshoot when the start is far off.
        let mut step = 1.0;
        while step > 1e-6 {
            let next = loss(a - step * da, b - step * db);
            if next <= current {
                current = next;
                break;
            }
            step /= 2.0;
        }
        if step <= 1e-6 {
            break;
        }
        a -= step * da;
        b -= step * db;
        if (step * da).abs() + (step * db).abs() < 1e-9 {
            break;
        }
    }
    Calibration {
        a: round64(a),
        b: round64(b),
    }
}

fn round64(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_fits_a_scaled_logit() {
        // Labels drawn so that the true probability is sigmoid(0.5 z - 1).
        let mut pts = Vec::new();
        let mut state = 88172645463325252u64;
        for i in 0..4000 {
            let z = (i as f64 - 2000.0) / 200.0;
            let p = sigmoid(0.5 * z - 1.0);
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state % 10_000) as f64 / 10_000.0;
            pts.push((z, if u < p { 1.0 } else { 0.0 }));
        }
        let c = fit_calibration(&pts);
        assert!((c.a - 0.5).abs() < 0.1 && (c.b + 1.0).abs() < 0.2, "{c:?}");
        // Separable data stay finite.
        let c = fit_calibration(&[(-2.0, 0.0), (-1.0, 0.0), (1.0, 1.0), (2.0, 1.0)]);
        assert!(c.a.is_finite() && c.a > 0.0 && c.a < 10.0, "{c:?}");
    }
}
