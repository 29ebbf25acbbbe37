//! Phrase-level cues, one group per case of the labeling rule (../shared/routing/LABELING.md).
//! A phrase is a run of words matched on stems ("users can log in" meets "user can login"
//! only if both are listed); a negator just before it ("without a database", "no login")
//! cancels it. Matching is one pass over the words with a small ring of the last ones.

use std::collections::HashMap;

/// What a group of phrases is evidence of.
pub struct PhraseGroup {
    pub name: &'static str,
    pub phrases: &'static [&'static str],
}

/// The application cases (its own store, accounts, several users, a server, payments):
/// several of them together make a multi-component application
/// (rule case 3); one alone does not.
pub const APP_GROUPS: usize = 5;

pub const PHRASES: &[PhraseGroup] = &[
    PhraseGroup {
        name: "app_persistence",
        phrases: &[
            "database",
            "databases",
            "db",
            "datastore",
            "data store",
            "persist",
            "persists",
            "persisted",
            "persistence",
            "persistent storage",
            "stored on the server",
            "saved on the server",
            "server side storage",
            "cloud storage",
            "mongodb",
            "firebase",
            "postgres",
            "postgresql",
            "mysql",
            "sqlite",
            "indexeddb",
            "redis",
            "dynamodb",
            "supabase",
        ],
    },
    PhraseGroup {
        name: "app_accounts",
        phrases: &[
            "log in",
            "logs in",
            "login",
            "logged in",
            "log out",
            "logout",
            "sign in",
            "signs in",
            "signin",
            "sign up",
            "signs up",
            "signup",
            "create an account",
            "create account",
            "register an account",
            "register for an account",
            "user account",
            "user accounts",
            "their account",
            "account registration",
            "registered users",
            "authentication",
            "authenticated",
            "authenticate",
            "authorization",
            "oauth",
            "sso",
            "password reset",
            "user roles",
            "roles and permissions",
            "permissions",
            "admin panel",
            "admin dashboard",
            "admin page",
            "administrator",
            "administrative",
            "moderator",
            "moderators",
            "user profile",
            "user profiles",
            "each user",
            "per user",
        ],
    },
    PhraseGroup {
        name: "app_multi_user",
        phrases: &[
            "real time",
            "realtime",
            "websocket",
            "websockets",
            "web sockets",
            "socket io",
            "multiplayer",
            "multi user",
            "other users",
            "all users",
            "all the users",
            "multiple users",
            "between users",
            "users can chat",
            "chat with",
            "chat room",
            "chat rooms",
            "collaborate",
            "collaborative",
            "collaboration",
            "invite friends",
            "invite other",
            "followers",
            "follow other",
            "friends list",
            "live updates",
            "push notifications",
            "notify users",
            "sync across",
            "synced across",
            "synchronize",
            "synchronized",
            "shared with other",
            "news feed",
            "each other s",
        ],
    },
    PhraseGroup {
        name: "app_commerce",
        phrases: &[
            "shopping cart",
            "add to cart",
            "checkout",
            "place an order",
            "place orders",
            "order history",
            "purchase history",
            "online store",
            "online shop",
            "ecommerce",
            "e commerce",
            "accept payments",
            "take payments",
            "process payments",
            "online payments",
            "payment gateway",
            "payment processing",
            "stripe",
            "paypal",
        ],
    },
    PhraseGroup {
        name: "app_server",
        phrases: &[
            "backend",
            "back end",
            "server side",
            "web server",
            "own server",
            "the server",
            "a server",
            "api server",
            "full stack",
            "fullstack",
            "rest api",
            "restful api",
            "graphql api",
            "api endpoint",
            "api endpoints",
            "build an api",
            "expose an api",
            "routes exposed",
            "microservice",
            "microservices",
            "mern",
            "mean stack",
            "deploy",
            "deployed",
            "hosting",
            "heroku",
            "presentation layer",
            "admin dashboard",
        ],
    },
    PhraseGroup {
        name: "phrase_system",
        phrases: &[
            "system design",
            "design a system",
            "design the system",
            "design the architecture",
            "the architecture",
            "architecture for",
            "data model and services",
            "design the data model",
            "several services",
            "multiple services",
            "three services",
            "two services",
            "our services",
            "between services",
            "service mesh",
            "message queue",
            "message broker",
            "event bus",
            "load balancer",
            "load balancing",
            "rate limiter",
            "rate limiting",
            "high availability",
            "highly available",
            "fault tolerant",
            "disaster recovery",
            "zero downtime",
            "horizontal scaling",
            "autoscaling",
            "auto scaling",
            "scale to",
            "millions of users",
            "million users",
            "requests per second",
            "ci cd",
            "ci pipeline",
            "deployment pipeline",
            "infrastructure as code",
            "kubernetes cluster",
            "docker compose",
            "production environment",
            "staging environment",
            "should we use",
            "should we adopt",
            "should we move",
            "which database",
            "which framework",
            "which cloud",
            "choose between",
            "choosing between",
            "decide between",
            "we need to decide",
            "we need to choose",
            "we have decided",
            "trade offs",
            "pros and cons",
            "our team",
            "the team",
            "across teams",
            "our platform",
            "our infrastructure",
            "our stack",
        ],
    },
    PhraseGroup {
        name: "phrase_codebase",
        phrases: &[
            "steps to reproduce",
            "to reproduce",
            "expected behavior",
            "expected behaviour",
            "actual behavior",
            "actual behaviour",
            "current behavior",
            "current behaviour",
            "describe the bug",
            "feature request",
            "is your feature request",
            "this pr",
            "this pull request",
            "our codebase",
            "the codebase",
            "this codebase",
            "existing codebase",
            "across the codebase",
            "throughout the codebase",
            "our repo",
            "our repository",
            "this repository",
            "the repository",
            "across all",
            "across the app",
            "everywhere in",
            "throughout the",
            "whole app",
            "entire app",
            "whole project",
            "entire project",
            "across the project",
            "every module",
            "all modules",
            "across modules",
            "multiple modules",
            "several modules",
            "many files",
            "multiple files",
            "migrate from",
            "migrate to",
            "migrate our",
            "migrating from",
            "migrating to",
            "migration from",
            "migration to",
            "port the project",
            "upgrade from",
            "move from",
            "switch from",
            "the monolith",
            "our monolith",
            "into its own package",
            "into a separate package",
            "into a plugin",
            "into its own service",
            "into a separate service",
            "add support for",
            "support for",
            "in the settings",
            "config option",
            "configuration option",
            "breaking change",
            "backwards compatible",
            "backward compatible",
        ],
    },
    PhraseGroup {
        name: "phrase_artifact",
        phrases: &[
            "write a function",
            "write a python function",
            "write a program",
            "write a script",
            "write a class",
            "write a regex",
            "write a query",
            "write a sql query",
            "write a method",
            "write a unit test",
            "write unit tests",
            "write tests for",
            "a function that",
            "a function to",
            "a function which",
            "a class that",
            "a method that",
            "a component that",
            "a regex",
            "regular expression",
            "a single file",
            "single file",
            "one file",
            "self contained",
            "a small script",
            "a simple program",
            "given a",
            "given an",
            "given two",
            "return the",
            "returns the",
            "this function",
            "the following function",
            "the following code",
            "this code",
            "this snippet",
            "this file",
            "this stack trace",
            "this error",
            "this query",
            "this regex",
            "this component",
            "this class",
            "this method",
            "time complexity",
            "test cases",
        ],
    },
    PhraseGroup {
        name: "phrase_external_api",
        phrases: &[
            "external api",
            "public api",
            "third party api",
            "free api",
            "from an api",
            "from the api",
            "api key",
            "using the api",
            "call the api",
            "calls the api",
            "fetch data from",
            "fetches data from",
            "data from the",
            "web scraping",
            "scrape",
            "scraping",
            "s api",
            "an api such as",
            "using an api",
            "use an api",
            "uses an api",
            "api to retrieve",
            "api to fetch",
            "api to get",
            "api to search",
            "api to look up",
            "api to query",
            "api to pull",
            "api returns",
            "returned from the api",
            "returned by the api",
        ],
    },
];

/// Words that cancel a phrase when they come shortly before it.
fn is_negator(w: &str) -> bool {
    matches!(
        w,
        "no" | "not" | "without" | "never" | "nor" | "don" | "doesn" | "isn" | "aren" | "avoid"
    )
}

/// How many words before a phrase are looked at for a negator.
const NEGATION_WINDOW: usize = 4;
const RING: usize = 16;

/// A phrase as the stem hashes of its earlier words (last word excluded), and its group.
#[derive(Debug, Clone)]
struct Entry {
    before: Vec<u64>,
    group: u8,
}

/// Phrases indexed by their last word's stem hash.
#[derive(Debug, Clone, Default)]
pub struct PhraseSet {
    by_last: HashMap<u64, Vec<Entry>, std::hash::BuildHasherDefault<super::features::Identity>>,
}

impl PhraseSet {
    /// `hash` must be the hash the feature walk gives a word's stem.
    pub fn new(hash: impl Fn(&str) -> u64) -> PhraseSet {
        let mut set = PhraseSet::default();
        for (g, group) in PHRASES.iter().enumerate() {
            for p in group.phrases {
                let words: Vec<u64> = p.split(' ').map(&hash).collect();
                let Some((&last, before)) = words.split_last() else {
                    continue;
                };
                debug_assert!(before.len() < RING - NEGATION_WINDOW);
                set.by_last.entry(last).or_default().push(Entry {
                    before: before.to_vec(),
                    group: g as u8,
                });
            }
        }
        set
    }
}

/// Counts phrase matches per group over a stream of words.
pub struct Matcher<'a> {
    set: &'a PhraseSet,
    ring: [u64; RING],
    negator: [bool; RING],
    seen: usize,
    pub counts: [u32; PHRASES_LEN],
}

pub const PHRASES_LEN: usize = 9;
/// The group of phrases that say the data come from someone else's API.
const EXTERNAL_API: usize = PHRASES_LEN - 1;
const _: () = assert!(PHRASES.len() == PHRASES_LEN);

impl<'a> Matcher<'a> {
    pub fn new(set: &'a PhraseSet) -> Self {
        Matcher {
            set,
            ring: [0; RING],
            negator: [false; RING],
            seen: 0,
            counts: [0; PHRASES_LEN],
        }
    }

    /// A break in the text (a heading): phrases do not run across it.
    pub fn reset(&mut self) {
        self.seen = 0;
    }

    /// The next word: its stem's hash and its lower-case form.
    pub fn push(&mut self, stem_hash: u64, lower: &str) {
        let at = self.seen % RING;
        self.ring[at] = stem_hash;
        self.negator[at] = is_negator(lower);
        self.seen += 1;
        let Some(entries) = self.set.by_last.get(&stem_hash) else {
            return;
        };
        // Words before the current one, newest first: back(1) is the previous word.
        let back = |k: usize| self.ring[(self.seen - 1 - k) % RING];
        let mut matched = [false; PHRASES_LEN];
        for e in entries {
            let n = e.before.len();
            if n >= self.seen || matched[e.group as usize] {
                continue;
            }
            if e.before
                .iter()
                .rev()
                .enumerate()
                .all(|(k, h)| back(k + 1) == *h)
            {
                let start = n + 1;
                let negated = (start..(start + NEGATION_WINDOW).min(self.seen))
                    .any(|k| self.negator[(self.seen - 1 - k) % RING]);
                if !negated {
                    matched[e.group as usize] = true;
                }
            }
        }
        for (c, m) in self.counts.iter_mut().zip(matched) {
            *c += u32::from(m);
        }
    }

    /// How many of the application cases occur.
    pub fn app_components(&self) -> usize {
        self.counts[..APP_GROUPS].iter().filter(|&&c| c > 0).count()
    }

    /// The application cases the app itself needs. An app built on someone else's API
    /// (rule: a single-page app that calls an external API is primitive) gets one case fewer:
    /// the followers, repositories or records it shows live on that service, not its own.
    pub fn app_parts(&self) -> usize {
        let external = self.counts[EXTERNAL_API] > 0;
        self.app_components().saturating_sub(usize::from(external))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(w: &str) -> u64 {
        w.bytes()
            .fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)))
    }

    fn counts(text: &str) -> [u32; PHRASES_LEN] {
        let set = PhraseSet::new(h);
        let mut m = Matcher::new(&set);
        for w in text.split(' ') {
            m.push(h(w), w);
        }
        m.counts
    }

    fn group(name: &str) -> usize {
        PHRASES.iter().position(|g| g.name == name).unwrap()
    }

    #[test]
    fn phrases_match_whole_runs_of_words() {
        let c = counts("users can log in and chat with other users in real time");
        assert_eq!(c[group("app_accounts")], 1);
        assert_eq!(
            c[group("app_multi_user")],
            3,
            "chat with, other users, real time"
        );
        let c = counts("write a log file in time");
        assert_eq!(c[group("app_accounts")], 0);
        assert_eq!(c[group("app_multi_user")], 0);
    }

    #[test]
    fn negators_cancel_a_phrase() {
        let c = counts("a todo list without a database");
        assert_eq!(c[group("app_persistence")], 0);
        let c = counts("there is no need for a database here");
        assert_eq!(c[group("app_persistence")], 0);
        let c = counts("no I want a full page with a database");
        assert_eq!(c[group("app_persistence")], 1, "the negator is too far");
        let c = counts("no login required but a database");
        assert_eq!(c[group("app_accounts")], 0);
        assert_eq!(c[group("app_persistence")], 1);
    }

    #[test]
    fn app_components_count_distinct_cases() {
        let set = PhraseSet::new(h);
        let mut m = Matcher::new(&set);
        for w in "store posts in a database and let users log in via the backend".split(' ') {
            m.push(h(w), w);
        }
        assert_eq!(m.app_components(), 3);
    }

    fn parts(text: &str) -> usize {
        let set = PhraseSet::new(h);
        let mut m = Matcher::new(&set);
        for w in text.split(' ') {
            m.push(h(w), w);
        }
        m.app_parts()
    }

    #[test]
    fn an_app_on_someone_elses_api_needs_one_part_more() {
        assert_eq!(
            parts("each user logs in and the lists are saved in a database"),
            2
        );
        assert_eq!(
            parts("use an api to retrieve repos and followers and persist the theme"),
            1,
            "followers and repos live on the other service"
        );
        assert_eq!(parts("a shopping cart and checkout with stripe"), 1);
        assert_eq!(parts("a shopping cart and users can log in"), 2);
        assert_eq!(PHRASES[EXTERNAL_API].name, "phrase_external_api");
    }
}
