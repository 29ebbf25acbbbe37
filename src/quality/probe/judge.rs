//! Runs one answer the way its task says, with the programs this machine has.

use std::path::PathBuf;
use std::time::Duration;

use super::browser::{self, Expect};
use super::exec::{Scratch, code_of, run, which};
use super::tasks::{Run, Task};
use crate::quality::checks::Verdict;

/// Time limit of one run (each Python, node or Bash process).
const LIMIT: Duration = Duration::from_secs(10);

/// The programs found on this machine (None: that kind of run is skipped).
#[derive(Debug, Clone, Default)]
pub struct Programs {
    pub python: Option<PathBuf>,
    pub node: Option<PathBuf>,
    pub bash: Option<PathBuf>,
    pub chromium: Option<PathBuf>,
}

impl Programs {
    /// From PATH; Chromium also from TIERGATE_CHROMIUM or Debian's paths.
    pub fn find() -> Programs {
        let chromium = std::env::var_os("TIERGATE_CHROMIUM")
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .or_else(|| {
                which(&[
                    "/usr/bin/chromium",
                    "/usr/bin/chromium-browser",
                    "chromium",
                    "chromium-browser",
                ])
            });
        Programs {
            python: which(&["python3"]),
            node: which(&["node", "nodejs"]),
            bash: which(&["bash"]),
            chromium,
        }
    }
}

/// Reads a Python script that runs the SQL query on the setup and compares the rows.
const SQL_RUNNER: &str = r#"import json, sqlite3, sys
con = sqlite3.connect(":memory:")
con.executescript(open("setup.sql").read())
q = open("query.sql").read().strip().rstrip(";").strip()
rows = [[int(v) if isinstance(v, float) and v.is_integer() else v for v in r] for r in con.execute(q).fetchall()]
want = json.load(open("rows.json"))
if rows != want:
    sys.exit("rows %s, expected %s" % (json.dumps(rows), json.dumps(want)))
"#;

fn lines_equal(got: &str, want: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
    };
    norm(got) == norm(want)
}

/// JavaScript made runnable as a CommonJS script: `export` keywords and `module.exports`
/// lines dropped, since the checks are appended to the same file.
fn plain_js(code: &str) -> String {
    code.lines()
        .filter(|l| {
            !l.trim_start().starts_with("module.exports") && !l.trim_start().starts_with("exports.")
        })
        .map(|l| {
            let t = l.trim_start();
            t.strip_prefix("export default ")
                .or_else(|| t.strip_prefix("export "))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn skip(why: &str) -> (Verdict, Option<String>) {
    (Verdict::Skip, Some(why.to_string()))
}

/// The verdict of running `answer` for `task`, and a note (why it failed or was skipped).
pub fn judge(task: &Task, answer: &str, p: &Programs) -> (Verdict, Option<String>) {
    let Some(code) = code_of(answer, task.tags) else {
        let why = format!("no {} code in the answer", task.tags[0]);
        return (Verdict::Fail(why.clone()), Some(why));
    };
    match attempt(task, &code, p) {
        Ok(Ok(())) => (Verdict::Pass, None),
        Ok(Err(why)) => (Verdict::Fail(why.clone()), Some(why)),
        Err(Missing(why)) => skip(&why),
    }
}

/// A run that could not happen here (no such program, no temporary folder).
struct Missing(String);

fn need(p: &Option<PathBuf>, what: &str) -> Result<PathBuf, Missing> {
    p.clone()
        .ok_or_else(|| Missing(format!("{what} is not installed")))
}

fn io(e: std::io::Error) -> Missing {
    Missing(format!("cannot run here: {e}"))
}

fn attempt(task: &Task, code: &str, p: &Programs) -> Result<Result<(), String>, Missing> {
    let dir = Scratch::new(task.name).map_err(io)?;
    let outcome = |ran: super::exec::Ran, what: &str| {
        if ran.ok {
            Ok(())
        } else {
            Err(format!("{what}: {}", ran.tail()))
        }
    };
    Ok(match task.run {
        Run::Python { checks, own } => {
            let python = need(&p.python, "python3")?;
            dir.write("solution.py", code).map_err(io)?;
            dir.write(
                "probe_checks.py",
                &format!("from solution import *\n{checks}"),
            )
            .map_err(io)?;
            if own {
                let ran = run(&python, &["solution.py"], &dir.0, "", LIMIT).map_err(io)?;
                if let Err(e) = outcome(ran, "its own tests failed") {
                    return Ok(Err(e));
                }
            }
            outcome(
                run(&python, &["probe_checks.py"], &dir.0, "", LIMIT).map_err(io)?,
                "the probe's tests failed",
            )
        }
        Run::PythonCli {
            args,
            stdin,
            stdout,
        } => {
            let python = need(&p.python, "python3")?;
            dir.write("main.py", code).map_err(io)?;
            let mut argv = vec!["main.py"];
            argv.extend_from_slice(args);
            let ran = run(&python, &argv, &dir.0, stdin, LIMIT).map_err(io)?;
            if !ran.ok {
                Err(format!("the script failed: {}", ran.tail()))
            } else if !lines_equal(&ran.stdout, stdout) {
                Err(format!(
                    "printed {:?}, expected {stdout:?}",
                    ran.stdout.trim()
                ))
            } else {
                Ok(())
            }
        }
        Run::Sql { setup, rows } => {
            let python = need(&p.python, "python3")?;
            dir.write("setup.sql", setup).map_err(io)?;
            dir.write("query.sql", code).map_err(io)?;
            dir.write("rows.json", rows).map_err(io)?;
            dir.write("run_sql.py", SQL_RUNNER).map_err(io)?;
            outcome(
                run(&python, &["run_sql.py"], &dir.0, "", LIMIT).map_err(io)?,
                "the query failed",
            )
        }
        Run::Bash { files, stdout } => {
            let bash = need(&p.bash, "bash")?;
            let work = dir.0.join("work");
            std::fs::create_dir_all(&work).map_err(io)?;
            for (name, text) in files {
                std::fs::write(work.join(name), text).map_err(io)?;
            }
            let script = dir.write("script.sh", code).map_err(io)?;
            let script = script.display().to_string();
            let ran = run(&bash, &[script.as_str()], &work, "", LIMIT).map_err(io)?;
            if !ran.ok {
                Err(format!("the script failed: {}", ran.tail()))
            } else if !lines_equal(&ran.stdout, stdout) {
                Err(format!(
                    "printed {:?}, expected {stdout:?}",
                    ran.stdout.trim()
                ))
            } else {
                Ok(())
            }
        }
        Run::Node { checks } => {
            let node = need(&p.node, "node")?;
            let text = format!(
                "const assert = require('assert');\n{}\n;\n{checks}",
                plain_js(code)
            );
            dir.write("solution.js", &text).map_err(io)?;
            outcome(
                run(&node, &["solution.js"], &dir.0, "", LIMIT).map_err(io)?,
                "the probe's tests failed",
            )
        }
        Run::Page {
            animated_canvas,
            assert_js,
        } => {
            let chromium = need(&p.chromium, "chromium")?;
            match browser::render(
                &chromium,
                code,
                Expect {
                    animated_canvas,
                    assert_js,
                },
            ) {
                Ok(None) => Ok(()),
                Ok(Some(why)) => Err(why),
                Err(e) => return Err(Missing(e)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::tasks::SUITE;
    use super::*;

    fn task(name: &str) -> &'static Task {
        SUITE.iter().find(|t| t.name == name).unwrap()
    }

    fn fenced(tag: &str, code: &str) -> String {
        format!("Here you go:\n```{tag}\n{code}```\n")
    }

    #[test]
    fn js_exports_are_dropped() {
        assert_eq!(
            plain_js("export function f() {}\nmodule.exports = f;\nexport default g"),
            "function f() {}\ng"
        );
    }

    /// Good and bad answers for the tasks that run under python3, node and bash (each
    /// skipped where its program is missing, which the verdict says).
    #[test]
    fn good_answers_pass_and_bad_ones_fail() {
        let p = Programs::find();
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "merge-intervals",
                "python",
                "def merge_intervals(intervals):\n    out = []\n    for s, e in sorted(intervals):\n        if out and s <= out[-1][1]:\n            out[-1][1] = max(out[-1][1], e)\n        else:\n            out.append([s, e])\n    return out\n",
                "def merge_intervals(intervals):\n    return sorted(intervals)\n",
            ),
            (
                "sql-query",
                "sql",
                "SELECT d.name AS dept, COUNT(*) AS headcount, ROUND(AVG(e.salary)) AS avg_salary\nFROM employees e JOIN departments d ON d.id = e.dept_id\nGROUP BY d.id ORDER BY dept;\n",
                "SELECT name FROM departments;\n",
            ),
            (
                "cli-script",
                "python",
                "import argparse, csv, sys\np = argparse.ArgumentParser()\np.add_argument('--column')\na = p.parse_args()\nt = sum(float(r[a.column]) for r in csv.DictReader(sys.stdin))\nprint(int(t) if t.is_integer() else t)\n",
                "import sys\nprint(sum(1 for _ in sys.stdin))\n",
            ),
            (
                "bash-script",
                "bash",
                "for f in *.txt; do\n  echo \"$f $(wc -l < \"$f\")\"\ndone\n",
                "ls\n",
            ),
            (
                "js-chunk",
                "javascript",
                "export function chunk(a, n) {\n  if (!Number.isInteger(n) || n < 1) throw new RangeError('size');\n  const out = [];\n  for (let i = 0; i < a.length; i += n) out.push(a.slice(i, i + n));\n  return out;\n}\n",
                "function chunk(a, n) { return [a]; }\n",
            ),
            (
                "function-with-tests",
                "python",
                "import re, unittest\ndef slugify(title):\n    return re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')\nclass T(unittest.TestCase):\n    def test(self):\n        self.assertEqual(slugify('A b'), 'a-b')\nif __name__ == '__main__':\n    unittest.main()\n",
                "def slugify(title):\n    return title.lower()\n",
            ),
        ];
        for (name, tag, good, bad) in cases {
            let t = task(name);
            let (v, note) = judge(t, &fenced(tag, good), &p);
            if v == Verdict::Skip {
                assert!(note.unwrap().contains("not installed"), "{name}");
                continue;
            }
            assert_eq!(v, Verdict::Pass, "{name}: {note:?}");
            let (v, note) = judge(t, &fenced(tag, bad), &p);
            assert!(v.failed(), "{name}: a bad answer passed ({note:?})");
        }
        let (v, note) = judge(task("regex"), "```js\nlet a;\n```", &p);
        assert!(
            v.failed() && note.unwrap().contains("no python code"),
            "{v:?}"
        );
        if p.python.is_some() {
            assert!(
                judge(task("regex"), "Use a regex.", &p).0.failed(),
                "prose is not code"
            );
        }
    }

    #[test]
    fn a_run_that_hangs_is_killed() {
        let p = Programs::find();
        if p.python.is_none() {
            return;
        }
        let (v, note) = judge(
            task("regex"),
            &fenced("python", "while True:\n    pass\n"),
            &p,
        );
        assert!(
            v.failed() && note.unwrap().contains("killed after"),
            "{v:?}"
        );
    }
}
