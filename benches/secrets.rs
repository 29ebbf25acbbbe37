//! Secret scan speed on a recorded Claude Code request grown to 100 KB with tool results
//! (source files that talk about keys, tokens and URLs, as an agent's context does),
//! without a secret, with one at its very end, and a small chat request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use tiergate::secrets::{Scanner, SecretsConfig};

const SOURCE: &str = r#"import os
import requests

API_KEY = os.environ["BILLING_API_KEY"]
BASE_URL = "https://billing.internal.example/v1"

def charge(order, token=None):
    """Charges an order; the token is the customer's saved card token."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    resp = requests.post(f"{BASE_URL}/charges", json={"amount": order.total, "token": token}, headers=headers)
    resp.raise_for_status()
    return resp.json()["id"]
"#;

fn agent_request(secret: Option<&str>) -> Vec<u8> {
    let recorded: serde_json::Value = serde_json::from_str(include_str!(
        "../tests/fixtures/clients/recorded/claude-code-T1.json"
    ))
    .unwrap();
    let mut body = recorded["body"].clone();
    let messages = body["messages"].as_array_mut().unwrap();
    let mut i = 0;
    while serde_json::to_vec(messages).unwrap().len() < 100 * 1024 {
        let id = format!("toolu_{i:04}");
        messages.push(serde_json::json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": id, "name": "Read", "input": {"file_path": format!("/repo/billing/module_{i}.py")}}]}));
        messages.push(serde_json::json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id, "content": SOURCE}]}));
        i += 1;
    }
    if let Some(s) = secret {
        messages.push(serde_json::json!({"role": "user", "content": s}));
    }
    serde_json::to_vec(&body).unwrap()
}

fn bench(c: &mut Criterion) {
    let scanner = Scanner::new(&SecretsConfig::default()).unwrap();
    let clean = agent_request(None);
    assert!(clean.len() >= 100 * 1024);
    assert_eq!(scanner.scan(&clean), None);
    let key = format!("AWS key AKIA{}", "Q7ZKD2M5XW3RNPLH");
    let dirty = agent_request(Some(&key));
    assert!(scanner.scan(&dirty).is_some());
    let small = serde_json::to_vec(&serde_json::json!({"model": "auto", "messages": [
        {"role": "user", "content": "Write a function that merges two sorted lists in Python."}]}))
    .unwrap();
    let mut g = c.benchmark_group("secrets");
    g.bench_function("agent_100kb_clean", |b| {
        b.iter(|| scanner.scan(black_box(&clean)))
    });
    g.bench_function("agent_100kb_secret_at_end", |b| {
        b.iter(|| scanner.scan(black_box(&dirty)))
    });
    g.bench_function("chat_small", |b| b.iter(|| scanner.scan(black_box(&small))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
