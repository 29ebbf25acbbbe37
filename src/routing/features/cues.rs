//! The cue lexicon compiled for the walk: each cue word of `lexicon::GROUPS` keyed by its
//! hash (raw word first, stem second), and the phrase set of `phrases::PHRASES`.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::hash::{Identity, RAW_SEED, STEM_SEED, fnv};
use super::stem::stem;
use crate::routing::lexicon::GROUPS;
use crate::routing::phrases::PhraseSet;

/// A cue word's group and whether it is evidence of architecture on its own.
#[derive(Debug, Clone, Copy)]
pub struct Cue {
    pub group: u8,
    pub evidence: bool,
}

/// Cue word -> group, keyed by the word's hash (raw word first, stem second).
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    map: HashMap<u64, Cue, BuildHasherDefault<Identity>>,
    pub(super) phrases: PhraseSet,
}

/// A lexicon word without its marks: (word, exact only, evidence-less).
fn unmark(w: &str) -> (&str, bool, bool) {
    let weak = w.starts_with('~');
    let w = w.trim_start_matches('~');
    let exact = w.starts_with('=');
    (w.trim_start_matches('='), exact, weak)
}

impl Lexicon {
    pub fn new() -> Self {
        let mut map: HashMap<u64, Cue, BuildHasherDefault<Identity>> = HashMap::default();
        let cues = GROUPS.iter().enumerate().flat_map(|(g, group)| {
            group.words.iter().map(move |w| {
                let (word, exact, weak) = unmark(w);
                let cue = Cue {
                    group: g as u8,
                    evidence: group.evidence && !weak,
                };
                (word, exact, cue)
            })
        });
        for (word, exact, cue) in cues.clone() {
            if !exact {
                map.entry(fnv(STEM_SEED, stem(word).as_bytes()))
                    .or_insert(cue);
            }
        }
        for (word, _, cue) in cues {
            map.insert(fnv(RAW_SEED, word.as_bytes()), cue);
        }
        let phrases = PhraseSet::new(|w| fnv(STEM_SEED, stem(w).as_bytes()));
        Lexicon { map, phrases }
    }

    /// The cue of a word, by its raw hash (exact words) or its stem's hash.
    pub fn cue(&self, raw: u64, stemmed: u64) -> Option<Cue> {
        self.map
            .get(&raw)
            .or_else(|| self.map.get(&stemmed))
            .copied()
    }
}
