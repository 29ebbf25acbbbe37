//! The path detector: chunks of text that name a file of a repository (`src/app.py`,
//! `db.py`, `./config/x`), not a machine path, a URL or prose with a slash.

use super::hash::{RAW_SEED, fnv};
use super::words::is_word_byte;

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

/// A cheap test before `is_path`: only chunks with a dot or a slash can be paths.
pub fn may_be_path(chunk: &str) -> bool {
    chunk.bytes().any(|b| b == b'.' || b == b'/')
}

/// Distinct paths in `text`, up to `cap`. Linear: at most `cap` hashes are kept.
pub fn count_paths(text: &str, seen: &mut Vec<u64>, cap: usize) {
    for chunk in text.split_ascii_whitespace() {
        if seen.len() >= cap {
            return;
        }
        if chunk.len() < 256 && may_be_path(chunk) && is_path(chunk) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
