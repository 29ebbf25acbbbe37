//! Running a probe answer where the machine can: in a temporary folder of its own, with a
//! time limit, its output in files (no pipe to fill), killed when late.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::quality::checks::blocks;

/// A temporary folder, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(what: &str) -> std::io::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "tiergate-probe-{what}-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }

    pub fn write(&self, name: &str, text: &str) -> std::io::Result<PathBuf> {
        let p = self.0.join(name);
        std::fs::write(&p, text)?;
        Ok(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug)]
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Ran {
    /// The last lines of stderr (or stdout), for a short reason.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        // Caret markers and node's version banner say nothing.
        let lines: Vec<&str> = text
            .trim_end()
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty()
                    && !l.starts_with("Node.js v")
                    && !l.chars().all(|c| "^~ ".contains(c))
            })
            .collect();
        let from = lines.len().saturating_sub(2);
        let mut t = lines[from..].join(" | ");
        if t.len() > 240 {
            let mut cut = 240;
            while !t.is_char_boundary(cut) {
                cut -= 1;
            }
            t.truncate(cut);
        }
        t
    }
}

/// Runs `program args` in `dir` with `stdin`, killed after `limit`. An error: it could not
/// be started at all.
pub fn run(
    program: &Path,
    args: &[&str],
    dir: &Path,
    stdin: &str,
    limit: Duration,
) -> std::io::Result<Ran> {
    let input = dir.join(".stdin");
    let out = dir.join(".stdout");
    let err = dir.join(".stderr");
    std::fs::write(&input, stdin)?;
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::from(std::fs::File::open(&input)?))
        .stdout(Stdio::from(std::fs::File::create(&out)?))
        .stderr(Stdio::from(std::fs::File::create(&err)?))
        .spawn()?;
    let deadline = Instant::now() + limit;
    let (status, timed_out) = loop {
        if let Some(s) = child.try_wait()? {
            break (Some(s), false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Ok(Ran {
        ok: status.is_some_and(|s| s.success()),
        stdout: read(&out),
        stderr: if timed_out {
            format!("killed after {limit:?}")
        } else {
            read(&err)
        },
        timed_out,
    })
}

/// The first program of `names` found on PATH (or given as a path).
pub fn which(names: &[&str]) -> Option<PathBuf> {
    for name in names {
        let p = Path::new(name);
        if p.is_absolute() {
            if p.exists() {
                return Some(p.to_path_buf());
            }
            continue;
        }
        let path = std::env::var_os("PATH")?;
        for dir in std::env::split_paths(&path) {
            let c = dir.join(name);
            if c.is_file() {
                return Some(c);
            }
        }
    }
    None
}

/// The code of an answer for a task in the language tagged by one of `tags`: the longest
/// block so tagged, else the longest untagged block, else the whole answer when it has no
/// fence at all.
pub fn code_of(answer: &str, tags: &[&str]) -> Option<String> {
    let bs = blocks(answer);
    let pick = |want: &dyn Fn(&str) -> bool| {
        bs.iter()
            .filter(|b| want(b.lang))
            .max_by_key(|b| b.code.len())
            .map(|b| b.code.clone())
    };
    pick(&|l| tags.iter().any(|t| t.eq_ignore_ascii_case(l)))
        .or_else(|| pick(&|l| l.is_empty()))
        .or_else(|| {
            (bs.is_empty() && !answer.trim().is_empty()).then(|| answer.trim().to_string() + "\n")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_picked_by_tag_then_untagged_then_whole() {
        let a = "```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\nz = 3\n```";
        assert_eq!(code_of(a, &["python", "py"]).unwrap(), "y = 2\nz = 3\n");
        assert_eq!(
            code_of("```\nSELECT 1;\n```", &["sql"]).unwrap(),
            "SELECT 1;\n"
        );
        assert_eq!(code_of("SELECT 1;", &["sql"]).unwrap(), "SELECT 1;\n");
        assert_eq!(code_of("```js\nx\n```", &["sql"]), None);
    }

    #[test]
    fn runs_are_bounded_and_report_their_output() {
        let Some(sh) = which(&["sh"]) else { return };
        let dir = Scratch::new("exec-test").unwrap();
        let r = run(
            &sh,
            &["-c", "read x; echo got $x; echo oops >&2; exit 3"],
            &dir.0,
            "hi\n",
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(!r.ok && !r.timed_out);
        assert_eq!(r.stdout, "got hi\n");
        assert_eq!(r.tail(), "oops");
        let r = run(
            &sh,
            &["-c", "sleep 5"],
            &dir.0,
            "",
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(r.timed_out && !r.ok, "{r:?}");
        let path = dir.0.clone();
        drop(dir);
        assert!(!path.exists());
    }
}
