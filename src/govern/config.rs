//! The policy's sections for client keys, teams and budgets, and their compiled form.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::keys::{self, KeyEntry, Keyring};
use super::limits::ReserveConfig;
use super::state::StateConfig;

/// `auth`: who may call the gateway.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A keys file: a YAML list of entries as `tiergate keys new` prints them. Empty: none.
    pub keys_file: String,
    /// Entries written in the policy itself (added to the file's).
    pub keys: Vec<KeyEntry>,
    /// SHA-256 (hex) of the admin key, for the surfaces whose access is `admin`.
    pub admin_key_sha256: String,
    pub access: AccessConfig,
}

/// Who may read the gateway's own surfaces.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// `GET /metrics`.
    pub metrics: Access,
    /// `GET /healthz` and `GET /readyz` (probes usually carry no key: keep them open).
    pub health: Access,
    /// The live page `/` and its data.
    pub live: Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    #[default]
    Open,
    /// The admin key only.
    Admin,
    /// Any client key, or the admin key.
    Client,
}

/// `teams`: what happens when a team's money runs out, and the team's own budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub name: String,
    /// Monthly (calendar month, UTC) frontier spend of the whole team, US dollars.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub over_budget: OverBudget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverBudget {
    /// 429 `insufficient_quota`.
    #[default]
    Refuse,
    /// Answer on the primitive tier's upstreams that cost nothing (`x-tiergate-reason:
    /// budget`); 429 when there is none.
    Downgrade,
}

/// A team, compiled: its settings and its keys' budgets summed (for "budget left").
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub name: String,
    pub budget_usd: Option<f64>,
    pub over_budget: OverBudget,
    /// The team's budget: its own, else the sum of its keys' budgets (None: unlimited).
    pub total_budget_usd: Option<f64>,
}

/// Everything about clients that the policy says, ready to use.
#[derive(Debug, Default)]
pub struct Governance {
    pub keyring: Keyring,
    /// The keys file, watched with the policy.
    pub keys_file: Option<std::path::PathBuf>,
    admin_key: Option<[u8; 32]>,
    pub access: AccessConfig,
    /// Every team named by the policy or a key, by name: the only values of the `team` label.
    pub teams: BTreeMap<String, Team>,
    pub reserve: ReserveConfig,
    pub state: StateConfig,
}

/// Most teams a policy may name: each is a label value of several metric families.
pub const MAX_TEAMS: usize = 200;

/// A problem with a place: where in the policy (a path of keys) and what.
#[derive(Debug, Clone)]
pub struct Problem {
    pub path: Vec<String>,
    pub message: String,
}

fn problem(path: &[&str], message: impl Into<String>) -> Problem {
    Problem {
        path: path.iter().map(|s| s.to_string()).collect(),
        message: message.into(),
    }
}

impl Governance {
    /// Compiles the sections; `file_entries` are the keys file's, already read.
    pub fn compile(
        auth: AuthConfig,
        teams: Vec<TeamConfig>,
        reserve: ReserveConfig,
        state: StateConfig,
        file_entries: Vec<KeyEntry>,
    ) -> Result<Self, Problem> {
        let keys_file = Some(auth.keys_file.trim())
            .filter(|f| !f.is_empty())
            .map(std::path::PathBuf::from);
        if !state.redis_url.is_empty() {
            redis::Client::open(state.redis_url.expose()).map_err(|e| {
                let url = super::state::redis::redacted(state.redis_url.expose());
                problem(
                    &["state", "redis_url"],
                    format!("state.redis_url {url}: {e}"),
                )
            })?;
        }
        let mut entries = auth.keys;
        entries.extend(file_entries);
        let keyring =
            Keyring::new(entries).map_err(|e| problem(&["auth", "keys"], format!("auth: {e}")))?;
        let admin_key = match auth.admin_key_sha256.trim() {
            "" => None,
            hex => Some(keys::hex_hash(hex).ok_or_else(|| {
                problem(
                    &["auth", "admin_key_sha256"],
                    "auth.admin_key_sha256 must be 64 hex digits (the admin key's SHA-256)",
                )
            })?),
        };
        let a = auth.access;
        if admin_key.is_none() && [a.metrics, a.health, a.live].contains(&Access::Admin) {
            return Err(problem(
                &["auth", "access"],
                "auth.access names `admin` but auth.admin_key_sha256 is not set",
            ));
        }
        if !(reserve.reserve_max_usd.is_finite() && reserve.reserve_max_usd >= 0.0) {
            return Err(problem(
                &["budgets", "reserve_max_usd"],
                "budgets.reserve_max_usd must be finite and not negative",
            ));
        }
        let mut out: BTreeMap<String, Team> = BTreeMap::new();
        for t in teams {
            if !keys::plain_name(&t.name) {
                return Err(problem(
                    &["teams", &t.name],
                    "team names are 1-64 of A-Z a-z 0-9 - _ . @",
                ));
            }
            if t.budget_usd.is_some_and(|b| !b.is_finite() || b < 0.0) {
                return Err(problem(
                    &["teams", &t.name, "budget_usd"],
                    format!(
                        "team {}: budget_usd must be finite and not negative",
                        t.name
                    ),
                ));
            }
            let team = Team {
                name: t.name.clone(),
                budget_usd: t.budget_usd,
                over_budget: t.over_budget,
                total_budget_usd: t.budget_usd,
            };
            if out.insert(t.name.clone(), team).is_some() {
                return Err(problem(
                    &["teams", &t.name],
                    format!("team {} is listed twice", t.name),
                ));
            }
        }
        for k in keyring.iter() {
            let e = &k.entry;
            let team = out.entry(e.team.clone()).or_insert_with(|| Team {
                name: e.team.clone(),
                budget_usd: None,
                over_budget: OverBudget::default(),
                total_budget_usd: None,
            });
            if team.budget_usd.is_none()
                && let Some(b) = e.budget_usd
            {
                team.total_budget_usd = Some(team.total_budget_usd.unwrap_or(0.0) + b);
            }
        }
        if out.len() > MAX_TEAMS {
            return Err(problem(
                &["teams"],
                format!(
                    "{} teams: at most {MAX_TEAMS} (each is a metric label)",
                    out.len()
                ),
            ));
        }
        Ok(Governance {
            keyring,
            keys_file,
            admin_key,
            access: auth.access,
            teams: out,
            reserve,
            state,
        })
    }

    /// Whether clients must present a key.
    pub fn is_open(&self) -> bool {
        self.keyring.is_empty()
    }

    /// Whether `presented` is the admin key (constant time).
    pub fn is_admin(&self, presented: &str) -> bool {
        let Some(admin) = &self.admin_key else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(admin.ct_eq(&digest))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    const BASE: &str = "upstreams:\n  - name: a\n    kind: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    key_required: false\n    local: true\ntiers:\n  - name: primitive\n    upstreams: [a]\n  - name: architecture\n    upstreams: [a]\n";

    fn keys_file(text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("tiergate-keys-{:x}.yaml", fastrand::u64(..)));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_default_policy_reads_its_keys_file_from_the_environment() {
        let hash = crate::govern::keys::hash_hex("tg-k");
        let file = keys_file(&format!(
            "- name: ci\n  team: platform\n  sha256: {hash}\n  rpm: 10\n"
        ));
        let path = file.display().to_string();
        let env = |k: &str| (k == "TIERGATE_KEYS_FILE").then(|| path.clone());
        let p = parse("default", crate::config::DEFAULT_POLICY, env).unwrap();
        let g = &p.governance;
        assert!(!g.is_open());
        assert_eq!(g.keyring.lookup("tg-k").unwrap().entry.rpm, Some(10));
        assert!(g.teams.contains_key("platform"));
        assert!(p.secrets.is_enabled() && p.upstreams[0].local);
        // Unset: open, in memory.
        let p = parse("default", crate::config::DEFAULT_POLICY, |_| None).unwrap();
        assert!(p.governance.is_open() && p.governance.state.redis_url.is_empty());
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn keys_file_errors_name_the_file_and_line() {
        let file = keys_file("- name: ci\n  team: t\n  sha256: nothex\n");
        let text = format!("{BASE}auth: {{ keys_file: \"{}\" }}\n", file.display());
        let e = parse("p.yaml", &text, |_| None).unwrap_err();
        assert!(e.message.contains("64 hex"), "{e}");
        let missing = format!("{BASE}auth: {{ keys_file: /nonexistent/keys.yaml }}\n");
        let e = parse("p.yaml", &missing, |_| None).unwrap_err();
        assert!(e.message.contains("/nonexistent/keys.yaml"), "{e}");
        std::fs::write(&file, "- name: ci\n  tem: t\n").unwrap();
        let e = parse("p.yaml", &text, |_| None).unwrap_err();
        assert!(e.message.contains(":2:"), "{e}");
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn teams_state_and_secrets_sections_are_checked() {
        let text = format!(
            "{BASE}teams:\n  - {{ name: pay, budget_usd: 10, over_budget: downgrade }}\nstate: {{ redis_url: \"redis://127.0.0.1:6379/2\", on_failure: closed }}\nsecrets: {{ action: block }}\n"
        );
        let p = parse("p.yaml", &text, |_| None).unwrap();
        let t = &p.governance.teams["pay"];
        assert_eq!(
            (t.budget_usd, t.over_budget),
            (Some(10.0), super::OverBudget::Downgrade)
        );
        assert_eq!(
            p.governance.state.on_failure,
            crate::govern::state::OnFailure::Closed
        );
        for (bad, why) in [
            ("teams: [{ name: \"a b\" }]", "team names"),
            ("teams: [{ name: a, budget_usd: -1 }]", "budget_usd"),
            ("state: { on_failure: maybe }", "unknown variant"),
            (
                "secrets: { rules: [{ name: x, pattern: \"[\" }] }",
                "secrets rule x",
            ),
            ("auth: { access: { metrics: admin } }", "admin_key_sha256"),
        ] {
            let e = parse("p.yaml", &format!("{BASE}{bad}\n"), |_| None).unwrap_err();
            assert!(e.message.contains(why), "{bad}: {e}");
        }
        let no_local = BASE.replace("    local: true\n", "");
        let p = parse("p.yaml", &no_local, |_| None).unwrap();
        assert!(p.warnings().iter().any(|w| w.contains("marked local")));
    }
}
