//! Each rule on a secret inside a real JSON request (escapes and all), and on the
//! placeholders and look-alikes it must let pass. Secrets are assembled at run time from a
//! fixed pseudo-random alphabet, so that this file holds none.

use super::*;

/// `n` characters from `alphabet`, deterministic and high in entropy.
fn chars(alphabet: &str, n: usize, seed: u64) -> String {
    let a = alphabet.as_bytes();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            a[(x % a.len() as u64) as usize] as char
        })
        .collect()
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A chat request whose user message is `text`, serialised as a client would send it.
fn request(text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": format!("Fix the deploy script.\n{text}\nThanks")}
        ]
    }))
    .unwrap()
}

fn scanner() -> Scanner {
    Scanner::new(&SecretsConfig::default()).unwrap()
}

fn rule_of(text: &str) -> Option<String> {
    scanner().scan(&request(text)).map(|f| f.rule.to_string())
}

fn private_key() -> String {
    let lines: Vec<String> = (0..6).map(|i| chars(B64, 64, 40 + i)).collect();
    format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
        lines.join("\n")
    )
}

#[test]
fn every_builtin_rule_finds_its_secret_in_json() {
    let cases: Vec<(&str, String)> = vec![
        (
            "aws-access-key-id",
            format!("aws_access_key_id = AKIA{}", chars(UPPER, 16, 1)),
        ),
        (
            "aws-access-key-id",
            format!("export AWS_ACCESS_KEY_ID=ASIA{}", chars(UPPER, 16, 2)),
        ),
        (
            "aws-secret-access-key",
            format!("aws_secret_access_key = {}", chars(B64, 40, 3)),
        ),
        (
            "github-token",
            format!(
                "git clone https://ghp_{}@github.com/o/r",
                chars(ALNUM, 36, 4)
            ),
        ),
        ("github-token", format!("GH=ghs_{}", chars(ALNUM, 36, 5))),
        (
            "github-fine-grained-token",
            format!("github_pat_{}_{}", chars(ALNUM, 22, 6), chars(ALNUM, 59, 7)),
        ),
        (
            "gitlab-token",
            format!("token: glpat-{}", chars(B64URL, 20, 8)),
        ),
        (
            "slack-token",
            format!(
                "xoxb-{}-{}-{}",
                chars("0123456789", 11, 9),
                chars("0123456789", 12, 10),
                chars(ALNUM, 24, 11)
            ),
        ),
        (
            "slack-webhook",
            format!(
                "curl https://hooks.slack.com/services/T{}/B{}/{}",
                chars("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", 8, 12),
                chars("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", 10, 13),
                chars(ALNUM, 24, 14)
            ),
        ),
        (
            "stripe-secret-key",
            format!("stripe.api_key = \"sk_live_{}\"", chars(ALNUM, 24, 15)),
        ),
        (
            "google-api-key",
            format!("key=AIza{}&q=x", chars(B64URL, 35, 16)),
        ),
        (
            "npm-token",
            format!(
                "//registry.npmjs.org/:_authToken=npm_{}",
                chars(ALNUM, 36, 17)
            ),
        ),
        (
            "pypi-token",
            format!("password = pypi-AgEIcHlwaS5vcmc{}", chars(B64URL, 60, 18)),
        ),
        (
            "openai-api-key",
            format!(
                "client = OpenAI(api_key=\"sk-proj-{}\")",
                chars(B64URL, 48, 19)
            ),
        ),
        (
            "anthropic-api-key",
            format!("ANTHROPIC=sk-ant-api03-{}", chars(B64URL, 93, 20)),
        ),
        ("private-key", private_key()),
        (
            "jwt",
            format!(
                "Authorization: Bearer eyJ{}.eyJ{}.{}",
                chars(B64URL, 30, 21),
                chars(B64URL, 60, 22),
                chars(B64URL, 43, 23)
            ),
        ),
        (
            "env-assignment",
            format!(
                "cat .env\nDATABASE_PASSWORD={}\nDEBUG=1",
                chars(ALNUM, 20, 24)
            ),
        ),
        (
            "env-assignment",
            format!("STRIPE_WEBHOOK_SECRET = \"whsec{}\"", chars(ALNUM, 24, 25)),
        ),
        (
            "connection-string",
            format!(
                "DATABASE_URL is postgres://app:{}@db.internal:5432/app",
                chars(ALNUM, 16, 26)
            ),
        ),
        (
            "connection-string",
            "mongodb+srv://svc:S3cure!pw@cluster0.example.net/x".to_string(),
        ),
    ];
    for (rule, text) in cases {
        assert_eq!(rule_of(&text).as_deref(), Some(rule), "{text}");
    }
}

#[test]
fn json_escapes_do_not_hide_a_secret() {
    // The private key's newlines arrive as `\n`, a URL's slashes maybe as `\/`.
    let body = request(&private_key());
    assert!(memchr::memmem::find(&body, b"-----\\n").is_some());
    assert_eq!(scanner().scan(&body).unwrap().rule.as_ref(), "private-key");
    let escaped = format!(
        r#"{{"messages":[{{"role":"user","content":"url: mysql:\/\/root:{}@10.1.2.3\/db"}}]}}"#,
        chars(ALNUM, 14, 30)
    );
    assert_eq!(
        scanner().scan(escaped.as_bytes()).unwrap().rule.as_ref(),
        "connection-string"
    );
}

#[test]
fn placeholders_words_and_references_are_not_secrets() {
    for text in [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "AKIAXXXXXXXXXXXXXXXX",
        "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "OPENAI_API_KEY=your-key-here",
        "API_KEY=${API_KEY}",
        "API_KEY = os.environ[\"API_KEY\"]",
        "SECRET_KEY = get_secret_key()",
        "API_KEY = settings.API_KEY",
        "MAX_TOKENS=4096",
        "PASSWORD=<password>",
        "postgres://postgres:postgres@localhost:5432/dev",
        "postgres://user:${DB_PASSWORD}@db:5432/app",
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
        "Use jwt.decode(token) and check the eyJ prefix.",
        "the sk_live_ prefix marks live Stripe keys",
        "redis://cache:6379/0",
        "Our key=value parser splits on '='.",
    ] {
        assert_eq!(rule_of(text), None, "{text}");
    }
}

#[test]
fn text_files_in_data_urls_are_decoded_images_are_not() {
    let secret = format!("GITHUB_TOKEN=ghp_{}\n", chars(ALNUM, 36, 31));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
    let file = serde_json::json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "review this file"},
        {"type": "file", "file": {"filename": ".env", "file_data": format!("data:text/plain;base64,{b64}")}}
    ]}]});
    let f = scanner().scan(&serde_json::to_vec(&file).unwrap()).unwrap();
    assert_eq!(f.rule.as_ref(), "github-token");
    let image = serde_json::json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{b64}")}}
    ]}]});
    assert_eq!(scanner().scan(&serde_json::to_vec(&image).unwrap()), None);
}

#[test]
fn policy_rules_actions_allow_list_and_off() {
    let config: SecretsConfig = serde_yaml::from_str(
        r#"
action: local
allow: ["FAKE"]
disable: [jwt]
rules:
  - name: acme-token
    pattern: "acme_[a-z0-9]{16}"
    keywords: [acme_]
    action: block
  - name: employee-id
    pattern: "EMP-[0-9]{6}"
"#,
    )
    .unwrap();
    let s = Scanner::new(&config).unwrap();
    let f = s.scan(&request("token acme_0123456789abcdef")).unwrap();
    assert_eq!((f.rule.as_ref(), f.action), ("acme-token", Action::Block));
    assert_eq!(
        s.scan(&request("badge EMP-123456")).unwrap().rule.as_ref(),
        "employee-id"
    );
    // A block wins over a local finding in the same request.
    let both = format!("ghp_{} and acme_0123456789abcdef", chars(ALNUM, 36, 32));
    assert_eq!(s.scan(&request(&both)).unwrap().action, Action::Block);
    let fake = format!("ghp_FAKE{}", chars(ALNUM, 32, 33));
    assert_eq!(s.scan(&request(&fake)), None);
    let jwt = format!(
        "eyJ{}.eyJ{}.{}",
        chars(B64URL, 20, 34),
        chars(B64URL, 20, 35),
        chars(B64URL, 20, 36)
    );
    assert_eq!(s.scan(&request(&jwt)), None, "disabled");
    assert!(s.rule_ids().any(|r| r == "acme-token"));

    let off = Scanner::new(&SecretsConfig {
        action: Action::Off,
        ..SecretsConfig::default()
    })
    .unwrap();
    assert_eq!(off.scan(&request(&private_key())), None);

    let bad: SecretsConfig = serde_yaml::from_str("rules: [{name: x, pattern: \"(\"}]").unwrap();
    assert!(
        Scanner::new(&bad)
            .unwrap_err()
            .to_string()
            .contains("secrets rule x")
    );
}

#[test]
fn recorded_agent_requests_carry_no_secret() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/clients/recorded"
    );
    let s = scanner();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read(&path).unwrap();
        assert_eq!(s.scan(&text), None, "{}", path.display());
    }
}

#[test]
fn entropy_in_bits_per_byte() {
    assert_eq!(entropy(b""), 0.0);
    assert_eq!(entropy(b"aaaa"), 0.0);
    assert!((entropy(b"abcd") - 2.0).abs() < 1e-12);
}
