//! The governor over the in-memory store: limits, budgets, settlement, the team gauges.

use super::config::{AuthConfig, TeamConfig};
use super::keys::{KeyEntry, hash_hex};
use super::*;
use crate::metrics::Metrics;

fn governance(keys: Vec<KeyEntry>, teams: Vec<TeamConfig>) -> Governance {
    let auth = AuthConfig {
        keys,
        ..AuthConfig::default()
    };
    Governance::compile(auth, teams, Default::default(), Default::default(), vec![]).unwrap()
}

fn key(name: &str, team: &str) -> KeyEntry {
    KeyEntry {
        name: name.into(),
        team: team.into(),
        sha256: hash_hex(&format!("tg-{name}")),
        ..KeyEntry::default()
    }
}

fn governor(m: &Metrics) -> Governor {
    Governor::new(
        &StateConfig::default(),
        m.state_backend_up.clone(),
        m.governance(),
    )
    .unwrap()
}

fn caller(g: &Governance, name: &str) -> Caller {
    Caller {
        key: g.keyring.lookup(&format!("tg-{name}")).cloned(),
    }
}

#[tokio::test]
async fn requests_per_minute_are_enforced_per_key() {
    let mut a = key("a", "t");
    a.rpm = Some(2);
    let g = governance(vec![a, key("b", "t")], vec![]);
    let m = Metrics::new();
    let gov = governor(&m);
    assert_eq!(m.state_backend_up.get(), 1);
    gov.admit(&caller(&g, "a")).await.unwrap();
    gov.admit(&caller(&g, "a")).await.unwrap();
    let e = gov.admit(&caller(&g, "a")).await.unwrap_err();
    assert!(
        matches!(
            e,
            Denied::RateLimited {
                limit: "requests per minute",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.retry_after().unwrap() >= 1);
    // Another key has its own (no) limit; an open caller has none.
    for _ in 0..5 {
        gov.admit(&caller(&g, "b")).await.unwrap();
        gov.admit(&Caller { key: None }).await.unwrap();
    }
    assert_eq!(m.team.denied.with_label_values(&["t", "rpm"]).get(), 1);
}

#[tokio::test]
async fn tokens_per_minute_count_what_requests_used() {
    let mut a = key("a", "t");
    a.tpm = Some(1000);
    let g = governance(vec![a], vec![]);
    let gov = governor(&Metrics::new());
    let c = caller(&g, "a");
    gov.admit(&c).await.unwrap();
    gov.settle(&g, &c, None, 0, 999).await;
    gov.admit(&c).await.unwrap();
    gov.settle(&g, &c, None, 0, 1).await;
    let e = gov.admit(&c).await.unwrap_err();
    assert!(
        matches!(
            e,
            Denied::RateLimited {
                limit: "tokens per minute",
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn budgets_of_key_and_team_and_their_gauges() {
    let mut a = key("a", "pay");
    a.budget_usd = Some(1.0);
    let b = key("b", "pay");
    let team = TeamConfig {
        name: "pay".into(),
        budget_usd: Some(1.5),
        over_budget: OverBudget::Downgrade,
    };
    let g = governance(vec![a, b], vec![team]);
    let m = Metrics::new();
    let gov = governor(&m);
    let used = || m.team.budget_used_usd.with_label_values(&["pay"]).get();
    let left = || m.team.budget_left_usd.with_label_values(&["pay"]).get();

    let r = gov.reserve(&g, &caller(&g, "a"), 600_000).await.unwrap();
    assert!((used() - 0.6).abs() < 1e-9 && (left() - 0.9).abs() < 1e-9);
    // It cost $0.40: settled, $0.60 of the key's dollar is left.
    gov.settle(&g, &caller(&g, "a"), r, 400_000, 10).await;
    assert!((used() - 0.4).abs() < 1e-9, "{}", used());
    let e = gov
        .reserve(&g, &caller(&g, "a"), 700_000)
        .await
        .unwrap_err();
    assert_eq!(e, Denied::OverBudget { scope: "key" });
    assert!(Governor::downgrades(&g, &caller(&g, "a")));
    // Key b has no budget of its own; the team's $1.50 holds it.
    let r = gov.reserve(&g, &caller(&g, "b"), 1_000_000).await.unwrap();
    assert!(r.as_ref().is_some_and(|r| r.micros() == 1_000_000));
    let e = gov
        .reserve(&g, &caller(&g, "b"), 200_000)
        .await
        .unwrap_err();
    assert_eq!(e, Denied::OverBudget { scope: "team" });
    assert!((left() - 0.1).abs() < 1e-9, "{}", left());
    // A hang-up without settlement keeps the reservation as spent.
    drop(r);
    gov.refresh_budgets(&g).await;
    assert!((used() - 1.4).abs() < 1e-9, "{}", used());
    assert_eq!(m.team.denied.with_label_values(&["pay", "budget"]).get(), 2);
    // Nobody to charge without a key.
    assert!(
        gov.reserve(&g, &Caller { key: None }, 5)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn reconfigure_keeps_local_counts() {
    let mut a = key("a", "t");
    a.rpm = Some(1);
    let g = governance(vec![a], vec![]);
    let gov = governor(&Metrics::new());
    gov.admit(&caller(&g, "a")).await.unwrap();
    gov.reconfigure(&StateConfig {
        prefix: "other:".into(),
        ..StateConfig::default()
    })
    .unwrap();
    // A new prefix is a new set of counters...
    gov.admit(&caller(&g, "a")).await.unwrap();
    gov.reconfigure(&StateConfig::default()).unwrap();
    // ...and the old one is still there.
    assert!(gov.admit(&caller(&g, "a")).await.is_err());
    assert!(!gov.is_shared());
}
