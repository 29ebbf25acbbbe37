//! Classifier speed: a 2 KB chat request, a 100 KB agent request, and requests whose task
//! itself grows (to show the cost is linear in size). Each iteration parses the body's
//! messages into a `Conversation` and classifies it, as the gateway does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use serde_json::value::RawValue;
use tiergate::config;
use tiergate::routing::{Conversation, classifier};

const TASK: &str = "Split the billing module of this service into its own microservice with an event bus, \
and plan the database migration. Keep the order API backward compatible while both run.";

fn body(system: &str, history: &[(&str, String)], task: &str, tools: usize) -> String {
    let mut messages = vec![serde_json::json!({"role": "system", "content": system})];
    messages.extend(
        history
            .iter()
            .map(|(r, t)| serde_json::json!({"role": r, "content": t})),
    );
    messages.push(serde_json::json!({"role": "user", "content": task}));
    let tools: Vec<_> = (0..tools)
        .map(|i| {
            serde_json::json!({"type": "function", "function": {"name": format!("tool_{i}"), "description": "Reads, edits or runs things in the workspace. ".repeat(12),
            "parameters": {"type": "object", "properties": {"path": {"type": "string", "description": "Absolute path of the file."}}}}})
        })
        .collect();
    serde_json::json!({"model": "auto", "messages": messages, "tools": tools}).to_string()
}

fn small() -> String {
    let system = "You are a helpful coding assistant. Answer concisely. ".repeat(25);
    body(
        &system,
        &[],
        &format!(
            "{TASK} {}",
            "The service is written in Python with Flask. ".repeat(8)
        ),
        0,
    )
}

fn agent() -> String {
    let system =
        "You are an autonomous coding agent working in the user's repository through tools. "
            .repeat(200);
    let mut history = Vec::new();
    for i in 0..20 {
        history.push(("assistant", format!("I will read src/module_{i}.py next.")));
        history.push((
            "tool",
            format!("def handler_{i}(order):\n    return billing.charge(order)\n").repeat(55),
        ));
    }
    body(&system, &history, TASK, 20)
}

fn sized_task(bytes: usize) -> String {
    let unit = "Refactor the order service so that billing events go through the bus; keep the API stable. ";
    body(
        "You are a coding assistant.",
        &[],
        &unit.repeat(bytes / unit.len() + 1)[..bytes],
        0,
    )
}

#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    messages: &'a RawValue,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
}

fn classify(policy: &config::Policy, raw: &str) -> f64 {
    let head: Head<'_> = serde_json::from_str(raw).unwrap();
    let conv = Conversation::from_openai(head.messages, head.tools).unwrap();
    classifier::classify(&conv, &policy.classifier).score
}

fn bench(c: &mut Criterion) {
    let policy = config::parse("default", config::DEFAULT_POLICY, |_| None).unwrap();
    let small = small();
    let agent = agent();
    eprintln!(
        "request sizes: small {} bytes, agent {} bytes",
        small.len(),
        agent.len()
    );
    c.bench_function("classify_2kb_request", |b| {
        b.iter(|| classify(&policy, black_box(&small)))
    });
    c.bench_function("classify_100kb_agent_request", |b| {
        b.iter(|| classify(&policy, black_box(&agent)))
    });
    let mut g = c.benchmark_group("classify_task_bytes");
    for kb in [2usize, 8, 32, 128] {
        let raw = sized_task(kb * 1024);
        g.bench_with_input(BenchmarkId::from_parameter(kb * 1024), &raw, |b, raw| {
            b.iter(|| classify(&policy, black_box(raw)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
