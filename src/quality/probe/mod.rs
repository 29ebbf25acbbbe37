//! `tiergate probe`: the embedded suite of single-file tasks (`tasks`) sent to upstreams
//! (`ask`), each answer scored by the answer checks and by running it (`judge`): Python
//! under python3, SQL under python3's sqlite3, JavaScript under node, Bash, pages in headless
//! Chromium. Results as a table or as JSON Lines (the contract's line format).

pub mod ask;
pub mod browser;
pub mod exec;
pub mod judge;
pub mod tasks;

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::config::{Policy, Upstream};
use crate::quality::checks::{self, Answer, Asked, Verdict};
use crate::upstream::UpstreamRuntime;
pub use judge::Programs;
pub use tasks::{SUITE, Task};

/// A run's check counts three times an answer check in the score: an answer that parses
/// but does not work is mostly wrong.
const RUN_WEIGHT: f64 = 3.0;

/// One task's result on one upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    pub upstream: String,
    pub task: &'static str,
    pub pass: bool,
    pub score: f64,
    pub latency_s: f64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Answer checks by name, then `run`.
    pub checks: Vec<(&'static str, &'static str)>,
    /// Why checks failed or the run was skipped, for the table.
    pub notes: Vec<String>,
    /// Set when the upstream gave no answer.
    pub error: Option<String>,
    /// The answer's text (not in the JSON line; `--save` writes it).
    pub answer: String,
}

impl TaskResult {
    fn failed(upstream: &str, task: &'static str, error: String) -> TaskResult {
        TaskResult {
            upstream: upstream.to_string(),
            task,
            pass: false,
            score: 0.0,
            latency_s: 0.0,
            output_tokens: 0,
            cost_usd: 0.0,
            checks: Vec::new(),
            notes: Vec::new(),
            error: Some(error),
            answer: String::new(),
        }
    }

    /// The JSON line of the contract.
    pub fn json(&self) -> Value {
        let checks: Map<String, Value> = self
            .checks
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
            .collect();
        let mut v = json!({
            "upstream": self.upstream,
            "task": self.task,
            "pass": self.pass,
            "score": (self.score * 1000.0).round() / 1000.0,
            "latency_s": (self.latency_s * 1000.0).round() / 1000.0,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "checks": checks,
        });
        if let (Some(e), Some(o)) = (&self.error, v.as_object_mut()) {
            o.insert("error".into(), Value::from(e.as_str()));
        }
        v
    }
}

/// Scores one answer: the answer checks, then the run. Pure apart from the run itself.
pub fn score(task: &'static Task, upstream: &str, body: &[u8], programs: &Programs) -> TaskResult {
    let Some(answer) = Answer::from_chat_json(body) else {
        return TaskResult::failed(
            upstream,
            task.name,
            "the answer is not a chat completion".into(),
        );
    };
    let report = checks::run(
        &Asked {
            task: task.prompt,
            tools: None,
        },
        &answer,
    );
    let (run, run_note) = judge::judge(task, &answer.text, programs);
    let mut checks = Vec::new();
    let mut notes = Vec::new();
    let (mut got, mut total) = (0.0, 0.0);
    let mut pass = true;
    let all = report
        .verdicts
        .iter()
        .map(|(c, v)| (c.name(), v, 1.0))
        .chain(std::iter::once(("run", &run, RUN_WEIGHT)));
    for (name, verdict, weight) in all {
        checks.push((name, verdict.label()));
        match verdict {
            Verdict::Pass => {
                got += weight;
                total += weight;
            }
            Verdict::Fail(why) => {
                total += weight;
                pass = false;
                notes.push(format!("{name}: {why}"));
            }
            Verdict::Skip => {}
        }
    }
    if run == Verdict::Skip
        && let Some(n) = run_note
    {
        notes.push(format!("run skipped: {n}"));
    }
    TaskResult {
        upstream: upstream.to_string(),
        task: task.name,
        pass: pass && total > 0.0,
        score: if total > 0.0 { got / total } else { 0.0 },
        latency_s: 0.0,
        output_tokens: 0,
        cost_usd: 0.0,
        checks,
        notes,
        error: None,
        answer: answer.text,
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_tokens: u64,
    /// Task names to run (all when empty).
    pub tasks: Vec<String>,
}

impl Options {
    pub fn selected(&self) -> impl Iterator<Item = &'static Task> + '_ {
        SUITE
            .iter()
            .filter(|t| self.tasks.is_empty() || self.tasks.iter().any(|n| n == t.name))
    }
}

/// Runs the selected tasks on one upstream, one after the other.
pub async fn probe_upstream(
    up: &Upstream,
    rt: &UpstreamRuntime,
    opts: &Options,
    programs: &Programs,
    mut each: impl FnMut(&TaskResult),
) -> Vec<TaskResult> {
    let mut out = Vec::new();
    for task in opts.selected() {
        let r = match &up.disabled {
            Some(why) => {
                TaskResult::failed(&up.name, task.name, format!("upstream disabled: {why}"))
            }
            None => match ask::ask(up, rt, task.prompt, opts.max_tokens).await {
                Err(e) => TaskResult::failed(&up.name, task.name, e),
                Ok(reply) => {
                    let body = reply.body.clone();
                    let name = up.name.clone();
                    let p = programs.clone();
                    let scored =
                        tokio::task::spawn_blocking(move || score(task, &name, &body, &p)).await;
                    let mut r = scored.unwrap_or_else(|e| {
                        TaskResult::failed(&up.name, task.name, format!("scoring failed: {e}"))
                    });
                    let completion = if reply.usage.completion_tokens > 0 {
                        reply.usage.completion_tokens
                    } else {
                        Answer::from_chat_json(&reply.body)
                            .map_or(0, |a| (a.text.len() as u64).div_ceil(4))
                    };
                    let price = up.price.per_mtok();
                    r.latency_s = reply.latency.as_secs_f64();
                    r.output_tokens = completion;
                    r.cost_usd = (reply.usage.prompt_tokens as f64 * price.input
                        + completion as f64 * price.output)
                        / 1e6;
                    r
                }
            },
        };
        each(&r);
        out.push(r);
    }
    out
}

/// The upstreams to probe: the one named, else every enabled one. Err: no such upstream.
pub fn targets(policy: &Policy, only: Option<&str>) -> Result<Vec<usize>, String> {
    match only {
        Some(name) => policy
            .upstream_index(name)
            .map(|i| vec![i])
            .ok_or_else(|| format!("no upstream named {name} in {}", policy.source)),
        None => Ok((0..policy.upstreams.len())
            .filter(|&i| policy.upstreams[i].is_enabled())
            .collect()),
    }
}

/// The table of one upstream's results, with a summary line.
pub fn table(up: &Upstream, results: &[TaskResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "upstream {} (model {}, {})",
        up.name, up.model, up.base_url
    );
    let _ = writeln!(
        s,
        "{:<20} {:<4} {:>5} {:>9} {:>7} {:>10}  notes",
        "task", "pass", "score", "latency", "tokens", "cost"
    );
    for r in results {
        let notes = match &r.error {
            Some(e) => format!("error: {e}"),
            None => r.notes.join("; "),
        };
        let _ = writeln!(
            s,
            "{:<20} {:<4} {:>5.2} {:>8.1}s {:>7} {:>10}  {}",
            r.task,
            if r.pass { "yes" } else { "no" },
            r.score,
            r.latency_s,
            r.output_tokens,
            format!("${:.4}", r.cost_usd),
            notes
        );
    }
    let n = results.len().max(1) as f64;
    let passed = results.iter().filter(|r| r.pass).count();
    let _ = writeln!(
        s,
        "{}: {passed}/{} passed, mean score {:.2}, {:.1} s, {} output tokens, ${:.4}",
        up.name,
        results.len(),
        results.iter().map(|r| r.score).sum::<f64>() / n,
        results.iter().map(|r| r.latency_s).sum::<f64>(),
        results.iter().map(|r| r.output_tokens).sum::<u64>(),
        results.iter().map(|r| r.cost_usd).sum::<f64>(),
    );
    s
}

/// The mean score of one upstream's results (0 when none): what `tiergate_probe_score`
/// and the policy floor compare.
pub fn mean_score(results: &[TaskResult]) -> f64 {
    if results.is_empty() {
        return 0.0;
    }
    results.iter().map(|r| r.score).sum::<f64>() / results.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str, finish: &str) -> Vec<u8> {
        json!({"choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}]})
            .to_string()
            .into_bytes()
    }

    fn task(name: &str) -> &'static Task {
        SUITE.iter().find(|t| t.name == name).unwrap()
    }

    #[test]
    fn scores_weigh_the_run_and_lines_follow_the_contract() {
        let p = Programs::find();
        let t = task("flatten-dict");
        let good = "```python\ndef flatten(d, p=''):\n    out = {}\n    for k, v in d.items():\n        key = p + '.' + k if p else k\n        if isinstance(v, dict):\n            out.update(flatten(v, key))\n        else:\n            out[key] = v\n    return out\n```";
        let r = score(t, "local", &body(good, "stop"), &p);
        if p.python.is_some() {
            assert!(r.pass && r.score == 1.0, "{r:?}");
        }
        // Cut at max_tokens: truncated fails; the code does not run: far below a pass.
        let cut = &good[..60];
        let r = score(t, "local", &body(cut, "length"), &p);
        assert!(!r.pass && r.score < 0.5, "{r:?}");
        let line = r.json();
        for k in [
            "upstream",
            "task",
            "pass",
            "score",
            "latency_s",
            "output_tokens",
            "cost_usd",
            "checks",
        ] {
            assert!(line.get(k).is_some(), "{k} missing: {line}");
        }
        assert_eq!(line["checks"]["truncated"], "fail");
        assert!(line["checks"]["run"].is_string());
        assert!(line.get("error").is_none());
        let e = TaskResult::failed("x", "regex", "status 500: boom".into()).json();
        assert_eq!(
            (e["pass"].as_bool(), e["error"].as_str()),
            (Some(false), Some("status 500: boom"))
        );
    }
}
