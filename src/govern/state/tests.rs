//! The same scenarios against both stores. The Redis ones need a real `redis-server`:
//! `.ci/run` starts one and sets `TIERGATE_TEST_REDIS_URL`; without it they say so and skip.

use super::*;
use crate::govern::limits::WINDOW_MS;

/// The test Redis, or None (and why, on stderr) when the environment has none.
#[allow(clippy::print_stderr)]
pub fn test_redis(test: &str) -> Option<RedisStore> {
    match std::env::var("TIERGATE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            Some(RedisStore::new(&Secret::new(url), Duration::from_secs(2)).unwrap())
        }
        _ => {
            eprintln!(
                "{test}: skipped: TIERGATE_TEST_REDIS_URL is not set (.ci/run starts a redis-server and sets it)"
            );
            None
        }
    }
}

fn unique(name: &str) -> String {
    format!("tiergate-test:{name}:{:016x}", fastrand::u64(..))
}

const T0: u64 = 1_000 * WINDOW_MS; // the start of a minute

async fn rates_are_counted_only_when_every_check_passes(s: &impl Store) {
    let base = unique("rpm");
    let tokens = unique("tpm");
    let rpm = |limit| RateCheck {
        key: base.clone(),
        limit,
        need: 1,
        add: 1,
    };
    for _ in 0..3 {
        assert_eq!(s.admit(&[rpm(3)], T0).await.unwrap(), Admit::Allowed);
    }
    match s.admit(&[rpm(3)], T0 + 1000).await.unwrap() {
        Admit::Limited { index, retry_after } => {
            assert_eq!(index, 0);
            // Full for this minute; in the next one 3 weigh under 2 after 20 s.
            assert_eq!(retry_after, Duration::from_secs(59 + 20));
        }
        other => panic!("{other:?}"),
    }
    // A tokens-per-minute check that fails stops the request check from counting.
    s.add(&tokens, 500, T0).await.unwrap();
    let tpm = RateCheck {
        key: tokens.clone(),
        limit: 500,
        need: 1,
        add: 0,
    };
    let out = s.admit(&[rpm(10), tpm.clone()], T0).await.unwrap();
    assert!(matches!(out, Admit::Limited { index: 1, .. }), "{out:?}");
    assert_eq!(s.admit(&[rpm(4)], T0).await.unwrap(), Admit::Allowed);
    assert!(matches!(
        s.admit(&[rpm(4)], T0).await.unwrap(),
        Admit::Limited { .. }
    ));
    // Half a minute into the next one, the previous 4 weigh 2.
    let later = T0 + WINDOW_MS + WINDOW_MS / 2;
    assert_eq!(s.admit(&[rpm(4)], later).await.unwrap(), Admit::Allowed);
    assert_eq!(s.admit(&[rpm(4)], later).await.unwrap(), Admit::Allowed);
    assert!(matches!(
        s.admit(&[rpm(4)], later).await.unwrap(),
        Admit::Limited { .. }
    ));
    // 500 tokens a minute ago weigh 250 now.
    assert_eq!(s.admit(&[tpm], later).await.unwrap(), Admit::Allowed);
}

async fn budgets_reserve_all_or_nothing_and_settle(s: &impl Store) {
    let key = unique("budget-key");
    let team = unique("budget-team");
    let lines = [
        BudgetLine {
            key: key.clone(),
            limit: 1_000,
        },
        BudgetLine {
            key: team.clone(),
            limit: 1_500,
        },
    ];
    let ttl = 60_000;
    assert_eq!(
        s.reserve(&lines, 600, ttl, T0).await.unwrap(),
        Reserve::Reserved {
            spent: vec![600, 600]
        }
    );
    // 600 more would pass the team's 1500 but not the key's 1000: nothing moves.
    assert_eq!(
        s.reserve(&lines, 600, ttl, T0).await.unwrap(),
        Reserve::Over {
            index: 0,
            spent: 600
        }
    );
    assert_eq!(
        s.spent(&[key.clone(), team.clone()], T0).await.unwrap(),
        vec![600, 600]
    );
    // It cost 100 less than reserved.
    let keys = [key.clone(), team.clone()];
    assert_eq!(
        s.settle(&keys, -100, ttl, T0).await.unwrap(),
        vec![500, 500]
    );
    assert_eq!(
        s.reserve(&lines, 500, ttl, T0).await.unwrap(),
        Reserve::Reserved {
            spent: vec![1000, 1000]
        }
    );
    assert!(matches!(
        s.reserve(&lines, 1, ttl, T0).await.unwrap(),
        Reserve::Over { index: 0, .. }
    ));
}

/// Many reservations at once against one budget that holds exactly `fits` of them:
/// exactly `fits` succeed, wherever they come from.
async fn the_last_dollar_is_spent_once(stores: &[&impl Store]) {
    let key = unique("last-dollar");
    let lines = [BudgetLine {
        key: key.clone(),
        limit: 10_000_000,
    }];
    let attempts = 64;
    let futures = (0..attempts).map(|i| {
        let s = stores[i % stores.len()];
        let lines = lines.clone();
        async move { s.reserve(&lines, 1_000_000, 60_000, T0).await.unwrap() }
    });
    let results = futures_util::future::join_all(futures).await;
    let won = results
        .iter()
        .filter(|r| matches!(r, Reserve::Reserved { .. }))
        .count();
    assert_eq!(won, 10, "{results:?}");
    assert_eq!(stores[0].spent(&[key], T0).await.unwrap(), vec![10_000_000]);
}

#[tokio::test]
async fn memory_store_rates() {
    rates_are_counted_only_when_every_check_passes(&Memory::default()).await;
}

#[tokio::test]
async fn memory_store_budgets() {
    budgets_reserve_all_or_nothing_and_settle(&Memory::default()).await;
    let m = Memory::default();
    the_last_dollar_is_spent_once(&[&m]).await;
}

#[tokio::test]
async fn memory_counters_expire() {
    let m = Memory::default();
    m.settle(&["k".into()], 5, 1000, T0).unwrap();
    assert_eq!(m.spent(&["k".into()], T0 + 999).unwrap(), vec![5]);
    assert_eq!(m.spent(&["k".into()], T0 + 1000).unwrap(), vec![0]);
}

#[tokio::test]
async fn redis_store_rates() {
    let Some(r) = test_redis("redis_store_rates") else {
        return;
    };
    rates_are_counted_only_when_every_check_passes(&r).await;
}

#[tokio::test]
async fn redis_store_budgets() {
    let Some(r) = test_redis("redis_store_budgets") else {
        return;
    };
    budgets_reserve_all_or_nothing_and_settle(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_connections_spend_the_last_dollar_once() {
    let (Some(a), Some(b)) = (
        test_redis("redis_two_connections_spend_the_last_dollar_once"),
        test_redis("redis_two_connections_spend_the_last_dollar_once"),
    ) else {
        return;
    };
    the_last_dollar_is_spent_once(&[&a, &b]).await;
}

fn dead_redis(on_failure: OnFailure) -> (State, IntGauge) {
    // A port that was free a moment ago: nothing answers there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let up = IntGauge::new("tiergate_state_backend_up", "test").unwrap();
    let config = StateConfig {
        redis_url: Secret::new(format!("redis://127.0.0.1:{port}/0")),
        on_failure,
        timeout: Duration::from_millis(200),
        ..StateConfig::default()
    };
    let state = State::new(config, Arc::new(Memory::default()), up.clone()).unwrap();
    (state, up)
}

#[tokio::test]
async fn unreachable_redis_fails_open_into_local_counts() {
    let (state, up) = dead_redis(OnFailure::Open);
    assert_eq!(up.get(), 1);
    let check = [RateCheck {
        key: "k".into(),
        limit: 1,
        need: 1,
        add: 1,
    }];
    let (out, served) = state
        .run(|r| r.admit(&check, T0), |m| m.admit(&check, T0))
        .await
        .unwrap();
    assert_eq!((out, served), (Admit::Allowed, Served::Local));
    assert_eq!(up.get(), 0);
    // Counted locally: the second is refused by this process's own count.
    let (out, _) = state
        .run(|r| r.admit(&check, T0), |m| m.admit(&check, T0))
        .await
        .unwrap();
    assert!(matches!(out, Admit::Limited { .. }), "{out:?}");
}

#[tokio::test]
async fn unreachable_redis_fails_closed() {
    let (state, up) = dead_redis(OnFailure::Closed);
    let started = Instant::now();
    let out = state.run(|r| r.spent(&[], T0), |m| m.spent(&[], T0)).await;
    // An empty MGET is answered without Redis; a real one is not.
    assert!(out.is_ok());
    let keys = ["k".to_string()];
    let out = state
        .run(|r| r.spent(&keys, T0), |m| m.spent(&keys, T0))
        .await;
    assert!(out.is_err());
    assert_eq!(up.get(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the timeout"
    );
}

#[tokio::test]
async fn state_without_redis_is_local_and_up() {
    let up = IntGauge::new("tiergate_state_backend_up", "test").unwrap();
    let state = State::new(StateConfig::default(), Arc::default(), up.clone()).unwrap();
    assert!(!state.is_shared());
    let keys = ["k".to_string()];
    let (v, served) = state
        .run(|r| r.spent(&keys, T0), |m| m.spent(&keys, T0))
        .await
        .unwrap();
    assert_eq!((v, served, up.get()), (vec![0], Served::Local, 1));
}

#[test]
fn counter_names_are_the_key_and_its_minute() {
    for (minute, want) in [(0, "k:0"), (7, "k:7"), (29_416_123, "k:29416123")] {
        assert_eq!(RateCheck::key_at("k", minute), want);
    }
    assert_eq!(
        RateCheck::key_at("tg:rpm:a", u64::MAX),
        format!("tg:rpm:a:{}", u64::MAX)
    );
    assert_eq!(concat(&["a", ":", "", "bc"]), "a:bc");
}
