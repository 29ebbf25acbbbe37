//! Phrase-level cues, one group per case of the labeling rule (../shared/routing/LABELING.md).
//! A phrase is a run of words matched on stems ("users can log in" meets "user can login"
//! only if both are listed); a negator just before it ("without a database", "no login")
//! cancels it. Matching is one pass over the words with a small ring of the last ones.

use std::collections::HashMap;

mod table;

pub use table::{APP_GROUPS, PHRASES, PhraseGroup};

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
