//! Client keys ("virtual keys"): the keys file, its entries, and the lookup of a presented
//! key. Only the SHA-256 of a key is ever stored; a presented key is hashed and compared
//! against every entry in constant time, so neither the key nor its hash shows in timing.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::secret::Secret;

/// What every key starts with, so that scanners (and people) can tell one.
pub const KEY_PREFIX: &str = "tg-";

/// One entry of the keys file (or of the policy's `auth.keys`), as written.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub name: String,
    pub team: String,
    /// Lower-case hex SHA-256 of the whole key, prefix included.
    pub sha256: String,
    /// Tiers the key may use; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<Vec<String>>,
    /// Upstreams the key may reach; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<Vec<String>>,
    /// Every request of this key is answered locally, as if it carried a secret.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_only: bool,
    /// Monthly (calendar month, UTC) spend at the frontier, in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens (prompt and completion) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
}

impl std::fmt::Debug for KeyEntry {
    // The hash is not printed: no key material in any log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("name", &self.name)
            .field("team", &self.team)
            .finish_non_exhaustive()
    }
}

/// A compiled entry: the hash as bytes, ready to compare.
#[derive(Clone, PartialEq)]
pub struct Key {
    pub entry: KeyEntry,
    hash: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.entry.fmt(f)
    }
}

/// Every configured key. Empty means the gateway is open.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<Arc<Key>>,
}

/// Why a key entry was refused: the entry's position and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("key {index} ({name}): {message}")]
pub struct EntryError {
    pub index: usize,
    pub name: String,
    pub message: String,
}

/// Names and teams become Redis keys and metric labels: keep them short and plain.
pub fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

pub(crate) fn hex_hash(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// SHA-256 of a key, hex.
pub fn hash_hex(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A new key: the prefix and 32 bytes from the operating system's CSPRNG, base64url.
pub fn generate() -> Result<Secret, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(Secret::new(format!("{KEY_PREFIX}{body}")))
}

impl Keyring {
    /// Checks and compiles entries: plain unique names, plain teams, 64-hex hashes, limits
    /// that make sense.
    pub fn new(entries: Vec<KeyEntry>) -> Result<Self, EntryError> {
        let mut keys: Vec<Arc<Key>> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let fail = |message: &str| EntryError {
                index,
                name: entry.name.clone(),
                message: message.to_string(),
            };
            if !plain_name(&entry.name) {
                return Err(fail("name must be 1-64 of A-Z a-z 0-9 - _ . @"));
            }
            if !plain_name(&entry.team) {
                return Err(fail("team must be 1-64 of A-Z a-z 0-9 - _ . @"));
            }
            let Some(hash) = hex_hash(&entry.sha256) else {
                return Err(fail("sha256 must be 64 hex digits (the key's SHA-256)"));
            };
            if keys.iter().any(|k| k.entry.name == entry.name) {
                return Err(fail("name is used by another key"));
            }
            if keys.iter().any(|k| k.hash == hash) {
                return Err(fail("the same key is listed twice"));
            }
            if entry.budget_usd.is_some_and(|b| !b.is_finite() || b < 0.0) {
                return Err(fail("budget_usd must be finite and not negative"));
            }
            if entry.rpm == Some(0) || entry.tpm == Some(0) {
                return Err(fail(
                    "rpm and tpm must be at least 1 (leave them out for none)",
                ));
            }
            keys.push(Arc::new(Key { entry, hash }));
        }
        Ok(Keyring { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter().map(|k| &**k)
    }

    /// The entry whose hash is the presented key's. Every entry is compared, in constant
    /// time each, whatever matches: the time taken says nothing about which one did.
    pub fn lookup(&self, presented: &str) -> Option<&Arc<Key>> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, k) in self.keys.iter().enumerate() {
            let hit = k.hash.ct_eq(&digest);
            index = u64::conditional_select(&index, &(i as u64), hit);
            found |= hit;
        }
        if bool::from(found) {
            self.keys.get(usize::try_from(index).ok()?)
        } else {
            None
        }
    }
}

/// Reads a keys file: a YAML list of entries (empty file: none).
pub fn read_file(path: &Path) -> Result<Vec<KeyEntry>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("keys file {}: cannot read: {e}", path.display()))?;
    parse_file(&path.display().to_string(), &text)
}

/// Parses the text of a keys file; errors carry file:line:column.
pub fn parse_file(name: &str, text: &str) -> Result<Vec<KeyEntry>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries: Option<Vec<KeyEntry>> = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        format!("{name}:{line}:{column}: {msg}")
    })?;
    Ok(entries.unwrap_or_default())
}

/// The YAML of one entry, as a list item to append to a keys file.
pub fn entry_yaml(entry: &KeyEntry) -> Result<String, String> {
    let one = serde_yaml::to_string(&vec![entry]).map_err(|e| e.to_string())?;
    Ok(one)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, key: &str) -> KeyEntry {
        KeyEntry {
            name: name.into(),
            team: "payments".into(),
            sha256: hash_hex(key),
            ..KeyEntry::default()
        }
    }

    #[test]
    fn lookup_finds_the_key_by_its_hash_only() {
        let ring = Keyring::new(vec![entry("a", "tg-aaa"), entry("b", "tg-bbb")]).unwrap();
        assert_eq!(ring.lookup("tg-bbb").unwrap().entry.name, "b");
        assert_eq!(ring.lookup("tg-aaa").unwrap().entry.name, "a");
        assert!(ring.lookup("tg-ccc").is_none());
        assert!(ring.lookup("").is_none());
        assert!(
            ring.lookup(&hash_hex("tg-aaa")).is_none(),
            "the hash is not a key"
        );
    }

    #[test]
    fn generated_keys_are_long_distinct_and_prefixed() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.expose().starts_with(KEY_PREFIX));
        assert_eq!(a.expose().len(), KEY_PREFIX.len() + 43);
        assert_ne!(a.expose(), b.expose());
        assert!(!format!("{a:?}").contains(&a.expose()[3..]));
    }

    #[test]
    fn bad_entries_are_refused_with_their_reason() {
        let mut bad_hash = entry("a", "k");
        bad_hash.sha256 = "abc".into();
        let mut bad_team = entry("a", "k");
        bad_team.team = "two words".into();
        let mut zero_rpm = entry("a", "k");
        zero_rpm.rpm = Some(0);
        for (entries, why) in [
            (vec![bad_hash], "64 hex"),
            (vec![bad_team], "team"),
            (vec![zero_rpm], "rpm"),
            (vec![entry("a", "k"), entry("a", "j")], "another key"),
            (vec![entry("a", "k"), entry("b", "k")], "twice"),
        ] {
            let e = Keyring::new(entries).unwrap_err();
            assert!(e.message.contains(why), "{e}");
        }
    }

    #[test]
    fn the_printed_entry_parses_back_and_debug_hides_the_hash() {
        let mut e = entry("alice", "tg-x");
        e.tiers = Some(vec!["primitive".into()]);
        e.rpm = Some(60);
        e.budget_usd = Some(12.5);
        e.local_only = true;
        let yaml = entry_yaml(&e).unwrap();
        assert!(yaml.starts_with("- name: alice\n"), "{yaml}");
        let twice = format!("{yaml}{yaml}");
        let back = parse_file("k.yaml", &twice).unwrap();
        assert_eq!(back, vec![e.clone(), e.clone()]);
        let ring = Keyring::new(vec![e.clone()]).unwrap();
        let shown = format!("{:?}", ring.lookup("tg-x").unwrap());
        assert!(
            !shown.contains(&e.sha256) && shown.contains("alice"),
            "{shown}"
        );
        assert!(parse_file("k.yaml", "\n").unwrap().is_empty());
        let err = parse_file("k.yaml", "- name: a\n  tema: x\n").unwrap_err();
        assert!(err.starts_with("k.yaml:2:"), "{err}");
    }
}
