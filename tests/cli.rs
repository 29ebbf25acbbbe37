//! The real binary: `check` on good and broken policies, `classify` on JSON Lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tiergate");

/// A policy file, removed on drop.
fn write_policy(text: &str) -> tempfile::TempPath {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.into_temp_path()
}

fn check(text: &str) -> (bool, String, String) {
    let f = write_policy(text);
    let out = Command::new(BIN)
        .args(["check", "--policy"])
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = "upstreams:\n  - name: a\n    kind: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    api_key: ${TEST_KEY:-k}\ntiers:\n  - name: primitive\n    upstreams: [a]\n  - name: architecture\n    upstreams: [a]\n";

#[test]
fn check_accepts_good_policies_and_the_embedded_default() {
    let (ok, out, _) = check(GOOD);
    assert!(ok, "{out}");
    let out = Command::new(BIN).arg("check").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("upstream openai disabled"));
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")).unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new(BIN)
            .args(["check", "--policy"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn check_reports_file_line_column_and_fails() {
    let cases = [
        (
            GOOD.replace("    model: m\n", "    model: m\n    colour: red\n"),
            6,
            "unknown field `colour`",
        ),
        (
            GOOD.replace("kind: openai", "kind: openia"),
            3,
            "unknown variant `openia`",
        ),
        (
            GOOD.replace(
                "upstreams: [a]\n  - name: architecture",
                "upstreams: [a, nope]\n  - name: architecture",
            ),
            9,
            "upstream nope",
        ),
        (
            GOOD.replace("${TEST_KEY:-k}", "${TIERGATE_SURELY_UNSET_VAR}"),
            6,
            "TIERGATE_SURELY_UNSET_VAR",
        ),
        (
            GOOD.replace("max", "")
                .replace("base_url: http://127.0.0.1:1/v1", "base_url: [1]"),
            4,
            "invalid type",
        ),
        (
            format!(
                "{GOOD}classifier:\n  second_opinion:\n    deadline: 1s\n    band: [0.7, 0.2]\n"
            ),
            15,
            "second_opinion.band",
        ),
        (
            format!("{GOOD}classifier:\n  second_opinion:\n    upstream: nope\n"),
            14,
            "no upstream named nope",
        ),
    ];
    for (text, line, needle) in cases {
        let (ok, _, err) = check(&text);
        assert!(!ok, "accepted: {text}");
        let first = err.lines().next().unwrap_or("");
        assert!(
            first.contains(&format!(".yaml:{line}:")),
            "expected line {line}: {first}"
        );
        assert!(first.contains(needle), "expected {needle:?}: {first}");
    }
}

#[test]
fn classify_reads_json_lines_and_keeps_going_after_a_bad_line() {
    let mut child = Command::new(BIN)
        .arg("classify")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = [
        r#"{"prompt": "Write a function that checks whether a string is a palindrome."}"#,
        "{broken",
        r#"{"model":"auto","messages":[{"role":"user","content":"Split our monolith into microservices with an event bus and migrate the database."}]}"#,
    ]
    .join("\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["tier"], "primitive");
    assert!(lines[1]["error"].is_string());
    assert_eq!(lines[2]["tier"], "architecture");
    let s = lines[2]["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&s));
}
