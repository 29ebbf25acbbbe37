//! The answer checks on real answers: the Qwen2.5-Coder-0.5B (and SmolLM2) captures of
//! ../shared/local-model/captures (copied to tests/fixtures/quality/captures: raw HTTP
//! responses, SSE streams, bodies), checked as the upstream sent them and after the gateway's
//! local repair; and hand-made good and bad answers in tests/fixtures/quality/hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;

use tiergate::local::{self, ToolOffer};
use tiergate::quality::checks::{self, Answer, Asked, Check, Report};

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/quality")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The body of a captured HTTP response (or the file itself when it has no head).
fn body(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    if text.starts_with("HTTP/") {
        let at = text
            .find("\r\n\r\n")
            .map(|i| i + 4)
            .or_else(|| text.find("\n\n").map(|i| i + 2))
            .unwrap();
        return raw[at..].to_vec();
    }
    raw.to_vec()
}

fn answer(name: &str) -> Answer {
    let raw = body(&fixture(name));
    if name.ends_with(".sse") {
        Answer::from_chat_sse(&raw)
    } else if name.ends_with(".md") {
        Answer::text(&String::from_utf8(raw).unwrap(), Some("stop"))
    } else {
        Answer::from_chat_json(&raw).unwrap_or_else(|| panic!("{name}: not a chat completion"))
    }
}

/// The answer after `local::fix_body` (what a client of a `repair: true` upstream gets).
fn repaired(name: &str, offer: &ToolOffer) -> Answer {
    let fixed = local::fix_body(200, &body(&fixture(name)), "local", Some(offer));
    Answer::from_chat_json(&fixed.body).unwrap()
}

fn offer(request: &str) -> ToolOffer {
    ToolOffer::from_request(&fixture(&format!("captures/{request}"))).unwrap()
}

/// The verdicts as five labels in `Check::ALL` order: truncated, syntax, tool_calls, page, empty.
fn labels(r: &Report) -> [&'static str; 5] {
    Check::ALL.map(|c| r.get(c).label())
}

fn run(task: &str, tools: Option<&ToolOffer>, a: &Answer) -> Report {
    checks::run(&Asked { task, tools }, a)
}

const WEATHER: &str = "What is the weather in Paris right now? Use the tool.";

#[test]
fn captured_qwen_and_smollm2_answers() {
    let auto = offer("tools-req.json");
    let required = offer("tools-req-required.json");
    let named = offer("tools-req-named-stream.json");
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a ToolOffer>,
        Answer,
        [&'a str; 5],
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "qwen 02-chat",
            "What is the capital of France?",
            None,
            answer("captures/qwen-02-chat.txt"),
            ["pass", "skip", "skip", "skip", "pass"],
        ),
        (
            "qwen 03-stream",
            "Say hello.",
            None,
            answer("captures/qwen-03-stream.sse"),
            ["pass", "skip", "skip", "skip", "pass"],
        ),
        // A tool call written as text: no tool_calls as sent; a valid call once repaired.
        (
            "qwen 04-tools as sent",
            WEATHER,
            Some(&auto),
            answer("captures/qwen-04-tools.txt"),
            ["pass", "skip", "skip", "skip", "pass"],
        ),
        (
            "qwen 04-tools repaired",
            WEATHER,
            Some(&auto),
            repaired("captures/qwen-04-tools.txt", &auto),
            ["pass", "skip", "pass", "skip", "pass"],
        ),
        // tool_choice required: the call as text, then a fenced copy, then newlines to max_tokens.
        (
            "qwen 04b-required as sent",
            WEATHER,
            Some(&required),
            answer("captures/qwen-04b-tools-required.txt"),
            ["fail", "pass", "fail", "skip", "pass"],
        ),
        // The repair takes the call and answers finish_reason tool_calls.
        (
            "qwen 04b-required repaired",
            WEATHER,
            Some(&required),
            repaired("captures/qwen-04b-tools-required.txt", &required),
            ["pass", "skip", "pass", "skip", "pass"],
        ),
        (
            "qwen 05-tools-stream",
            WEATHER,
            Some(&auto),
            answer("captures/qwen-05-tools-stream.sse"),
            ["pass", "skip", "skip", "skip", "pass"],
        ),
        (
            "qwen 09-roundtrip",
            WEATHER,
            Some(&auto),
            answer("captures/qwen-09-tool-result-roundtrip.json"),
            ["pass", "skip", "skip", "skip", "pass"],
        ),
        (
            "llama-cpp-python 04-tools",
            WEATHER,
            Some(&auto),
            answer("captures/llcp-qwen-04-tools-req.json"),
            ["pass", "skip", "pass", "skip", "pass"],
        ),
        // llama-cpp-python repeats the tool's name in every delta: taken once.
        (
            "llama-cpp-python 05-named-stream",
            WEATHER,
            Some(&named),
            answer("captures/llcp-qwen-05-tools-named-stream.sse"),
            ["pass", "skip", "pass", "skip", "pass"],
        ),
        (
            "smollm2 02-chat",
            "What is the capital of France?",
            None,
            answer("captures/smollm2-02-chat.txt"),
            ["pass", "skip", "skip", "skip", "pass"],
        ),
        // Forecast prose instead of a call, cut at max_tokens.
        (
            "smollm2 04-tools",
            WEATHER,
            Some(&auto),
            answer("captures/smollm2-04-tools.txt"),
            ["fail", "skip", "skip", "skip", "pass"],
        ),
    ];
    let mut wrong = Vec::new();
    for (name, task, tools, a, want) in &cases {
        let r = run(task, *tools, a);
        let got = labels(&r);
        let why: Vec<String> = r
            .verdicts
            .iter()
            .filter_map(|(c, v)| match v {
                checks::Verdict::Fail(m) => Some(format!("{}: {m}", c.name())),
                _ => None,
            })
            .collect();
        println!("{name:36} {got:?} {why:?}");
        if got != *want {
            wrong.push(format!("{name}: got {got:?}, want {want:?} ({why:?})"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

const CANVAS_TASK: &str = "Write a single-file HTML page with a canvas animation of a bouncing ball seen from the side, with gravity.";
const DEDUPE_TASK: &str =
    "Write a Python function dedupe(items) that removes duplicates and keeps the order.";

#[test]
fn hand_made_good_and_bad_answers() {
    let cases = [
        (
            "hand/good-python.md",
            DEDUPE_TASK,
            ["pass", "pass", "skip", "skip", "pass"],
            None,
        ),
        (
            "hand/truncated-fence.md",
            DEDUPE_TASK,
            ["fail", "pass", "skip", "skip", "pass"],
            Some((Check::Truncated, "never closed")),
        ),
        (
            "hand/broken-python.md",
            DEDUPE_TASK,
            ["pass", "fail", "skip", "skip", "pass"],
            Some((Check::Syntax, "python block at line 3")),
        ),
        (
            "hand/good-canvas.md",
            CANVAS_TASK,
            ["pass", "pass", "skip", "pass", "pass"],
            None,
        ),
        (
            "hand/external-script.md",
            CANVAS_TASK,
            ["pass", "pass", "skip", "fail", "pass"],
            Some((Check::Page, "cdn.jsdelivr.net")),
        ),
        (
            "hand/refusal.md",
            DEDUPE_TASK,
            ["pass", "skip", "skip", "skip", "fail"],
            Some((Check::Empty, "refusal")),
        ),
    ];
    for (name, task, want, why) in cases {
        let r = run(task, None, &answer(name));
        assert_eq!(labels(&r), want, "{name}: {r:?}");
        if let Some((check, text)) = why {
            assert!(
                matches!(r.get(check), checks::Verdict::Fail(m) if m.contains(text)),
                "{name}: {r:?}"
            );
        }
    }
    // The same good page with its fence cut half way: truncated and broken.
    let text = String::from_utf8(fixture("hand/good-canvas.md")).unwrap();
    let cut = &text[..text.find("requestAnimationFrame(frame);\n}").unwrap()];
    let r = run(CANVAS_TASK, None, &Answer::text(cut, Some("length")));
    assert_eq!(labels(&r)[0], "fail", "{r:?}");
    assert_eq!(labels(&r)[1], "fail", "{r:?}");
}

/// Code answers of the real Qwen2.5-Coder-0.5B to probe tasks (tests/fixtures/quality/qwen-probe,
/// saved by `tiergate probe --save` at max_tokens 1024).
#[test]
fn captured_qwen_code_answers() {
    use tiergate::quality::probe::SUITE;
    let prompt = |name: &str| SUITE.iter().find(|t| t.name == name).unwrap().prompt;
    let cases = [
        // A CSS keyframe animation of an empty canvas: no script at all.
        (
            "canvas-physics",
            "stop",
            ["pass", "pass", "skip", "fail", "pass"],
        ),
        (
            "canvas-pendulum",
            "stop",
            ["pass", "pass", "skip", "pass", "pass"],
        ),
        // 1024 tokens of tests, cut inside a string literal.
        (
            "function-with-tests",
            "length",
            ["fail", "fail", "skip", "skip", "pass"],
        ),
        (
            "sql-query",
            "stop",
            ["pass", "skip", "skip", "skip", "pass"],
        ),
        (
            "css-layout",
            "stop",
            ["pass", "pass", "skip", "pass", "pass"],
        ),
        ("js-chunk", "stop", ["pass", "pass", "skip", "skip", "pass"]),
    ];
    for (name, finish, want) in cases {
        let text = String::from_utf8(fixture(&format!("qwen-probe/{name}.md"))).unwrap();
        let r = run(prompt(name), None, &Answer::text(&text, Some(finish)));
        println!(
            "{name:20} {:?} {:?}",
            labels(&r),
            r.failed().map(|c| r.get(c).clone()).collect::<Vec<_>>()
        );
        assert_eq!(labels(&r), want, "{name}: {r:?}");
    }
}
