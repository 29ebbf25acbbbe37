//! Answer checks: pure functions over what a tier answered (text, finish reason, tool calls)
//! and what was asked (the task text, the tools offered). Each check passes, fails with a
//! short reason, or is skipped when it does not apply. No I/O; the caller decides where they
//! run (off the hot path: after a whole answer, or at the end of a stream).

mod answer;
mod basic;
mod fence;
pub mod html;
pub mod lang;
mod lite;
mod messages;
mod page;
mod syntax;
mod tools;

pub use answer::{Answer, ToolCall};
pub use fence::{Block, blocks};
pub use page::{PageAsk, asks_page};

use crate::local::ToolOffer;
use crate::metrics::Metrics;

/// The checks, by their metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// `finish_reason: length`, an unclosed code fence, a stream that ended early.
    Truncated,
    /// Every fenced block of a known language parses.
    Syntax,
    /// Tool call arguments are JSON and fit the offered schema; a forced call was made.
    ToolCalls,
    /// A single-file HTML page, when the task asks for one.
    Page,
    /// Empty, or a refusal and nothing else.
    Empty,
}

impl Check {
    pub const ALL: [Check; 5] = [
        Check::Truncated,
        Check::Syntax,
        Check::ToolCalls,
        Check::Page,
        Check::Empty,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::Truncated => "truncated",
            Check::Syntax => "syntax",
            Check::ToolCalls => "tool_calls",
            Check::Page => "page",
            Check::Empty => "empty",
        }
    }

    pub fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Failed, and why (short, for logs and `tiergate probe`; never a metric label).
    Fail(String),
    /// Does not apply to this answer.
    Skip,
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::Skip => "skip",
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self, Verdict::Fail(_))
    }
}

/// What was asked: the user's task and the tools the request offered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked<'a> {
    pub task: &'a str,
    pub tools: Option<&'a ToolOffer>,
}

/// Every check's verdict on one answer, in `Check::ALL` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub verdicts: Vec<(Check, Verdict)>,
}

impl Report {
    pub fn get(&self, check: Check) -> &Verdict {
        self.verdicts
            .iter()
            .find(|(c, _)| *c == check)
            .map_or(&Verdict::Skip, |(_, v)| v)
    }

    /// The checks that failed, in order.
    pub fn failed(&self) -> impl Iterator<Item = Check> + '_ {
        self.verdicts
            .iter()
            .filter(|(_, v)| v.failed())
            .map(|(c, _)| *c)
    }

    /// The first failed check among `among` (a tier's `escalate_on`), if any.
    pub fn first_failed_of(&self, among: &[Check]) -> Option<Check> {
        self.failed().find(|c| among.contains(c))
    }

    /// Counts the passes and failures into `tiergate_answer_checks_total` (skips are not
    /// counted: a pass rate is passes over passes and failures).
    pub fn count(&self, metrics: &Metrics, tier: &str, upstream: &str) {
        for (check, verdict) in &self.verdicts {
            if *verdict != Verdict::Skip {
                metrics
                    .answer_checks
                    .with_label_values(&[tier, upstream, check.name(), verdict.label()])
                    .inc();
            }
        }
    }
}

/// Runs every check on one answer.
pub fn run(asked: &Asked<'_>, answer: &Answer) -> Report {
    let blocks = fence::blocks(&answer.text);
    let verdicts = vec![
        (Check::Truncated, basic::truncated(answer, &blocks)),
        (Check::Syntax, syntax::check(&answer.text, &blocks)),
        (Check::ToolCalls, tools::check(asked.tools, answer)),
        (Check::Page, page::check(asked.task, &answer.text, &blocks)),
        (Check::Empty, basic::empty(answer, &blocks)),
    ];
    Report { verdicts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Check::ALL {
            assert_eq!(Check::from_name(c.name()), Some(c));
        }
        assert_eq!(Check::from_name("nope"), None);
    }

    #[test]
    fn failures_are_counted_and_skips_are_not() {
        let m = Metrics::new();
        let answer = Answer::text("```python\ndef f(:\n```", Some("stop"));
        let r = run(&Asked::default(), &answer);
        assert_eq!(r.failed().collect::<Vec<_>>(), [Check::Syntax]);
        assert_eq!(
            r.first_failed_of(&[Check::Truncated, Check::Syntax]),
            Some(Check::Syntax)
        );
        assert_eq!(r.first_failed_of(&[Check::Truncated]), None);
        r.count(&m, "primitive", "local");
        let c = |check, result| {
            m.answer_checks
                .with_label_values(&["primitive", "local", check, result])
                .get()
        };
        assert_eq!(
            (
                c("syntax", "fail"),
                c("truncated", "pass"),
                c("empty", "pass")
            ),
            (1, 1, 1)
        );
        assert_eq!((c("page", "skip"), c("tool_calls", "skip")), (0, 0));
    }
}
