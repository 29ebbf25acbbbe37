//! `tiergate probe` end to end: the real binary against scripted upstreams on 127.0.0.1
//! (a good one, a bad one, one that fails, an Anthropic one); and answer pages, real Qwen
//! answers among them, rendered in headless Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::path::Path;

use common::{MockUpstream, Reply, completion};
use serde_json::{Value, json};
use tiergate::quality::probe::Programs;
use tiergate::quality::probe::browser::{Expect, render};
use tiergate::quality::probe::exec::code_of;

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/quality")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const GOOD_SQL: &str = "```sql\nSELECT d.name AS dept, COUNT(e.id) AS headcount, ROUND(AVG(e.salary)) AS avg_salary\nFROM departments d JOIN employees e ON e.dept_id = d.id\nGROUP BY d.id, d.name\nORDER BY dept;\n```";
const BAD_SQL: &str = "```sql\nSELECT name AS dept, 0 AS headcount, 0 AS avg_salary FROM departments ORDER BY dept;\n```";
const GOOD_MERGE: &str = "```python\ndef merge_intervals(intervals):\n    out = []\n    for s, e in sorted(intervals):\n        if out and s <= out[-1][1]:\n            out[-1][1] = max(out[-1][1], e)\n        else:\n            out.append([s, e])\n    return out\n```";
const BAD_MERGE: &str = "```python\ndef merge_intervals(intervals)\n    return intervals\n```";

/// The answer of a scripted upstream to a probe task, found by the task's wording.
fn answer(good: bool, prompt: &str) -> String {
    let pick = |g: String, b: String| if good { g } else { b };
    if prompt.contains("ball dropped under gravity") {
        pick(
            fixture("hand/good-canvas.md"),
            fixture("hand/external-script.md"),
        )
    } else if prompt.contains("SQLite tables") {
        pick(GOOD_SQL.into(), BAD_SQL.into())
    } else if prompt.contains("merge_intervals") {
        pick(GOOD_MERGE.into(), BAD_MERGE.into())
    } else if prompt.contains("<header>") {
        // The bad layout is Qwen2.5-Coder-0.5B's own answer: nav, not header, on top.
        pick(
            fixture("hand/good-layout.md"),
            fixture("qwen-probe/css-layout.md"),
        )
    } else {
        "I'm sorry, I can't help with that.".into()
    }
}

/// The user's text: a string (OpenAI) or text blocks (Anthropic).
fn prompt_of(body: &Value) -> String {
    let c = &body["messages"][0]["content"];
    match c.as_str() {
        Some(s) => s.to_string(),
        None => c[0]["text"].as_str().unwrap_or_default().to_string(),
    }
}

async fn openai_mock(good: bool) -> MockUpstream {
    MockUpstream::start(move |r| {
        let text = answer(good, &prompt_of(&r.json()));
        Reply::Json(200, completion("m", &text, 100, 200))
    })
    .await
}

async fn run_probe(policy: &str, args: &[&str]) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("tiergate-probe-test-{:x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tiergate"));
    cmd.arg("probe").arg("--policy").arg(&file).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// In the suite's order, which is the order of the lines.
const TASKS: [&str; 4] = [
    "canvas-physics",
    "sql-query",
    "css-layout",
    "merge-intervals",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_scores_good_and_bad_upstreams_over_the_wire() {
    let good = openai_mock(true).await;
    let bad = openai_mock(false).await;
    let broken = MockUpstream::start(|_| {
        Reply::Json(500, json!({"error": {"message": "model overloaded"}}))
    })
    .await;
    let claude = MockUpstream::start(|r| {
        assert_eq!(r.path, "/v1/messages");
        assert_eq!(r.headers["x-api-key"], "sk-ant-test");
        let text = answer(true, &prompt_of(&r.json()));
        Reply::Json(
            200,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 100, "output_tokens": 200}}),
        )
    })
    .await;
    let policy = format!(
        "upstreams:\n\
         - {{ name: good, kind: openai, base_url: {}, model: m, key_required: false, price: {{ input_per_mtok: 1, output_per_mtok: 10 }} }}\n\
         - {{ name: bad, kind: openai, base_url: {}, model: m, key_required: false }}\n\
         - {{ name: broken, kind: openai, base_url: {}, model: m, key_required: false }}\n\
         - {{ name: claude, kind: anthropic, base_url: http://{}, model: claude, api_key: sk-ant-test }}\n\
         - {{ name: off, kind: openai, base_url: http://127.0.0.1:9/v1, model: m, enabled: false }}\n\
         tiers:\n  - {{ name: primitive, upstreams: [good, bad] }}\n  - {{ name: architecture, upstreams: [claude, broken] }}\n",
        good.base_url(),
        bad.base_url(),
        broken.base_url(),
        claude.addr
    );
    let mut args: Vec<&str> = vec!["--json"];
    for t in TASKS {
        args.extend(["--task", t]);
    }
    let (ok, stdout, stderr) = run_probe(&policy, &args).await;
    assert!(ok, "{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every enabled upstream, every task, in order; the disabled one is not probed.
    let order: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["upstream"].as_str().unwrap().into(),
                l["task"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = ["good", "bad", "broken", "claude"]
        .iter()
        .flat_map(|u| TASKS.iter().map(move |t| (u.to_string(), t.to_string())))
        .collect();
    assert_eq!(order, want);
    let programs = Programs::find();
    let line = |u: &str, t: &str| {
        lines
            .iter()
            .find(|l| l["upstream"] == u && l["task"] == t)
            .unwrap()
    };
    for t in TASKS {
        let runs_here = if t.starts_with("canvas") || t == "css-layout" {
            programs.chromium.is_some()
        } else {
            programs.python.is_some()
        };
        let g = line("good", t);
        assert_eq!(g["pass"], runs_here, "{g}");
        if runs_here {
            assert_eq!(
                (g["score"].as_f64(), g["checks"]["run"].as_str()),
                (Some(1.0), Some("pass")),
                "{g}"
            );
        }
        let b = line("bad", t);
        assert_eq!(b["pass"], false, "{b}");
        assert!(b["score"].as_f64().unwrap() < 1.0, "{b}");
        let e = line("broken", t);
        assert!(
            e["error"].as_str().unwrap().contains("model overloaded"),
            "{e}"
        );
        assert_eq!(e["pass"], false);
        let c = line("claude", t);
        assert_eq!(
            c["pass"], runs_here,
            "Anthropic answers are translated: {c}"
        );
        assert_eq!(c["output_tokens"], 200);
    }
    // The bad canvas loads p5 from a CDN: the page check fails whatever is installed.
    assert_eq!(line("bad", "canvas-physics")["checks"]["page"], "fail");
    assert_eq!(line("bad", "merge-intervals")["checks"]["syntax"], "fail");
    // Cost at the good upstream's prices: 100 in at $1/M, 200 out at $10/M.
    let cost = line("good", "sql-query")["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.0021).abs() < 1e-9, "{cost}");
    // Each request was a plain chat request for the upstream's model with the suite's max_tokens.
    let sent = good.requests()[0].json();
    assert_eq!(
        (
            sent["model"].as_str(),
            sent["max_tokens"].as_u64(),
            sent["stream"].as_bool()
        ),
        (Some("m"), Some(2048), Some(false))
    );

    // The table, for one upstream by name (a disabled one says why on each line).
    let (ok, table, stderr) = run_probe(&policy, &["--upstream", "off", "--task", "regex"]).await;
    assert!(ok, "{stderr}");
    assert!(
        table.contains("upstream off") && table.contains("error: upstream disabled"),
        "{table}"
    );
    let (ok, table, _) = run_probe(
        &policy,
        &[
            "--upstream",
            "good",
            "--task",
            "sql-query",
            "--max-tokens",
            "64",
        ],
    )
    .await;
    assert!(ok);
    assert!(table.lines().any(|l| l.starts_with("sql-query") && l.contains(" yes ") == programs.python.is_some()), "{table}");
    assert!(table.contains("good: "), "{table}");
    assert_eq!(good.requests().last().unwrap().json()["max_tokens"], 64);
    let (ok, _, stderr) = run_probe(&policy, &["--upstream", "ghost"]).await;
    assert!(
        !ok && stderr.contains("no upstream named ghost"),
        "{stderr}"
    );
}

fn chromium() -> std::path::PathBuf {
    Programs::find().chromium.unwrap_or_else(|| {
        panic!("Chromium is not installed: this test needs the Debian package `chromium` (apt-get install -y chromium), or TIERGATE_CHROMIUM")
    })
}

fn page(name: &str) -> String {
    code_of(&fixture(name), &["html"]).unwrap()
}

const CANVAS: Expect = Expect {
    animated_canvas: true,
    assert_js: None,
};

#[test]
fn chromium_renders_real_and_hand_made_pages() {
    let c = chromium();
    // Hand-made: a bouncing ball drawn on a canvas, frame after frame.
    assert_eq!(
        render(&c, &page("hand/good-canvas.md"), CANVAS).unwrap(),
        None
    );
    // Qwen2.5-Coder-0.5B's pendulum moves; its "bouncing ball" is a CSS animation of an
    // empty canvas, which never changes.
    assert_eq!(
        render(&c, &page("qwen-probe/canvas-pendulum.md"), CANVAS).unwrap(),
        None
    );
    let why = render(&c, &page("qwen-probe/canvas-physics.md"), CANVAS)
        .unwrap()
        .unwrap();
    assert!(why.contains("did not change"), "{why}");
    // A script error is a console error.
    let broken = page("hand/good-canvas.md").replace("ctx.fill();", "ctx.fil();");
    let why = render(&c, &broken, CANVAS).unwrap().unwrap();
    assert!(
        why.starts_with("console error") && why.contains("fil"),
        "{why}"
    );
    // A still canvas, and an external script that cannot load (no network): both fail.
    let still = "<!DOCTYPE html><canvas id=c width=50 height=50></canvas><script>document.getElementById('c').getContext('2d').fillRect(0,0,9,9);</script>";
    assert!(
        render(&c, still, CANVAS)
            .unwrap()
            .unwrap()
            .contains("did not change")
    );
    let external = page("hand/external-script.md");
    assert!(
        render(&c, &external, CANVAS)
            .unwrap()
            .unwrap()
            .starts_with("console error")
    );
}
