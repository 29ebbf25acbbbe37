//! The walk over a task's text: each word once, feeding the hashed n-grams to a visitor and
//! counting cue words, phrases, paths and code for the dense features.

use super::dense::{Extra, Slot, Values};
use super::hash::{CHAR_SEED, FIRST_SEED, RAW_SEED, STEM_SEED, fnv, index};
use super::paths::{is_path, may_be_path};
use super::stem::{is_stopword, stem};
use super::words::{each_word, normalise};
use super::{FeatureConfig, Kind, Lexicon, MAX_HASHED_BYTES, cut};
use crate::routing::artifact;
use crate::routing::evidence::{self, Evidence};
use crate::routing::lexicon::GROUPS;
use crate::routing::phrases::{Matcher, PHRASES};

/// The first groups of `GROUPS` are evidence for architecture, the rest for primitive.
const ARCH_GROUPS: usize = 7;
/// The first groups of `PHRASES` are evidence for architecture, the rest for primitive.
const ARCH_PHRASES: usize = 7;
/// Distinct paths counted at most.
const MAX_PATHS: usize = 64;

/// Dense features and counts of one text.
#[derive(Debug, Clone, Default)]
pub struct Dense {
    pub values: Values,
    /// Hashed features emitted, per kind (for normalisation).
    pub words: u32,
    pub chars: u32,
    /// Words and phrases that are the labeling rule's evidence for architecture.
    pub evidence: u32,
    /// Distinct application components named (see `phrases::APP_GROUPS`).
    pub app_parts: u32,
    /// Where the code the task needs lives (see `evidence`).
    pub evidence_of: Evidence,
}

/// What the walk counts besides the hashed features.
struct Counts {
    groups: Vec<u32>,
    evidence: u32,
    paths: Vec<u64>,
    code: bool,
}

/// Walks `text`, calling `visit(kind, index, token)` for each hashed feature (token is the
/// word for word unigrams, "" otherwise), and returns the dense features.
pub fn extract(
    text: &str,
    cfg: FeatureConfig,
    lexicon: &Lexicon,
    mut visit: impl FnMut(Kind, u32, &str),
) -> Dense {
    let text = cut(text, MAX_HASHED_BYTES);
    let bits = cfg.hash_bits;
    let mut n = Counts {
        groups: vec![0u32; GROUPS.len()],
        evidence: 0,
        paths: Vec::new(),
        code: text.contains("```") || text.contains("assert ") || text.contains(">>>"),
    };
    let (mut n_word_feats, mut n_char_feats) = (0u32, 0u32);
    let mut prev: Option<u64> = None;
    let mut lower = String::with_capacity(32);
    let mut first = true;
    let mut phrases = Matcher::new(&lexicon.phrases);
    for line in text.lines() {
        let t = line.trim_start();
        // Markdown headings are a source's layout ("# Introduction"), not its request.
        if t.starts_with('#') {
            prev = None;
            phrases.reset();
            continue;
        }
        if line.starts_with("    ") && t.contains(['(', '=', ';']) {
            n.code = true;
        }
        for chunk in line.split_ascii_whitespace() {
            if chunk.contains("://") {
                continue;
            }
            if may_be_path(chunk) && n.paths.len() < MAX_PATHS && is_path(chunk) {
                let h = fnv(RAW_SEED, chunk.as_bytes());
                if !n.paths.contains(&h) {
                    n.paths.push(h);
                }
            }
            each_word(chunk, |word| {
                normalise(word, &mut lower);
                let s = stem(&lower);
                let hs = fnv(STEM_SEED, s.as_bytes());
                let hr = fnv(RAW_SEED, lower.as_bytes());
                if let Some(c) = lexicon.cue(hr, hs) {
                    n.groups[c.group as usize] += 1;
                    n.evidence += u32::from(c.evidence);
                }
                phrases.push(hs, &lower);
                if first {
                    visit(Kind::Word, index(fnv(FIRST_SEED, s.as_bytes()), bits), "");
                    n_word_feats += 1;
                    first = false;
                }
                if cfg.stopwords && is_stopword(&lower) {
                    return;
                }
                visit(Kind::Word, index(hs, bits), s);
                n_word_feats += 1;
                if let Some(p) = prev {
                    visit(
                        Kind::Word,
                        index(p.rotate_left(23) ^ hs ^ 0x5bd1_e995, bits),
                        "",
                    );
                    n_word_feats += 1;
                }
                prev = Some(hs);
                if cfg.char_ngrams && lower.len() >= 4 {
                    n_char_feats += char_ngrams(lower.as_bytes(), bits, &mut visit);
                }
            });
        }
    }
    let question = text.trim_end().ends_with('?');
    let ev = evidence::read(text, artifact::read(text));
    dense(&n, &phrases, question, ev, n_word_feats, n_char_feats)
}

/// Padded 4-grams of a word ("^ser", "serv", ..., "ice$"), visited; returns how many.
fn char_ngrams(b: &[u8], bits: u32, visit: &mut impl FnMut(Kind, u32, &str)) -> u32 {
    let n = b.len() + 2;
    let at = |k: usize| {
        if k == 0 {
            b'^'
        } else if k == n - 1 {
            b'$'
        } else {
            b[k - 1]
        }
    };
    let mut emitted = 0;
    for k in 0..=n - 4 {
        let g = u32::from_le_bytes([at(k), at(k + 1), at(k + 2), at(k + 3)]);
        visit(Kind::Char, index(u64::from(g) ^ CHAR_SEED, bits), "");
        emitted += 1;
    }
    emitted
}

fn dense(
    n: &Counts,
    phrases: &Matcher<'_>,
    question: bool,
    ev: Evidence,
    words: u32,
    chars: u32,
) -> Dense {
    let ln1p = |c: u32| (1.0 + c as f32).ln();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let mut v = Values::default();
    for (g, &c) in n.groups.iter().enumerate() {
        v.set(Slot::Group(g), ln1p(c));
    }
    for (p, &c) in phrases.counts.iter().enumerate().take(PHRASES.len()) {
        v.set(Slot::Phrase(p), ln1p(c));
    }
    let arch: u32 = n.groups[..ARCH_GROUPS].iter().sum();
    let prim: u32 = n.groups[ARCH_GROUPS..].iter().sum();
    let variety = n.groups[..ARCH_GROUPS].iter().filter(|&&c| c > 0).count();
    v.set(
        Slot::Extra(Extra::ArchVariety),
        variety as f32 / ARCH_GROUPS as f32,
    );
    v.set(Slot::Extra(Extra::Paths), ln1p(n.paths.len() as u32));
    v.set(Slot::Extra(Extra::Code), flag(n.code));
    v.set(Slot::Extra(Extra::Question), flag(question));
    v.set(
        Slot::Extra(Extra::CueBalance),
        ((1.0 + arch as f32) / (1.0 + prim as f32)).ln(),
    );
    // One application case alone (a database, a login) is a small app; two or more are the
    // labeling rule's multi-component application.
    v.set(
        Slot::Extra(Extra::AppComponents),
        phrases.app_parts().saturating_sub(1) as f32,
    );
    // The labeling rule's specific reasons (services, stores, infrastructure, scale, an
    // existing codebase, an application's parts): architecture needs one of them.
    let evidence = n.evidence + phrases.counts[..ARCH_PHRASES].iter().sum::<u32>();
    v.set(Slot::Extra(Extra::NoEvidence), flag(evidence == 0));
    let x = |e: Extra| Slot::Extra(e);
    v.set(x(Extra::NamedProject), flag(ev.named()));
    v.set(x(Extra::ProjectIssue), flag(ev.project_issue()));
    v.set(x(Extra::ProductDefect), flag(ev.product_defect()));
    v.set(x(Extra::LibraryQuestion), flag(ev.library_question()));
    v.set(x(Extra::InPrompt), flag(ev.in_prompt()));
    v.set(x(Extra::IssueRefs), ln1p(u32::from(ev.marks.issue_refs)));
    v.set(x(Extra::Version), flag(ev.marks.versions > 0));
    v.set(x(Extra::IssueTemplate), ln1p(u32::from(ev.marks.template)));
    v.set(x(Extra::LibraryTrace), flag(ev.frames.library > 0));
    v.set(x(Extra::ScriptTrace), flag(ev.script_trace()));
    v.set(x(Extra::Ours), flag(ev.title.ours));
    v.set(x(Extra::PlainQuestion), flag(ev.plain_question()));
    Dense {
        evidence_of: ev,
        app_parts: phrases.app_parts() as u32,
        values: v,
        words,
        chars,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: FeatureConfig = FeatureConfig {
        hash_bits: 18,
        char_ngrams: true,
        norm_power: 0.35,
        stopwords: true,
    };

    fn group(d: &Dense, name: &str) -> f32 {
        let g = GROUPS.iter().position(|g| g.name == name).unwrap();
        d.values.get(Slot::Group(g))
    }

    #[test]
    fn cue_groups_count_the_labeling_rule_words() {
        let lex = Lexicon::new();
        let d = extract(
            "We need to deploy our services on Kubernetes with a Postgres database.",
            CFG,
            &lex,
            |_, _, _| {},
        );
        assert!(group(&d, "infrastructure") > 1.0, "deploy + kubernetes");
        assert!(group(&d, "datastore") > 1.0, "postgres + database");
        assert!(group(&d, "decision") > 1.0, "we + our");
        assert_eq!(group(&d, "algorithmic"), 0.0);
        let d = extract(
            "Write a function that returns the sum of a list of integers.",
            CFG,
            &lex,
            |_, _, _| {},
        );
        assert!(group(&d, "algorithmic") > 1.5);
        assert_eq!(group(&d, "infrastructure"), 0.0);
        assert_eq!(d.values.get(Slot::Extra(Extra::NoEvidence)), 1.0);
        assert_eq!(d.values.get(Slot::Extra(Extra::Question)), 0.0);
    }

    #[test]
    fn evidence_counts_the_labeling_rules_reasons_only() {
        let lex = Lexicon::new();
        let evidence = |t: &str| extract(t, CFG, &lex, |_, _, _| {}).evidence;
        // Code words, "this component", a file in a directory: none is a reason.
        for t in [
            "Add a dark mode toggle to this React component",
            "Convert this JS function to TypeScript",
            "Create a file named hello.txt in the current directory containing exactly the line: hello",
            "Implement an LRU cache class with a queue and an index.",
        ] {
            assert_eq!(evidence(t), 0, "{t}");
        }
        for t in [
            "Deploy the containers to our cluster.",
            "Migrate the codebase to Python 3.",
            "Refactor the authentication across all modules.",
            "Users can log in and chat in real time.",
        ] {
            assert!(evidence(t) > 0, "{t}");
        }
    }

    #[test]
    fn headings_and_urls_are_skipped_and_hashing_is_deterministic() {
        let lex = Lexicon::new();
        let mut a = Vec::new();
        extract(
            "# Introduction\nSee https://example.com/x for more",
            CFG,
            &lex,
            |k, i, _| a.push((k, i)),
        );
        let mut b = Vec::new();
        extract("See for more", CFG, &lex, |k, i, _| b.push((k, i)));
        assert_eq!(a, b);
    }

    #[test]
    fn feature_count_is_linear_in_size() {
        let lex = Lexicon::new();
        let unit = "Refactor the billing service to publish events on the bus. ";
        let count = |n: usize| {
            let mut k = 0usize;
            extract(&unit.repeat(n), CFG, &lex, |_, _, _| k += 1);
            k
        };
        let (small, big) = (count(10), count(100));
        assert!(big <= small * 10 + 10 && big >= small * 9, "{small} {big}");
    }
}
