//! Features of the task text: hashed word and character n-grams, plus named dense features
//! (cue groups from the labeling rule, paths, code, length). Linear in the text's size: each
//! byte is looked at a bounded number of times, and the n-grams go to a visitor rather than
//! into a vector, so scoring needs no allocation.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::lexicon::GROUPS;
use super::phrases::{Matcher, PHRASES, PhraseSet};

/// Hashed feature kinds, each normalised by its own count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Word,
    Char,
}

/// Names of the dense features, in order, after the cue groups and the phrase groups.
pub const EXTRA: &[&str] = &[
    "arch_variety",
    "paths",
    "code",
    "question",
    "cue_balance",
    "app_components",
    "no_evidence",
];

/// Number of dense features: one per cue group and phrase group, plus `EXTRA`.
pub fn dense_len() -> usize {
    GROUPS.len() + PHRASES.len() + EXTRA.len()
}

/// The name of dense feature `i`.
pub fn dense_name(i: usize) -> &'static str {
    if i < GROUPS.len() {
        GROUPS[i].name
    } else if i < GROUPS.len() + PHRASES.len() {
        PHRASES[i - GROUPS.len()].name
    } else {
        EXTRA
            .get(i - GROUPS.len() - PHRASES.len())
            .copied()
            .unwrap_or("?")
    }
}

/// The first groups of `GROUPS` are evidence for architecture, the rest for primitive.
const ARCH_GROUPS: usize = 7;
/// The first groups of `PHRASES` are evidence for architecture, the rest for primitive.
const ARCH_PHRASES: usize = 7;

/// Tasks longer than this are hashed up to here; the rest is still counted for paths.
pub const MAX_HASHED_BYTES: usize = 64 * 1024;

/// How text becomes hashed features; stored with the model so that training and serving agree.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureConfig {
    pub hash_bits: u32,
    pub char_ngrams: bool,
    /// Each hashed feature of a kind emitted n times weighs n^-norm_power (see `norm`).
    #[serde(default = "default_norm_power")]
    pub norm_power: f32,
    /// Function words ("the", "can", "you") are left out of the word n-grams: they carry a
    /// source's style, not the kind of task.
    #[serde(default)]
    pub stopwords: bool,
}

fn default_norm_power() -> f32 {
    0.35
}

/// A cue word's group and whether it is evidence of architecture on its own.
#[derive(Debug, Clone, Copy)]
struct Cue {
    group: u8,
    evidence: bool,
}

/// Cue word -> group, keyed by the word's hash (raw word first, stem second).
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    map: HashMap<u64, Cue, BuildHasherDefault<Identity>>,
    phrases: PhraseSet,
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

    fn cue(&self, raw: u64, stemmed: u64) -> Option<Cue> {
        self.map
            .get(&raw)
            .or_else(|| self.map.get(&stemmed))
            .copied()
    }
}

/// The hash is already a hash.
#[derive(Default)]
pub struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

const RAW_SEED: u64 = 0xcbf2_9ce4_8422_2325;
const STEM_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
const FIRST_SEED: u64 = 0x2545_f491_4f6c_dd1d;
const CHAR_SEED: u64 = 0x6a09_e667_f3bc_c909;

fn fnv(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn index(h: u64, bits: u32) -> u32 {
    (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as u32
}

/// A crude suffix stripper: enough to make "services"/"service" and "deploying"/"deployed" meet.
pub fn stem(w: &str) -> &str {
    const SUFFIXES: &[&str] = &[
        "ments", "ment", "ings", "ing", "ions", "ion", "ies", "ied", "ers", "er", "ed", "es", "s",
        "ly", "y", "e",
    ];
    for s in SUFFIXES {
        if w.len() >= s.len() + 4 && w.ends_with(s) {
            let rest = &w[..w.len() - s.len()];
            if *s == "s" && (rest.ends_with('s') || rest.ends_with('u')) {
                continue;
            }
            return rest;
        }
    }
    w
}

/// Function words: frequent in every source, so what they weigh is a source's style.
pub fn is_stopword(w: &str) -> bool {
    matches!(
        w,
        "a" | "an"
            | "the"
            | "and"
            | "or"
            | "but"
            | "of"
            | "to"
            | "in"
            | "on"
            | "at"
            | "by"
            | "for"
            | "with"
            | "from"
            | "as"
            | "into"
            | "is"
            | "are"
            | "was"
            | "were"
            | "be"
            | "been"
            | "being"
            | "it"
            | "its"
            | "this"
            | "that"
            | "these"
            | "those"
            | "then"
            | "than"
            | "there"
            | "their"
            | "they"
            | "them"
            | "he"
            | "she"
            | "his"
            | "her"
            | "i"
            | "me"
            | "my"
            | "you"
            | "your"
            | "can"
            | "could"
            | "will"
            | "would"
            | "should"
            | "may"
            | "might"
            | "must"
            | "do"
            | "does"
            | "did"
            | "have"
            | "has"
            | "had"
            | "if"
            | "so"
            | "not"
            | "no"
            | "all"
            | "any"
            | "each"
            | "which"
            | "what"
            | "when"
            | "where"
            | "who"
            | "how"
            | "also"
            | "only"
            | "just"
            | "some"
            | "such"
            | "very"
            | "more"
            | "most"
            | "other"
            | "about"
            | "up"
            | "out"
            | "s"
            | "t"
            | "e"
            | "g"
    )
}

/// Dense features and counts of one text.
#[derive(Debug, Clone, Default)]
pub struct Dense {
    pub values: Vec<f32>,
    /// Hashed features emitted, per kind (for normalisation).
    pub words: u32,
    pub chars: u32,
    /// Words and phrases that are the labeling rule's evidence for architecture.
    pub evidence: u32,
    /// Distinct application components named (see `phrases::APP_GROUPS`).
    pub app_parts: u32,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

const CODE_EXTENSIONS: &[&str] = &[
    "py",
    "rs",
    "js",
    "ts",
    "tsx",
    "jsx",
    "go",
    "java",
    "rb",
    "php",
    "c",
    "h",
    "cpp",
    "hpp",
    "cs",
    "kt",
    "swift",
    "md",
    "yaml",
    "yml",
    "json",
    "toml",
    "sql",
    "sh",
    "html",
    "css",
    "vue",
    "scala",
    "ex",
    "exs",
    "xml",
    "gradle",
    "ini",
    "cfg",
    "lock",
    "proto",
    "tf",
    "dockerfile",
];

/// A chunk that names a file: `src/app.py`, `db.py`, `./config/x`.
pub fn is_path(chunk: &str) -> bool {
    let c = chunk.trim_matches(|ch: char| "()[]{}<>,;:'\"`*".contains(ch));
    let c = c.trim_end_matches('.');
    if c.len() < 3 || c.contains("://") || c.starts_with('@') || is_system_path(c) {
        return false;
    }
    let bytes = c.as_bytes();
    let slash = bytes
        .windows(3)
        .any(|w| is_word_byte(w[0]) && w[1] == b'/' && is_word_byte(w[2]));
    if slash
        && c.bytes().all(|b| is_word_byte(b) || b"/._-".contains(&b))
        && c.split('/').count() >= 2
    {
        // "and/or", "I/O", "CI/CD": two short words are not a path.
        let parts: Vec<&str> = c.split('/').filter(|p| !p.is_empty()).collect();
        return parts.len() >= 3 || parts.iter().any(|p| p.contains('.') || p.contains('_'));
    }
    match c.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && stem
                    .bytes()
                    .all(|b| is_word_byte(b) || b"/._-".contains(&b)) =>
        {
            CODE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext))
        }
        _ => false,
    }
}

/// A path on the machine rather than in a repository (`/etc/nginx/nginx.conf`,
/// `/var/log/app.log`): a script's inputs and outputs, not files of a codebase to find one's
/// way in.
fn is_system_path(c: &str) -> bool {
    const ROOTS: &[&str] = &[
        "/etc/", "/var/", "/usr/", "/proc/", "/sys/", "/dev/", "/boot/", "/opt/", "/srv/", "/mnt/",
        "/run/", "/bin/", "/sbin/", "/lib/",
    ];
    ROOTS.iter().any(|r| c.starts_with(r))
}

/// Distinct paths in `text`, up to `cap`. Linear: at most `cap` hashes are kept.
pub fn count_paths(text: &str, seen: &mut Vec<u64>, cap: usize) {
    for chunk in text.split_ascii_whitespace() {
        if seen.len() >= cap {
            return;
        }
        if chunk.len() < 256 && chunk.bytes().any(|b| b == b'.' || b == b'/') && is_path(chunk) {
            let c = chunk.trim_matches(|ch: char| !ch.is_alphanumeric());
            // `a/x.py` and `b/x.py` in a diff are one file.
            let c = c
                .strip_prefix("a/")
                .or_else(|| c.strip_prefix("b/"))
                .unwrap_or(c);
            let h = fnv(RAW_SEED, c.as_bytes());
            if !seen.contains(&h) {
                seen.push(h);
            }
        }
    }
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
    let mut groups = vec![0u32; GROUPS.len()];
    let mut evidence = 0u32;
    let (mut n_word_feats, mut n_char_feats) = (0u32, 0u32);
    let mut paths: Vec<u64> = Vec::new();
    let mut code = text.contains("```") || text.contains("assert ") || text.contains(">>>");
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
            code = true;
        }
        for chunk in line.split_ascii_whitespace() {
            if chunk.contains("://") {
                continue;
            }
            if chunk.bytes().any(|b| b == b'.' || b == b'/') && paths.len() < 64 && is_path(chunk) {
                let h = fnv(RAW_SEED, chunk.as_bytes());
                if !paths.contains(&h) {
                    paths.push(h);
                }
            }
            let bytes = chunk.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if !is_word_byte(bytes[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                let Some(word) = chunk.get(start..i) else {
                    continue;
                };
                if word.len() > 40 {
                    continue;
                }
                lower.clear();
                if word.bytes().all(|b| b.is_ascii_digit()) {
                    lower.push('0');
                } else if word.is_ascii() {
                    lower.push_str(word);
                    lower.make_ascii_lowercase();
                } else {
                    lower.extend(word.chars().flat_map(char::to_lowercase));
                }
                let s = stem(&lower);
                let hs = fnv(STEM_SEED, s.as_bytes());
                let hr = fnv(RAW_SEED, lower.as_bytes());
                if let Some(c) = lexicon.cue(hr, hs) {
                    groups[c.group as usize] += 1;
                    evidence += u32::from(c.evidence);
                }
                phrases.push(hs, &lower);
                if first {
                    visit(Kind::Word, index(fnv(FIRST_SEED, s.as_bytes()), bits), "");
                    n_word_feats += 1;
                    first = false;
                }
                if cfg.stopwords && is_stopword(&lower) {
                    continue;
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
                    let b = lower.as_bytes();
                    // Padded 4-grams: "^ser", "serv", ..., "ice$".
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
                    for k in 0..=n - 4 {
                        let g = u32::from_le_bytes([at(k), at(k + 1), at(k + 2), at(k + 3)]);
                        visit(Kind::Char, index(u64::from(g) ^ CHAR_SEED, bits), "");
                        n_char_feats += 1;
                    }
                }
            }
        }
    }
    let mut values = Vec::with_capacity(dense_len());
    values.extend(groups.iter().map(|&c| (1.0 + c as f32).ln()));
    values.extend(phrases.counts.iter().map(|&c| (1.0 + c as f32).ln()));
    let arch: u32 = groups[..ARCH_GROUPS].iter().sum();
    let prim: u32 = groups[ARCH_GROUPS..].iter().sum();
    let variety = groups[..ARCH_GROUPS].iter().filter(|&&c| c > 0).count();
    values.push(variety as f32 / ARCH_GROUPS as f32);
    values.push((1.0 + paths.len() as f32).ln());
    values.push(if code { 1.0 } else { 0.0 });
    values.push(if text.trim_end().ends_with('?') {
        1.0
    } else {
        0.0
    });
    values.push(((1.0 + arch as f32) / (1.0 + prim as f32)).ln());
    // One application case alone (a database, a login) is a small app; two or more are the
    // labeling rule's multi-component application.
    values.push(phrases.app_parts().saturating_sub(1) as f32);
    // The labeling rule's specific reasons (services, stores, infrastructure, scale, an
    // existing codebase, an application's parts): architecture needs one of them.
    let evidence = evidence + phrases.counts[..ARCH_PHRASES].iter().sum::<u32>();
    values.push(if evidence == 0 { 1.0 } else { 0.0 });
    Dense {
        app_parts: phrases.app_parts() as u32,
        values,
        words: n_word_feats,
        chars: n_char_feats,
        evidence,
    }
}

/// The scale of each hashed feature of a kind emitted `n` times: between the sum (which
/// lets long texts shout) and the mean (which lets one word decide a short text).
pub fn norm(n: u32, power: f32) -> f64 {
    1.0 / f64::from(n.max(1)).powf(f64::from(power))
}

/// `text` cut to at most `max` bytes, on a char boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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

    #[test]
    fn stems_meet() {
        assert_eq!(stem("services"), stem("service"));
        assert_eq!(stem("deploying"), stem("deployed"));
        assert_eq!(stem("users"), "user");
        assert_eq!(stem("class"), "class");
        assert_eq!(stem("files"), stem("file"));
    }

    #[test]
    fn machine_paths_are_not_repository_files() {
        assert!(!is_path("/var/log/backup.log"));
        assert!(!is_path("/etc/nginx/nginx.conf"));
        assert!(is_path("/home/dev/project/src/app.py"));
        assert!(is_path("src/app.py"));
    }

    #[test]
    fn paths_are_recognised_and_prose_is_not() {
        for p in [
            "src/app.py",
            "db.py",
            "`billing.py`",
            "./config/settings.yaml",
            "a/b/c",
            "README.md,",
        ] {
            assert!(is_path(p), "{p}");
        }
        for p in [
            "and/or",
            "I/O",
            "CI/CD",
            "e.g.",
            "https://x.io/a.py",
            "end.",
            "3.14",
        ] {
            assert!(!is_path(p), "{p}");
        }
        let mut seen = Vec::new();
        count_paths(
            "edit app.py and db.py, then app.py again; see src/billing/api.py",
            &mut seen,
            10,
        );
        assert_eq!(seen.len(), 3);
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
        let g = |name: &str| d.values[GROUPS.iter().position(|g| g.name == name).unwrap()];
        assert!(g("infrastructure") > 1.0, "deploy + kubernetes");
        assert!(g("datastore") > 1.0, "postgres + database");
        assert!(g("decision") > 1.0, "we + our");
        assert_eq!(g("algorithmic"), 0.0);
        let d = extract(
            "Write a function that returns the sum of a list of integers.",
            CFG,
            &lex,
            |_, _, _| {},
        );
        let g = |name: &str| d.values[GROUPS.iter().position(|g| g.name == name).unwrap()];
        assert!(g("algorithmic") > 1.5);
        assert_eq!(g("infrastructure"), 0.0);
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
