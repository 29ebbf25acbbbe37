//! Task extraction and the classifier's tier on the first requests of the real clients, as
//! recorded by tests/clients/run.sh --record (tests/fixtures/clients/recorded/): for each of
//! the six clients, T1 (a canvas animation: primitive) and T2 (a billing microservice split:
//! architecture); opencode's title call sent before them is a side call on the cheapest tier.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::value::RawValue;
use tiergate::config::{self, Policy};
use tiergate::routing::classifier;
use tiergate::routing::task;
use tiergate::routing::{Conversation, decide};

const RECORDED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/clients/recorded"
);
const CLIENTS: &[&str] = &[
    "codex",
    "claude-code",
    "opencode",
    "cline",
    "continue",
    "aider",
];
const T1: &str = "Write a single self-contained HTML file with a canvas animation of a ball bouncing under gravity.";
const T2: &str = "Split the billing module of this service into its own microservice with an event bus, and plan the database migration.";

#[derive(serde::Deserialize)]
struct Recorded<'a> {
    path: String,
    #[serde(borrow)]
    body: &'a RawValue,
}

#[derive(serde::Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    instructions: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
}

/// The conversation as the gateway builds it for the endpoint the client called.
fn conversation<'a>(path: &str, body: &'a RawValue) -> Conversation<'a> {
    let b: Body<'a> = serde_json::from_str(body.get()).unwrap();
    if path.starts_with("/v1/responses") {
        Conversation::from_responses(b.instructions, b.input.unwrap(), b.tools).unwrap()
    } else if path.starts_with("/v1/messages") {
        Conversation::from_anthropic(b.system, b.messages.unwrap(), b.tools).unwrap()
    } else {
        Conversation::from_openai(b.messages.unwrap(), b.tools).unwrap()
    }
}

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{RECORDED}/{name}.json"))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn policy() -> Policy {
    config::parse("default", config::DEFAULT_POLICY, |_| None).unwrap()
}

#[test]
fn each_recorded_client_yields_its_task_and_tier() {
    let policy = policy();
    for client in CLIENTS {
        for (t, text, want_tier) in [("T1", T1, "primitive"), ("T2", T2, "architecture")] {
            let name = format!("{client}-{t}");
            let raw = read(&name);
            let rec: Recorded<'_> = serde_json::from_str(&raw).unwrap();
            let conv = conversation(&rec.path, rec.body);
            let task = task::extract(&conv);
            assert_eq!(task.text, text, "{name}: wrong task");
            assert_eq!(task.side_call, None, "{name}");
            // Never the system prompt nor the tool list.
            let turn = &conv.turns[task.turn.unwrap()];
            assert_eq!(turn.role, tiergate::routing::Role::User, "{name}");
            let c = classifier::classify(&conv, &policy.classifier);
            let tier = &policy.tiers[decide::tier_for(&policy, &c)].name;
            assert_eq!(tier, want_tier, "{name}: {c:?}");
        }
    }
}

#[test]
fn recorded_side_calls_go_to_the_cheapest_tier() {
    let policy = policy();
    for t in ["T1", "T2"] {
        let name = format!("opencode-{t}-side");
        let raw = read(&name);
        let rec: Recorded<'_> = serde_json::from_str(&raw).unwrap();
        let conv = conversation(&rec.path, rec.body);
        assert_eq!(task::extract(&conv).side_call, Some("title"), "{name}");
        let c = classifier::classify(&conv, &policy.classifier);
        assert_eq!(c.code, "side_call", "{name}");
        assert_eq!(
            policy.tiers[decide::tier_for(&policy, &c)].name,
            "primitive",
            "{name}"
        );
    }
}
