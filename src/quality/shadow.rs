//! The state of shadow comparison: daily spend caps (shadow and judge), the judge's rubric
//! and its verdict, and the quality gate's tally per segment (tier, client, kind of task).
//! Pure and in memory; the calls themselves are made by `proxy::shadow`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::quality::checks::asks_page;

/// Spend per UTC day against a cap. A call reserves its estimated cost before it starts
/// and settles the real one after, so that calls running at once cannot all pass the
/// same check: the cap is overshot by at most one call's error of estimate.
#[derive(Debug, Default)]
pub struct DailySpend(Mutex<Day>);

#[derive(Debug, Default)]
struct Day {
    day: u64,
    spent: f64,
    /// Reserved by calls still running.
    pending: f64,
}

fn today() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

impl Day {
    fn roll(&mut self) {
        let d = today();
        if self.day != d {
            (self.day, self.spent) = (d, 0.0);
        }
    }
}

impl DailySpend {
    /// Whether a call may start: today's spend and reservations are under `cap`.
    pub fn allows(&self, cap: f64) -> bool {
        self.0
            .lock()
            .map(|mut g| {
                g.roll();
                g.spent + g.pending < cap
            })
            .unwrap_or(false)
    }

    /// Reserves `estimate` when a call may start (see `allows`).
    pub fn reserve(&self, cap: f64, estimate: f64) -> bool {
        let Ok(mut g) = self.0.lock() else {
            return false;
        };
        g.roll();
        if g.spent + g.pending >= cap {
            return false;
        }
        g.pending += estimate;
        true
    }

    /// Replaces a reservation by what the call really cost (0 when it failed).
    pub fn settle(&self, estimate: f64, usd: f64) {
        if let Ok(mut g) = self.0.lock() {
            g.roll();
            g.pending = (g.pending - estimate).max(0.0);
            g.spent += usd;
        }
    }

    pub fn add(&self, usd: f64) {
        self.settle(0.0, usd);
    }

    pub fn today(&self) -> f64 {
        self.0
            .lock()
            .map(|mut g| {
                g.roll();
                g.spent
            })
            .unwrap_or(0.0)
    }
}

/// The kind of a task, for the gate's segments: a small fixed vocabulary.
pub fn kind_of(task: &str) -> &'static str {
    let t = task.to_ascii_lowercase();
    let has = |w: &[&str]| w.iter().any(|w| t.contains(w));
    if asks_page(task).is_some() {
        "page"
    } else if has(&["sql", "query", "select "]) {
        "sql"
    } else if has(&["python", ".py", "pytest", "django", "pandas"]) {
        "python"
    } else if has(&["javascript", "typescript", "node", "react", ".js", ".ts"]) {
        "javascript"
    } else if has(&["bash", "shell", "script"]) {
        "shell"
    } else {
        "other"
    }
}

/// The judge's fixed rubric, filled in with the task and the two answers.
pub fn judge_prompt(task: &str, candidate: &str, reference: &str) -> String {
    format!(
        "You judge coding answers. Task:\n<task>\n{task}\n</task>\n\nAnswer A:\n<answer_a>\n{candidate}\n</answer_a>\n\nAnswer B:\n<answer_b>\n{reference}\n</answer_b>\n\nIs answer A at least as good as answer B for this task: correct, complete, and runnable as asked? Reply with one word: YES or NO."
    )
}

/// The judge's verdict: Some(true) when answer A is as good.
pub fn verdict(reply: &str) -> Option<bool> {
    let w = reply.trim_start_matches(|c: char| !c.is_alphanumeric());
    let w = w.get(..3).unwrap_or(w).to_ascii_uppercase();
    if w.starts_with("YES") {
        Some(true)
    } else if w.starts_with("NO") {
        Some(false)
    } else {
        None
    }
}

/// Hits and samples per (tier, client).
pub type Tally = Mutex<HashMap<(String, &'static str), (u64, u64)>>;

/// Wins and samples per segment: tier, client, kind of task.
type Segments = Mutex<HashMap<(String, &'static str, &'static str), (u64, u64)>>;

/// Judged wins and samples per segment; and how many requests the gate has turned away,
/// so that one in `EXPLORE` still goes to the tier (its samples let the segment recover).
#[derive(Debug, Default)]
pub struct Gate(Segments, std::sync::atomic::AtomicU64);

/// One request in this many of a closed segment is still answered by the tier.
pub const EXPLORE: u64 = 10;

impl Gate {
    pub fn record(
        &self,
        tier: &str,
        client: &'static str,
        kind: &'static str,
        win: bool,
    ) -> (u64, u64) {
        let Ok(mut m) = self.0.lock() else {
            return (0, 0);
        };
        let e = m.entry((tier.to_string(), client, kind)).or_insert((0, 0));
        e.0 += u64::from(win);
        e.1 += 1;
        *e
    }

    /// Whether this request of the segment goes to the frontier: the segment is closed and
    /// this is not the one in `EXPLORE` that still goes to the tier.
    pub fn turn_away(
        &self,
        tier: &str,
        client: &'static str,
        kind: &'static str,
        min_win_rate: f64,
        min_samples: u64,
    ) -> bool {
        if !self.closed(tier, client, kind, min_win_rate, min_samples) {
            return false;
        }
        let n = self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        n % EXPLORE != EXPLORE - 1
    }

    /// Whether the segment is under the gate: enough samples and a win rate under the bound.
    pub fn closed(
        &self,
        tier: &str,
        client: &'static str,
        kind: &'static str,
        min_win_rate: f64,
        min_samples: u64,
    ) -> bool {
        let Ok(m) = self.0.lock() else { return false };
        m.get(&(tier.to_string(), client, kind))
            .is_some_and(|&(w, n)| n >= min_samples && (w as f64) < min_win_rate * n as f64)
    }
}

/// Shadow comparison state of the gateway.
#[derive(Debug, Default)]
pub struct ShadowState {
    pub shadow_spend: DailySpend,
    pub judge_spend: DailySpend,
    pub gate: Gate,
    /// Agreements and comparisons per (tier, client), for the ratio gauge.
    pub agreement: Tally,
    /// Wins and verdicts per (tier, client).
    pub judge_tally: Tally,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_kinds_verdicts_and_the_gate() {
        let s = DailySpend::default();
        assert!(s.allows(0.01));
        s.add(0.02);
        assert!(!s.allows(0.01) && s.allows(0.05));
        assert!((s.today() - 0.02).abs() < 1e-12);
        // Two calls at once: the second sees the first's reservation.
        let s = DailySpend::default();
        assert!(s.reserve(0.01, 0.008));
        assert!(s.reserve(0.01, 0.008), "0.008 reserved is under the cap");
        assert!(!s.reserve(0.01, 0.008), "0.016 reserved is not");
        s.settle(0.008, 0.001);
        s.settle(0.008, 0.0);
        assert!((s.today() - 0.001).abs() < 1e-12 && s.allows(0.01));
        assert_eq!(
            kind_of("Write a single-file HTML page with a canvas"),
            "page"
        );
        assert_eq!(kind_of("Write a Python function"), "python");
        assert_eq!(kind_of("An SQL query for the top sales"), "sql");
        assert_eq!(kind_of("What is a monad?"), "other");
        assert_eq!(verdict(" yes, A is fine"), Some(true));
        assert_eq!(verdict("**NO**"), Some(false));
        assert_eq!(verdict("maybe"), None);
        assert!(judge_prompt("t", "a", "b").contains("<answer_a>\na\n</answer_a>"));
        let g = Gate::default();
        for win in [false, false, true] {
            g.record("primitive", "cline", "page", win);
        }
        assert!(g.closed("primitive", "cline", "page", 0.5, 3));
        assert!(
            !g.closed("primitive", "cline", "page", 0.5, 4),
            "too few samples"
        );
        assert!(
            !g.closed("primitive", "aider", "page", 0.5, 1),
            "another client"
        );
        let away = (0..EXPLORE)
            .filter(|_| g.turn_away("primitive", "cline", "page", 0.5, 3))
            .count();
        assert_eq!(
            away as u64,
            EXPLORE - 1,
            "one in EXPLORE still goes to the tier"
        );
        g.record("primitive", "cline", "page", true);
        g.record("primitive", "cline", "page", true);
        assert!(
            !g.closed("primitive", "cline", "page", 0.5, 3),
            "recovered: 3 of 5"
        );
    }
}
