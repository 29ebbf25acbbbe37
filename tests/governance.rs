//! Client keys, limits, budgets and secrets over real sockets, in process: auth on every
//! endpoint, 403 for what a key may not use, 429 with `retry-after`, budgets refused or
//! downgraded, and requests carrying a secret that never reach the frontier mock, on every
//! endpoint, streamed and not, with the local upstream failing. Afterwards no key, key hash
//! or secret is in `/metrics` or any error body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::prompts::secret;
use common::spec::{MockSpec, upstream_yaml};
use common::{Gateway, MockUpstream, get, metric, post};
use serde_json::json;
use tiergate::govern::keys::{generate, hash_hex};

struct Key {
    key: String,
    yaml: String,
}

/// A fresh key and its entry for `auth.keys` (`extra`: more fields, YAML flow style).
fn key(name: &str, team: &str, extra: &str) -> Key {
    let key = generate().unwrap().expose().to_string();
    let yaml = format!(
        "    - {{ name: {name}, team: {team}, sha256: {}{extra} }}\n",
        hash_hex(&key)
    );
    Key { key, yaml }
}

/// `local` (marked local, free) and `frontier` (priced): primitive -> local, frontier;
/// architecture -> frontier.
fn policy(local: &MockUpstream, frontier: &MockUpstream, keys: &[&Key], rest: &str) -> String {
    let local_yaml = upstream_yaml("local", local, "{}").replace(
        "    price: {}\n",
        "    price: {}\n    local: true\n    breaker: { enabled: false }\n",
    );
    let frontier_yaml = upstream_yaml(
        "frontier",
        frontier,
        "{ input_per_mtok: 300, output_per_mtok: 0 }",
    );
    let entries: String = keys.iter().map(|k| k.yaml.as_str()).collect();
    format!(
        "upstreams:\n{local_yaml}{frontier_yaml}tiers:\n  - name: primitive\n    upstreams: [local, frontier]\n  - name: architecture\n    upstreams: [frontier]\nauth:\n  keys:\n{entries}  admin_key_sha256: {}\n  access: {{ metrics: admin }}\n{rest}",
        hash_hex("tg-admin-test")
    )
}

const ENDPOINTS: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/responses",
];

fn body(path: &str, model: &str, text: &str, stream: bool) -> String {
    let messages = json!([{"role": "user", "content": text}]);
    let v = match path {
        "/v1/chat/completions" => json!({"model": model, "messages": messages, "stream": stream}),
        "/v1/completions" => json!({"model": model, "prompt": text, "stream": stream}),
        "/v1/messages" => {
            json!({"model": model, "max_tokens": 64, "messages": messages, "stream": stream})
        }
        "/v1/messages/count_tokens" => json!({"model": model, "messages": messages}),
        _ => json!({"model": model, "input": text, "stream": stream}),
    };
    v.to_string()
}

fn bearer(k: &str) -> String {
    format!("Bearer {k}")
}

#[tokio::test]
async fn every_endpoint_takes_a_virtual_key_and_refuses_others() {
    let local = MockSpec::new().usage(10, 2, 0).start().await;
    let frontier = MockSpec::new().usage(10, 2, 0).start().await;
    let alice = key("alice", "payments", "");
    let gw = Gateway::start(&policy(&local, &frontier, &[&alice], "")).await;
    let wrong = generate().unwrap().expose().to_string();
    let mut bodies = Vec::new();
    for path in ENDPOINTS {
        let b = body(
            path,
            "primitive",
            "Write a function that reverses a list.",
            false,
        );
        let (s, h, missing) = post(&gw.url(path), b.clone(), &[]).await;
        assert_eq!(s, 401, "{path}: {}", String::from_utf8_lossy(&missing));
        assert!(h.get("retry-after").is_none());
        let v = common::json(&missing);
        if path.starts_with("/v1/messages") {
            assert_eq!(v["error"]["type"], "authentication_error", "{path}: {v}");
        } else {
            assert_eq!(v["error"]["code"], "invalid_api_key", "{path}: {v}");
        }
        let (s, _, unknown) = post(
            &gw.url(path),
            b.clone(),
            &[("authorization", &bearer(&wrong))],
        )
        .await;
        assert_eq!(s, 401, "{path}");
        let (s, _, ok) = post(
            &gw.url(path),
            b.clone(),
            &[("authorization", &bearer(&alice.key))],
        )
        .await;
        assert_eq!(s, 200, "{path}: {}", String::from_utf8_lossy(&ok));
        let (s, _, _) = post(&gw.url(path), b, &[("x-api-key", &alice.key)]).await;
        assert_eq!(s, 200, "{path} with x-api-key");
        bodies.extend([missing, unknown]);
    }
    // The gateway's own pages: /v1/models like a model endpoint, /metrics behind the
    // admin key, the probes open.
    let models = common::client()
        .request(
            http::Request::get(gw.url("/v1/models"))
                .header("authorization", bearer(&alice.key))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    assert_eq!(get(&gw.url("/v1/models")).await.0, 401);
    assert_eq!(get(&gw.url("/healthz")).await.0, 200);
    let (s, denied) = get(&gw.url("/metrics")).await;
    assert_eq!(s, 401);
    bodies.push(denied);
    let metrics = admin_metrics(&gw).await;
    assert_eq!(
        metric(&metrics, "tiergate_auth_failures_total{reason=\"missing\"}"),
        Some(ENDPOINTS.len() as f64 + 2.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "tiergate_team_requests_total{status_class=\"2xx\",team=\"payments\",tier=\"primitive\"}"
        ),
        Some(2.0 * ENDPOINTS.len() as f64)
    );
    for b in bodies {
        let text = String::from_utf8_lossy(&b);
        for leak in [alice.key.as_str(), &hash_hex(&alice.key), &wrong, "alice"] {
            assert!(!text.contains(leak), "{text}");
        }
    }
    assert_no_leak(
        &metrics,
        &[&alice.key, &hash_hex(&alice.key), &wrong, "alice"],
    );
}

async fn admin_metrics(gw: &Gateway) -> String {
    let resp = common::client()
        .request(
            http::Request::get(gw.url("/metrics"))
                .header("authorization", "Bearer tg-admin-test")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt;
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

fn assert_no_leak(text: &str, leaks: &[&str]) {
    for l in leaks {
        assert!(!text.contains(l), "{l} leaked");
    }
}

#[tokio::test]
async fn what_a_key_may_not_use_is_403_and_rates_are_429_with_retry_after() {
    let local = MockSpec::new().start().await;
    let frontier = MockSpec::new().start().await;
    let narrow = key(
        "narrow",
        "t",
        ", tiers: [primitive], upstreams: [local], rpm: 3",
    );
    let gw = Gateway::start(&policy(&local, &frontier, &[&narrow], "")).await;
    let auth = [("authorization", bearer(&narrow.key))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let chat = |model: &str| body("/v1/chat/completions", model, "hello there", false);
    let (s, _, b) = post(&gw.url("/v1/chat/completions"), chat("architecture"), &auth).await;
    assert_eq!(s, 403, "{}", String::from_utf8_lossy(&b));
    assert_eq!(common::json(&b)["error"]["code"], "permission_denied");
    let (s, _, _) = post(&gw.url("/v1/chat/completions"), chat("frontier"), &auth).await;
    assert_eq!(s, 403, "an upstream it may not reach");
    let (s, h, _) = post(&gw.url("/v1/chat/completions"), chat("primitive"), &auth).await;
    assert_eq!(
        (s.as_u16(), h["x-tiergate-upstream"].to_str().unwrap()),
        (200, "local")
    );
    // Three requests a minute: the 403s counted, this was the third.
    let (s, h, b) = post(&gw.url("/v1/chat/completions"), chat("primitive"), &auth).await;
    assert_eq!(s, 429, "{}", String::from_utf8_lossy(&b));
    assert_eq!(common::json(&b)["error"]["code"], "rate_limit_exceeded");
    let wait: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&wait), "{wait}");
    assert!(frontier.requests().is_empty());
    let m = admin_metrics(&gw).await;
    assert_eq!(
        metric(&m, "tiergate_team_denied_total{reason=\"rpm\",team=\"t\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "tiergate_team_denied_total{reason=\"forbidden\",team=\"t\"}"
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn budgets_are_spent_once_then_refused_or_downgraded() {
    // The frontier reports 1000 prompt tokens at $300 per million: $0.30 a request.
    let local = MockSpec::new().usage(1000, 0, 0).start().await;
    let frontier = MockSpec::new().usage(1000, 0, 0).start().await;
    let pay = key("pay-ci", "pay", ", budget_usd: 1.0");
    let ops = key("ops-ci", "ops", ", budget_usd: 0.5");
    let teams = "teams:\n  - { name: ops, over_budget: downgrade }\n";
    let gw = Gateway::start(&policy(&local, &frontier, &[&pay, &ops], teams)).await;
    let ask = |k: &Key| {
        let url = gw.url("/v1/chat/completions");
        let b = body(
            "/v1/chat/completions",
            "architecture",
            "Plan the migration.",
            false,
        );
        let auth = bearer(&k.key);
        async move { post(&url, b, &[("authorization", &auth)]).await }
    };
    // A reservation is the prompt's estimate (cents): four fit under the dollar before the
    // settled spend ($0.90) leaves no room; the fourth's real cost goes beyond it once.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (s, _, b) = ask(&pay).await;
        if s == 429 {
            assert_eq!(common::json(&b)["error"]["code"], "insufficient_quota");
        }
        statuses.push(s.as_u16());
        // Settlement runs when the request ends, off the hot path.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    let m = admin_metrics(&gw).await;
    let used = metric(&m, "tiergate_team_budget_used_usd{team=\"pay\"}").unwrap();
    assert!((used - 1.2).abs() < 1e-6, "{used}");
    assert_eq!(
        metric(&m, "tiergate_team_budget_left_usd{team=\"pay\"}"),
        Some(0.0)
    );
    // ops downgrades: two at the frontier, then the primitive tier's free upstream.
    let mut upstreams = Vec::new();
    for _ in 0..4 {
        let (s, h, _) = ask(&ops).await;
        assert_eq!(s, 200);
        upstreams.push(format!(
            "{}/{}",
            h["x-tiergate-upstream"].to_str().unwrap(),
            h["x-tiergate-reason"].to_str().unwrap()
        ));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        upstreams[..2],
        ["frontier/model_tier", "frontier/model_tier"]
    );
    assert_eq!(upstreams[2..], ["local/budget", "local/budget"]);
    assert_eq!(frontier.requests().len(), 6);
}

#[tokio::test]
async fn secrets_never_reach_the_frontier_on_any_endpoint() {
    let local = MockSpec::new().status(500).start().await;
    let frontier = MockSpec::new().start().await;
    let k = key("dev", "web", "");
    let gw = Gateway::start(&policy(&local, &frontier, &[&k], "")).await;
    let auth = bearer(&k.key);
    let text = format!(
        "Deploy with token {} and split the monolith into services.",
        secret()
    );
    let mut bodies = Vec::new();
    for path in ENDPOINTS {
        for stream in [false, true] {
            for model in ["auto", "architecture", "frontier"] {
                let b = body(path, model, &text, stream);
                let (s, h, out) = post(&gw.url(path), b, &[("authorization", &auth)]).await;
                let what = format!("{path} stream={stream} model={model}");
                if *path == "/v1/messages/count_tokens" && model != "frontier" {
                    // Counted here: the local upstream cannot count, nothing is sent.
                    assert_eq!(s, 200, "{what}");
                    continue;
                }
                assert_eq!(s, 503, "{what}: {}", String::from_utf8_lossy(&out));
                assert_eq!(h["x-tiergate-reason"], "secret", "{what}");
                let msg = String::from_utf8_lossy(&out).to_string();
                assert!(
                    msg.contains("github-token") && msg.contains("local"),
                    "{what}: {msg}"
                );
                bodies.push(msg);
            }
        }
    }
    assert!(
        frontier.requests().is_empty(),
        "the frontier got {:?}",
        frontier.requests().len()
    );
    assert!(!local.requests().is_empty());
    let m = admin_metrics(&gw).await;
    assert!(
        metric(
            &m,
            "tiergate_secrets_total{action=\"local\",rule=\"github-token\"}"
        )
        .unwrap()
            >= 25.0
    );
    for b in bodies.iter().map(String::as_str).chain([m.as_str()]) {
        assert_no_leak(b, &[&secret(), &k.key, &hash_hex(&k.key)]);
    }
}

#[tokio::test]
async fn a_secret_is_answered_locally_or_blocked_and_local_only_keys_stay_local() {
    let local = MockSpec::new().start().await;
    let frontier = MockSpec::new().start().await;
    let k = key("dev", "web", "");
    let private = key("private", "web", ", local_only: true");
    let gw = Gateway::start(&policy(&local, &frontier, &[&k, &private], "")).await;
    let text = format!("Refactor the services; CI uses {}", secret());
    let b = body("/v1/chat/completions", "architecture", &text, true);
    let (s, h, _) = post(
        &gw.url("/v1/chat/completions"),
        b,
        &[("authorization", &bearer(&k.key))],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            h["x-tiergate-upstream"].to_str().unwrap(),
            h["x-tiergate-reason"].to_str().unwrap()
        ),
        ("local", "secret")
    );
    let b = body(
        "/v1/messages",
        "architecture",
        "Design the event bus.",
        false,
    );
    let (s, h, _) = post(&gw.url("/v1/messages"), b, &[("x-api-key", &private.key)]).await;
    assert_eq!(s, 200);
    assert_eq!(h["x-tiergate-reason"], "local_only");
    assert!(frontier.requests().is_empty());

    let blocking = policy(&local, &frontier, &[&k], "secrets: { action: block }\n");
    let gw = Gateway::start(&blocking).await;
    let b = body("/v1/responses", "auto", &text, false);
    let (s, h, out) = post(
        &gw.url("/v1/responses"),
        b,
        &[("authorization", &bearer(&k.key))],
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(h["x-tiergate-reason"], "secret");
    assert_eq!(common::json(&out)["error"]["code"], "secret_detected");
    assert_no_leak(&String::from_utf8_lossy(&out), &[&secret()]);
    assert!(frontier.requests().is_empty());
}
