//! The built-in rules, written from the token formats' public documentation (AWS IAM
//! identifiers, GitHub's 2021 token format, GitLab token prefixes, Slack token types, Stripe
//! and Google API keys, npm granular tokens, PyPI macaroons, PEM/OpenSSH/PGP private key
//! armour, RFC 7519 JWTs, `.env` files, database URLs).
//!
//! Every pattern runs over raw JSON bytes, so a secret may sit next to JSON escapes: `\n`
//! (two bytes) inside a private key, `\/` for `/` in a URL, `\"` around an `.env` value.
//! Character classes of secrets therefore stop at a backslash.

/// What `\b(` at the start of a secret's group becomes: a word boundary, or a JSON escape
/// like `\n` whose letter would otherwise join the secret's first word.
pub const START: &str = r"(?:^|[^A-Za-z0-9_]|\\[nrtbf])(";

/// A rule as the scanner takes it.
pub struct Builtin {
    pub id: &'static str,
    /// Any of these (case-sensitive) must occur for the pattern to be tried.
    pub keywords: &'static [&'static str],
    /// How far before a keyword a match may start.
    pub lookbehind: usize,
    /// Bytes regex; capture group 1, when present, is the secret itself.
    pub pattern: &'static str,
    /// Least Shannon entropy (bits per byte) of the secret.
    pub entropy: f64,
    /// The secret must hold a digit (generic rules, where words are not secrets).
    pub needs_digit: bool,
    /// An assignment: the keyword ends an upper-case name (`API_KEY=`), checked by hand,
    /// and the pattern is anchored at the keyword's end. One short anchored match per
    /// keyword, where code full of `API_KEY = os.environ[...]` would otherwise cost a
    /// regex search over most of the body.
    pub assignment: bool,
}

pub fn builtins() -> Vec<Builtin> {
    vec![
        Builtin {
            id: "aws-access-key-id",
            // AKIA long-lived, ASIA temporary (STS), ABIA service bearer, ACCA context.
            keywords: &["AKIA", "ASIA", "ABIA", "ACCA"],
            lookbehind: 2,
            pattern: r"(?-i:\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})\b)",
            entropy: 3.0,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "aws-secret-access-key",
            keywords: &[
                "secret_access_key",
                "SECRET_ACCESS_KEY",
                "SecretAccessKey",
                "secretAccessKey",
                "secret-access-key",
            ],
            lookbehind: 8,
            pattern: r#"(?i)secret[_-]?access[_-]?key(?:\\?["'])?\s*[:=]\s*(?:\\?["'])?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)"#,
            entropy: 4.0,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "github-token",
            // Personal, OAuth, user-to-server, server-to-server and refresh tokens.
            keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
            lookbehind: 2,
            pattern: r"\b(gh[pousr]_[A-Za-z0-9]{36,})\b",
            entropy: 3.5,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "github-fine-grained-token",
            keywords: &["github_pat_"],
            lookbehind: 2,
            pattern: r"\b(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59,})\b",
            entropy: 3.5,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "gitlab-token",
            // Personal, deploy, runner and pipeline trigger tokens.
            keywords: &["glpat-", "gldt-", "glrt-", "glptt-"],
            lookbehind: 2,
            pattern: r"\b(gl(?:pat|dt|rt|ptt)-[A-Za-z0-9_\-]{20,}(?:\.[A-Za-z0-9_\-.]+)?)",
            entropy: 3.0,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "slack-token",
            keywords: &[
                "xoxb-", "xoxp-", "xoxa-", "xoxe-", "xoxr-", "xoxs-", "xapp-",
            ],
            lookbehind: 2,
            pattern: r"\b((?:xox[bpaers](?:\.[a-z0-9]+)?|xapp)-[0-9A-Za-z\-]{10,})",
            entropy: 3.0,
            needs_digit: true,
            assignment: false,
        },
        Builtin {
            id: "slack-webhook",
            keywords: &["hooks.slack.com"],
            lookbehind: 0,
            pattern: r"hooks\.slack\.com\\?/services\\?/(T[A-Z0-9]{6,}\\?/B[A-Z0-9]{6,}\\?/[A-Za-z0-9]{16,})",
            entropy: 3.0,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "stripe-secret-key",
            // Secret and restricted keys of live mode.
            keywords: &["sk_live_", "rk_live_"],
            lookbehind: 2,
            pattern: r"\b([sr]k_live_[0-9A-Za-z]{20,})\b",
            entropy: 3.5,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "google-api-key",
            keywords: &["AIza"],
            lookbehind: 2,
            pattern: r"(?-i:\b(AIza[0-9A-Za-z_\-]{35}))(?:[^0-9A-Za-z_\-]|$)",
            entropy: 3.5,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "npm-token",
            keywords: &["npm_"],
            lookbehind: 2,
            pattern: r"\b(npm_[A-Za-z0-9]{36})\b",
            entropy: 3.5,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "pypi-token",
            // A macaroon, base64: "AgE" starts its serialisation.
            keywords: &["pypi-AgE"],
            lookbehind: 0,
            pattern: r"(?-i:(pypi-AgE[A-Za-z0-9_\-]{50,}))",
            entropy: 3.5,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "openai-api-key",
            keywords: &["sk-proj-", "sk-svcacct-", "sk-admin-", "T3BlbkFJ"],
            lookbehind: 32,
            pattern: r"(?-i:\b(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}))",
            entropy: 3.5,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "anthropic-api-key",
            keywords: &["sk-ant-"],
            lookbehind: 0,
            pattern: r"(sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_\-]{80,})",
            entropy: 3.5,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "private-key",
            // PEM (RSA, EC, DSA, PKCS#8, encrypted), OpenSSH and PGP armour; the secret is
            // the first run of base64 after the header (escaped newlines and PEM headers
            // like Proc-Type may sit between).
            keywords: &["-----BEGIN"],
            lookbehind: 0,
            pattern: r"(?-i:-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)(?s-u:.){0,400}?([A-Za-z0-9+/]{40,})",
            entropy: 4.0,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "jwt",
            // Header and claims are base64url JSON objects: both start with `{"`, `eyJ`.
            keywords: &["eyJ"],
            lookbehind: 0,
            pattern: r"(?-i:\b(eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}))",
            entropy: 3.0,
            needs_digit: false,
            assignment: false,
        },
        Builtin {
            id: "env-assignment",
            // `API_KEY=...`, `DB_PASSWORD = "..."`: upper-case names, as `.env` files and
            // settings modules write them; a value that is a word or a reference is none.
            keywords: &[
                "KEY=",
                "KEY =",
                "TOKEN=",
                "TOKEN =",
                "SECRET=",
                "SECRET =",
                "PASSWORD=",
                "PASSWORD =",
                "PASSWD=",
                "PWD=",
                "CREDENTIALS=",
            ],
            lookbehind: 0,
            pattern: r#"^[ \t]*(?:\\?["'])?([^\s"'\\$<>{}()\[\],;`]{8,})(?:$|[\s"'\\;,])"#,
            entropy: 3.0,
            needs_digit: true,
            assignment: true,
        },
        Builtin {
            id: "connection-string",
            // scheme://user:password@host; `:\/\/` when JSON escapes the slashes.
            keywords: &[
                "postgres:",
                "postgresql:",
                "mysql:",
                "mariadb:",
                "mongodb:",
                "mongodb+srv:",
                "redis:",
                "rediss:",
                "amqp:",
                "amqps:",
                "mssql:",
                "sqlserver:",
            ],
            lookbehind: 0,
            pattern: r#"(?i)\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver):(?:\\?/){2}[^:/@\s"'\\]*:([^@/\s"'\\]{3,})@[A-Za-z0-9.\-\[\]]+"#,
            entropy: 0.0,
            needs_digit: false,
            assignment: false,
        },
    ]
}

/// Parts of a secret that mark it as a placeholder, not a secret (case-insensitive).
pub const PLACEHOLDERS: &[&str] = &[
    "example",
    "xxxxx",
    "your",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "redacted",
    "dummy",
    "sample",
    "replace",
    "insert",
    "<",
    ">",
    "${",
    "{{",
    "****",
    "....",
    "0000000000",
    "1234567890",
    "abcdefgh",
];

/// Whole secrets that are default credentials of local development, not secrets.
pub const STOP_WORDS: &[&str] = &[
    "password", "passwd", "pass", "secret", "admin", "root", "postgres", "mysql", "guest", "test",
    "user", "username",
];
