//! Feedback on answers: which tier and upstream answered each request id (bounded, with
//! expiry), `POST /v1/feedback` read and counted against them, and two implicit signals
//! counted the same way: the same conversation asked again shortly after (a retry), and an
//! explicit choice of a frontier upstream or tier right after a local answer (an override).

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::routing::input::{Conversation, Role};

/// Who answered a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub tier: String,
    pub upstream: String,
    /// Answered by the local tier (the primitive tier's first upstream).
    pub local: bool,
    pub at: Instant,
}

/// A map with a bound on its size and an age limit: the oldest entries go first.
#[derive(Debug)]
struct Bounded<K> {
    map: HashMap<K, Served>,
    order: VecDeque<(Instant, K)>,
}

impl<K: Hash + Eq + Clone> Bounded<K> {
    fn new() -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn insert(&mut self, k: K, v: Served, capacity: usize, ttl: Duration) {
        let now = v.at;
        self.map.insert(k.clone(), v);
        self.order.push_back((now, k));
        self.trim(capacity, ttl, now);
    }

    fn trim(&mut self, capacity: usize, ttl: Duration, now: Instant) {
        while let Some((at, k)) = self.order.front() {
            let old = now.saturating_duration_since(*at) > ttl;
            if !old && self.order.len() <= capacity {
                break;
            }
            // Remove the entry only if it is the one this slot recorded (a key inserted
            // again later has a newer slot further back).
            if self.map.get(k).is_some_and(|s| s.at == *at) {
                self.map.remove(k);
            }
            self.order.pop_front();
        }
    }

    fn get(&self, k: &K, ttl: Duration, now: Instant) -> Option<&Served> {
        self.map
            .get(k)
            .filter(|s| now.saturating_duration_since(s.at) <= ttl)
    }
}

/// The signal a new request gives about the answer before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Retry,
    Override,
}

impl Signal {
    pub fn label(self) -> &'static str {
        match self {
            Signal::Retry => "retry",
            Signal::Override => "override",
        }
    }
}

pub struct FeedbackStore {
    ids: Mutex<Bounded<String>>,
    conversations: Mutex<Bounded<u64>>,
    capacity: usize,
    /// How long feedback may come after the answer.
    pub ttl: Duration,
    /// How soon after an answer the same conversation counts as a retry.
    pub retry_window: Duration,
}

impl Default for FeedbackStore {
    /// 100,000 answers kept for an hour; retries within two minutes.
    fn default() -> Self {
        FeedbackStore::new(100_000, Duration::from_secs(3600), Duration::from_secs(120))
    }
}

impl FeedbackStore {
    pub fn new(capacity: usize, ttl: Duration, retry_window: Duration) -> Self {
        FeedbackStore {
            ids: Mutex::new(Bounded::new()),
            conversations: Mutex::new(Bounded::new()),
            capacity: capacity.max(1),
            ttl,
            retry_window,
        }
    }

    /// Remembers who answered `request_id`.
    pub fn record(&self, request_id: &str, served: Served) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(request_id.to_string(), served, self.capacity, self.ttl);
        }
    }

    pub fn lookup(&self, request_id: &str, now: Instant) -> Option<Served> {
        let ids = self.ids.lock().ok()?;
        ids.get(&request_id.to_string(), self.ttl, now).cloned()
    }

    /// Notes a new answer to `conversation` (see `conversation_key`) and counts the signal
    /// it gives about the previous answer to the same conversation, if any: an explicit
    /// choice of a non-local upstream after a local answer is an override, anything else
    /// within the window a retry. `explicit`: the client named a tier or upstream.
    pub fn observe(
        &self,
        conversation: u64,
        served: Served,
        explicit: bool,
        metrics: &Metrics,
    ) -> Option<Signal> {
        let mut convs = self.conversations.lock().ok()?;
        let signal = convs
            .get(&conversation, self.retry_window, served.at)
            .map(|prev| {
                let s = if prev.local && explicit && !served.local {
                    Signal::Override
                } else {
                    Signal::Retry
                };
                metrics
                    .implicit_feedback
                    .with_label_values(&[&prev.tier, &prev.upstream, s.label()])
                    .inc();
                s
            });
        convs.insert(conversation, served, self.capacity, self.retry_window);
        signal
    }
}

/// A hash of the conversation without its trailing assistant turns: the same question asked
/// again (regenerated, or re-sent after a bad answer) has the same key.
pub fn conversation_key(conv: &Conversation<'_>) -> u64 {
    let mut turns = conv.turns.as_slice();
    while let Some((last, rest)) = turns.split_last()
        && last.role == Role::Assistant
    {
        turns = rest;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in turns {
        (t.role as u8).hash(&mut h);
        t.text.hash(&mut h);
    }
    h.finish()
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rating {
    Up,
    Down,
    Score(f64),
}

impl Rating {
    /// The value summed into `tiergate_feedback_score_total`: up 1, down 0.
    pub fn value(self) -> f64 {
        match self {
            Rating::Up => 1.0,
            Rating::Down => 0.0,
            Rating::Score(s) => s,
        }
    }

    /// The counter's label: a score of 0.5 or more counts as up.
    pub fn label(self) -> &'static str {
        if self.value() >= 0.5 { "up" } else { "down" }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub request_id: String,
    pub rating: Rating,
}

/// Comments are accepted but neither stored nor logged (they are user text); bounded all
/// the same.
const MAX_COMMENT: usize = 8 * 1024;

/// Reads a feedback body: `{"request_id", "rating": "up"|"down"|0..1, "comment"?}`.
pub fn parse(body: &[u8]) -> Result<Feedback, GatewayError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        request_id: Option<Value>,
        rating: Option<Value>,
        comment: Option<Value>,
    }
    let b: Body =
        serde_json::from_slice(body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let request_id = match b.request_id {
        None | Some(Value::Null) => return Err(GatewayError::MissingField("request_id")),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => s,
        Some(_) => {
            return Err(GatewayError::InvalidField {
                param: "request_id",
                message: "expected the x-tiergate-request-id of an answer (a string of 1 to 128 characters)".into(),
            });
        }
    };
    let bad_rating = || GatewayError::InvalidField {
        param: "rating",
        message: "expected \"up\", \"down\" or a number from 0 to 1".into(),
    };
    let rating = match b.rating {
        None | Some(Value::Null) => return Err(GatewayError::MissingField("rating")),
        Some(Value::String(s)) if s == "up" => Rating::Up,
        Some(Value::String(s)) if s == "down" => Rating::Down,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if (0.0..=1.0).contains(&v) => Rating::Score(v),
            _ => return Err(bad_rating()),
        },
        Some(_) => return Err(bad_rating()),
    };
    match b.comment {
        None | Some(Value::Null) => {}
        Some(Value::String(c)) if c.len() <= MAX_COMMENT => {}
        Some(_) => {
            return Err(GatewayError::InvalidField {
                param: "comment",
                message: format!("expected a string of at most {MAX_COMMENT} bytes"),
            });
        }
    }
    Ok(Feedback { request_id, rating })
}

/// `POST /v1/feedback`: reads the body, finds who answered, counts it. Ok means 204.
pub fn feedback(store: &FeedbackStore, metrics: &Metrics, body: &[u8]) -> Result<(), GatewayError> {
    let f = parse(body)?;
    let Some(served) = store.lookup(&f.request_id, Instant::now()) else {
        return Err(GatewayError::UnknownRequestId(f.request_id));
    };
    metrics
        .feedback
        .with_label_values(&[&served.tier, &served.upstream, f.rating.label()])
        .inc();
    metrics
        .feedback_score
        .with_label_values(&[&served.tier, &served.upstream])
        .inc_by(f.rating.value());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    use crate::routing::input::Turn;

    fn served(tier: &str, upstream: &str, local: bool, at: Instant) -> Served {
        Served {
            tier: tier.into(),
            upstream: upstream.into(),
            local,
            at,
        }
    }

    #[test]
    fn bodies_are_read_strictly() {
        assert_eq!(
            parse(br#"{"request_id":"r1","rating":"up"}"#)
                .unwrap()
                .rating,
            Rating::Up
        );
        assert_eq!(
            parse(br#"{"request_id":"r1","rating":0.25,"comment":"meh"}"#)
                .unwrap()
                .rating,
            Rating::Score(0.25)
        );
        assert_eq!(
            parse(br#"{"request_id":"r1","rating":1}"#).unwrap().rating,
            Rating::Score(1.0)
        );
        for (body, code, param) in [
            (&b"{not json"[..], "invalid_json", None),
            (
                br#"{"rating":"up"}"#,
                "missing_required_parameter",
                Some("request_id"),
            ),
            (
                br#"{"request_id":"r1"}"#,
                "missing_required_parameter",
                Some("rating"),
            ),
            (
                br#"{"request_id":"r1","rating":"meh"}"#,
                "invalid_value",
                Some("rating"),
            ),
            (
                br#"{"request_id":"r1","rating":1.5}"#,
                "invalid_value",
                Some("rating"),
            ),
            (
                br#"{"request_id":"r1","rating":-0.1}"#,
                "invalid_value",
                Some("rating"),
            ),
            (
                br#"{"request_id":"r1","rating":true}"#,
                "invalid_value",
                Some("rating"),
            ),
            (
                br#"{"request_id":7,"rating":"up"}"#,
                "invalid_value",
                Some("request_id"),
            ),
            (
                br#"{"request_id":"r1","rating":"up","comment":{}}"#,
                "invalid_value",
                Some("comment"),
            ),
            (
                br#"{"request_id":"r1","rating":"up","score":1}"#,
                "invalid_json",
                None,
            ),
            (br#"[]"#, "invalid_json", None),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.status(), 400, "{}", String::from_utf8_lossy(body));
            assert_eq!(
                (e.code(), e.param()),
                (code, param),
                "{}: {e}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn feedback_is_counted_for_who_answered() {
        let m = Metrics::new();
        let store = FeedbackStore::default();
        store.record("r1", served("primitive", "local", true, Instant::now()));
        feedback(&store, &m, br#"{"request_id":"r1","rating":"down"}"#).unwrap();
        feedback(&store, &m, br#"{"request_id":"r1","rating":0.9}"#).unwrap();
        let count = |r: &str| {
            m.feedback
                .with_label_values(&["primitive", "local", r])
                .get()
        };
        assert_eq!((count("up"), count("down")), (1, 1));
        assert!(
            (m.feedback_score
                .with_label_values(&["primitive", "local"])
                .get()
                - 0.9)
                .abs()
                < 1e-12
        );
        let e = feedback(&store, &m, br#"{"request_id":"nope","rating":"up"}"#).unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (404, "unknown_request_id"));
    }

    #[test]
    fn the_store_is_bounded_and_forgets_old_answers() {
        let t0 = Instant::now();
        let store = FeedbackStore::new(3, Duration::from_secs(60), Duration::from_secs(10));
        for i in 0..5 {
            store.record(
                &format!("r{i}"),
                served("t", "u", false, t0 + Duration::from_secs(i)),
            );
        }
        let now = t0 + Duration::from_secs(5);
        assert!(store.lookup("r0", now).is_none() && store.lookup("r1", now).is_none());
        assert!(store.lookup("r2", now).is_some() && store.lookup("r4", now).is_some());
        assert_eq!(store.ids.lock().unwrap().map.len(), 3);
        // Past the ttl: gone, even before anything new pushes it out.
        assert!(store.lookup("r4", t0 + Duration::from_secs(65)).is_none());
        // A new answer trims the expired ones.
        store.record(
            "late",
            served("t", "u", false, t0 + Duration::from_secs(200)),
        );
        assert_eq!(store.ids.lock().unwrap().map.len(), 1);
        // An id seen again keeps its newest answer.
        store.record(
            "late",
            served("t", "v", false, t0 + Duration::from_secs(201)),
        );
        store.record("x", served("t", "u", false, t0 + Duration::from_secs(202)));
        store.record("y", served("t", "u", false, t0 + Duration::from_secs(203)));
        assert_eq!(
            store
                .lookup("late", t0 + Duration::from_secs(203))
                .unwrap()
                .upstream,
            "v"
        );
    }

    fn conv<'a>(turns: &[(Role, &'a str)]) -> Conversation<'a> {
        Conversation {
            turns: turns
                .iter()
                .map(|(role, text)| Turn {
                    role: *role,
                    text: Cow::Borrowed(*text),
                    attachments: 0,
                })
                .collect(),
            ..Conversation::default()
        }
    }

    #[test]
    fn retries_and_overrides_are_seen() {
        let a = conv(&[(Role::System, "be brief"), (Role::User, "sort a list")]);
        let again = conv(&[
            (Role::System, "be brief"),
            (Role::User, "sort a list"),
            (Role::Assistant, "use sorted()"),
        ]);
        let other = conv(&[(Role::User, "sort a list, descending")]);
        assert_eq!(conversation_key(&a), conversation_key(&again));
        assert_ne!(conversation_key(&a), conversation_key(&other));
        let m = Metrics::new();
        let store = FeedbackStore::new(100, Duration::from_secs(60), Duration::from_secs(10));
        let t0 = Instant::now();
        let k = conversation_key(&a);
        assert_eq!(
            store.observe(k, served("primitive", "local", true, t0), false, &m),
            None
        );
        let s = store.observe(
            k,
            served("primitive", "local", true, t0 + Duration::from_secs(2)),
            false,
            &m,
        );
        assert_eq!(s, Some(Signal::Retry));
        let s = store.observe(
            k,
            served(
                "architecture",
                "anthropic",
                false,
                t0 + Duration::from_secs(4),
            ),
            true,
            &m,
        );
        assert_eq!(s, Some(Signal::Override));
        // Out of the window: a new question, not a retry.
        assert_eq!(
            store.observe(
                k,
                served("primitive", "local", true, t0 + Duration::from_secs(30)),
                false,
                &m
            ),
            None
        );
        let c = |s: &str| {
            m.implicit_feedback
                .with_label_values(&["primitive", "local", s])
                .get()
        };
        assert_eq!((c("retry"), c("override")), (1, 1));
    }
}
