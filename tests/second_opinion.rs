#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The second opinion on uncertain decisions (`classifier.second_opinion`), over real
//! sockets: an in-band request asks the opinion mock, whose answer decides the tier; a slow
//! one is left behind at the deadline; out-of-band and explicit requests ask nothing; a
//! request carrying a secret, or from a `local_only` key, never reaches a second-opinion
//! upstream that is not local.

mod common;

use std::time::{Duration, Instant};

use common::prompts::*;
use common::spec::{MockSpec, chat_body, sample_sum, scrape, upstream_yaml};
use common::{Gateway, MockUpstream};
use tiergate::govern::keys::{generate, hash_hex};

struct Setup {
    gw: Gateway,
    local: MockUpstream,
    frontier: MockUpstream,
    opinion: MockUpstream,
}

/// `local` (marked local) serves primitive, `frontier` architecture; `opinion` (not local,
/// in no tier) gives the second opinion with `section`'s settings.
async fn setup(opinion: MockSpec, section: &str) -> Setup {
    setup_with(opinion, section, "").await
}

/// `setup` with more top-level policy (`auth:` for client keys).
async fn setup_with(opinion: MockSpec, section: &str, more: &str) -> Setup {
    let local = MockSpec::new().start().await;
    let frontier = MockSpec::new().start().await;
    let opinion = opinion.start().await;
    let local_yaml = upstream_yaml("local", &local, "{}")
        .replace("    price: {}\n", "    price: {}\n    local: true\n");
    let policy = format!(
        "upstreams:\n{local_yaml}{}{}tiers:\n  - {{ name: primitive, upstreams: [local] }}\n  - {{ name: architecture, upstreams: [frontier] }}\nclassifier:\n  threshold: 0.35\n  second_opinion: {{ upstream: opinion, {section} }}\n{more}",
        upstream_yaml("frontier", &frontier, "{}"),
        upstream_yaml("opinion", &opinion, "{}"),
    );
    Setup {
        gw: Gateway::start(&policy).await,
        local,
        frontier,
        opinion,
    }
}

/// The tier and reason headers of one chat request.
async fn ask(gw: &Gateway, model: &str, prompt: &str) -> (String, String) {
    ask_as(gw, model, prompt, None).await
}

/// `ask` with a client key.
async fn ask_as(gw: &Gateway, model: &str, prompt: &str, key: Option<&str>) -> (String, String) {
    let body = chat_body(model, prompt, false);
    let bearer = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    let (status, headers, _) =
        common::post(&gw.url("/v1/chat/completions"), body.to_string(), &headers).await;
    assert_eq!(status, 200, "{prompt}");
    let h = |name: &str| headers[name].to_str().unwrap().to_string();
    (h("x-tiergate-tier"), h("x-tiergate-reason"))
}

fn opinions(m: &str, tier: &str, outcome: &str) -> f64 {
    sample_sum(
        m,
        "tiergate_classifier_second_opinions_total",
        &[("tier", tier), ("outcome", outcome)],
    )
    .unwrap_or_else(|| panic!("no series {tier}/{outcome}:\n{m}"))
}

/// Every outcome of every tier is zero but the ones listed.
fn assert_counts(m: &str, nonzero: &[(&str, &str, f64)]) {
    for tier in ["primitive", "architecture"] {
        for outcome in ["agreed", "overturned", "timeout", "error", "skipped"] {
            let want = nonzero
                .iter()
                .find(|(t, o, _)| *t == tier && *o == outcome)
                .map_or(0.0, |x| x.2);
            assert_eq!(opinions(m, tier, outcome), want, "{tier}/{outcome}");
        }
    }
}

#[tokio::test]
async fn an_in_band_answer_decides_the_tier() {
    let s = setup(
        MockSpec::new().content(["ARCHITECTURE"]),
        "band: [0.25, 0.6], deadline: 5s",
    )
    .await;
    assert_counts(&scrape(&s.gw).await, &[]);

    // The classifier says primitive (0.330); the second opinion overturns it.
    let (tier, reason) = ask(&s.gw, "auto", UNSURE_PRIMITIVE).await;
    assert_eq!(
        (tier.as_str(), reason.as_str()),
        ("architecture", "second_opinion")
    );
    assert_eq!(s.local.requests().len(), 0);
    assert_eq!(s.frontier.requests().len(), 1);
    let asked = s.opinion.requests();
    assert_eq!(asked.len(), 1);
    let q = asked[0].json();
    assert_eq!(q["model"], "opinion-model");
    assert_eq!(q["temperature"], 0);
    assert!(q["max_tokens"].as_u64().unwrap() <= 8, "{q}");
    assert_eq!(q["stream"], false);
    let user = q["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains(UNSURE_PRIMITIVE), "{user}");
    // The client's real request went to the frontier, not the classification prompt.
    let real = s.frontier.requests()[0].json();
    assert_eq!(real["messages"][0]["content"], UNSURE_PRIMITIVE);

    // The classifier says architecture (0.423); the second opinion agrees.
    let (tier, reason) = ask(&s.gw, "auto", UNSURE_ARCHITECTURE).await;
    assert_eq!(
        (tier.as_str(), reason.as_str()),
        ("architecture", "classifier_architecture")
    );
    assert_eq!(s.opinion.requests().len(), 2);

    let m = scrape(&s.gw).await;
    assert_counts(
        &m,
        &[
            ("architecture", "overturned", 1.0),
            ("architecture", "agreed", 1.0),
        ],
    );
    let decided = sample_sum(
        &m,
        "tiergate_routing_decisions_total",
        &[("tier", "architecture"), ("reason", "second_opinion")],
    );
    assert_eq!(decided, Some(1.0));
    s.gw.shutdown().await;
}

#[tokio::test]
async fn out_of_band_and_explicit_requests_ask_nothing() {
    let s = setup(
        MockSpec::new().content(["ARCHITECTURE"]),
        "band: [0.25, 0.6]",
    )
    .await;
    assert_eq!(ask(&s.gw, "auto", CLEAR_PRIMITIVE).await.0, "primitive");
    assert_eq!(
        ask(&s.gw, "auto", CLEAR_ARCHITECTURE).await.0,
        "architecture"
    );
    // In the band, but the client chose the tier.
    assert_eq!(
        ask(&s.gw, "primitive", UNSURE_PRIMITIVE).await.0,
        "primitive"
    );
    assert_eq!(s.opinion.requests().len(), 0);
    assert_counts(&scrape(&s.gw).await, &[]);
    s.gw.shutdown().await;
}

#[tokio::test]
async fn a_slow_second_opinion_leaves_the_first_at_the_deadline() {
    let deadline = Duration::from_millis(300);
    let s = setup(
        MockSpec::new()
            .content(["ARCHITECTURE"])
            .first_byte_delay(Duration::from_secs(10)),
        "band: [0.25, 0.6], deadline: 300ms",
    )
    .await;
    let t0 = Instant::now();
    let (tier, reason) = ask(&s.gw, "auto", UNSURE_PRIMITIVE).await;
    let took = t0.elapsed();
    assert_eq!(
        (tier.as_str(), reason.as_str()),
        ("primitive", "classifier_primitive")
    );
    // It was waited for, up to the deadline and no longer (a generous bound).
    assert!(took >= deadline, "{took:?}");
    assert!(took < deadline + Duration::from_secs(2), "{took:?}");
    assert_eq!(s.local.requests().len(), 1);
    assert_counts(&scrape(&s.gw).await, &[("primitive", "timeout", 1.0)]);
    s.gw.shutdown().await;
}

#[tokio::test]
async fn an_answer_that_is_neither_word_leaves_the_first_opinion() {
    let s = setup(MockSpec::new().content(["I think so"]), "deadline: 5s").await;
    let (tier, reason) = ask(&s.gw, "auto", UNSURE_PRIMITIVE).await;
    assert_eq!(
        (tier.as_str(), reason.as_str()),
        ("primitive", "classifier_primitive")
    );
    assert_eq!(s.opinion.requests().len(), 1);
    assert_counts(&scrape(&s.gw).await, &[("primitive", "error", 1.0)]);
    s.gw.shutdown().await;
}

#[tokio::test]
async fn a_secret_never_reaches_a_second_opinion_that_is_not_local() {
    // The whole range is the band, so that the secret's words cannot move it out.
    let s = setup(
        MockSpec::new().content(["ARCHITECTURE"]),
        "band: [0.0, 1.0], deadline: 5s",
    )
    .await;
    let with_secret = format!("Counting Ways of Making Change. My token is {}", secret());
    let (tier, reason) = ask(&s.gw, "auto", &with_secret).await;
    assert_eq!((tier.as_str(), reason.as_str()), ("primitive", "secret"));
    assert_eq!(
        s.opinion.requests().len(),
        0,
        "the secret went to the opinion"
    );
    assert_eq!(s.frontier.requests().len(), 0);
    assert_eq!(s.local.requests().len(), 1);
    assert_counts(&scrape(&s.gw).await, &[("primitive", "skipped", 1.0)]);

    // The same request without the secret does ask (so the test above can fail).
    ask(&s.gw, "auto", UNSURE_PRIMITIVE).await;
    assert_eq!(s.opinion.requests().len(), 1);
    s.gw.shutdown().await;
}

#[tokio::test]
async fn a_local_only_key_never_reaches_a_second_opinion_that_is_not_local() {
    let (local_only, open) = (
        generate().unwrap().expose().to_string(),
        generate().unwrap().expose().to_string(),
    );
    let auth = format!(
        "auth:\n  keys:\n    - {{ name: dev, team: web, sha256: {}, local_only: true }}\n    - {{ name: ops, team: web, sha256: {} }}\n",
        hash_hex(&local_only),
        hash_hex(&open)
    );
    let s = setup_with(
        MockSpec::new().content(["ARCHITECTURE"]),
        "band: [0.25, 0.6], deadline: 5s",
        &auth,
    )
    .await;
    let (tier, reason) = ask_as(&s.gw, "auto", UNSURE_PRIMITIVE, Some(&local_only)).await;
    assert_eq!(
        (tier.as_str(), reason.as_str()),
        ("primitive", "local_only")
    );
    assert_eq!(
        s.opinion.requests().len(),
        0,
        "a local_only request went to the opinion"
    );
    assert_eq!(s.frontier.requests().len(), 0);
    assert_eq!(s.local.requests().len(), 1);
    assert_counts(&scrape(&s.gw).await, &[("primitive", "skipped", 1.0)]);

    // The same request with a key that may leave does ask (so the test above can fail).
    ask_as(&s.gw, "auto", UNSURE_PRIMITIVE, Some(&open)).await;
    assert_eq!(s.opinion.requests().len(), 1);
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_reports_what_the_second_opinion_changes() {
    let opinion = MockSpec::new().content(["ARCHITECTURE"]).start().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        format!(
            "upstreams:\n{}tiers:\n  - {{ name: primitive, upstreams: [opinion] }}\n  - {{ name: architecture, upstreams: [opinion] }}\nclassifier:\n  threshold: 0.35\n  second_opinion: {{ band: [0.25, 0.6], deadline: 5s }}\n",
            upstream_yaml("opinion", &opinion, "{}")
        ),
    )
    .unwrap();
    // Two in-band rows (one of each tier) and one clear row, which is not asked.
    let data = dir.path().join("rows.jsonl");
    let row = |id: &str, tier: &str, prompt: &str| {
        serde_json::json!({"id": id, "source": "s", "tier": tier, "prompt": prompt}).to_string()
    };
    std::fs::write(
        &data,
        [
            row("a", "primitive", UNSURE_PRIMITIVE),
            row("b", "architecture", UNSURE_ARCHITECTURE),
            row("c", "primitive", CLEAR_PRIMITIVE),
        ]
        .join("\n"),
    )
    .unwrap();
    // The binary blocks; the mock answers on the runtime's other thread.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tiergate"))
            .args([
                "eval",
                "--second-opinion",
                "--shipped",
                "--errors",
                "--policy",
            ])
            .arg(&policy)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(opinion.requests().len(), 2, "{text}");
    assert!(
        text.contains("rows 3, in band 2 (66.7%); answered 2, of them within the deadline 2"),
        "{text}"
    );
    // The first opinion had both in-band rows right; ARCHITECTURE for both costs one.
    assert!(
        text.contains("first opinion                                accuracy 1.000"),
        "{text}"
    );
    assert!(
        text.contains(
            "second opinion within the deadline           accuracy 0.500  architecture recall 1.000"
        ),
        "{text}"
    );
    assert!(
        text.contains("a truth primitive first primitive second architecture"),
        "{text}"
    );
}
