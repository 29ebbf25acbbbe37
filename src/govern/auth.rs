//! Who is calling: the client key from `Authorization: Bearer` or `x-api-key`, checked
//! against the keyring; and what a key may use. Pure: headers and policy in, answer out.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use super::config::{Access, Governance};
use super::keys::Key;

/// Why a request is refused by the governance layer. Messages never contain a key, a key's
/// hash or a key's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Denied {
    #[error(
        "Missing API key. Send your tiergate key as 'Authorization: Bearer KEY' or 'x-api-key: KEY'."
    )]
    MissingKey,
    #[error("Incorrect API key provided.")]
    UnknownKey,
    #[error("This surface needs the admin key.")]
    AdminOnly,
    #[error("Your key may not use the {what} '{name}'.")]
    Forbidden { what: &'static str, name: String },
    #[error("Rate limit reached: {limit} of your key. Try again in {} s.", retry_after.as_secs())]
    RateLimited {
        /// `requests per minute` or `tokens per minute`.
        limit: &'static str,
        retry_after: Duration,
    },
    #[error("You exceeded your monthly budget ({scope}). Ask your platform team to raise it.")]
    OverBudget { scope: &'static str },
    #[error("The gateway's shared state store is unavailable; try again shortly.")]
    StateUnavailable,
}

impl Denied {
    pub fn status(&self) -> u16 {
        match self {
            Denied::MissingKey | Denied::UnknownKey | Denied::AdminOnly => 401,
            Denied::Forbidden { .. } => 403,
            Denied::RateLimited { .. } | Denied::OverBudget { .. } | Denied::StateUnavailable => {
                429
            }
        }
    }

    /// OpenAI's error `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Denied::MissingKey | Denied::UnknownKey | Denied::AdminOnly => "invalid_request_error",
            Denied::Forbidden { .. } => "permission_error",
            Denied::RateLimited { .. } | Denied::StateUnavailable => "rate_limit_error",
            Denied::OverBudget { .. } => "insufficient_quota",
        }
    }

    /// OpenAI's error `code`, also a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Denied::MissingKey | Denied::UnknownKey | Denied::AdminOnly => "invalid_api_key",
            Denied::Forbidden { .. } => "permission_denied",
            Denied::RateLimited { .. } => "rate_limit_exceeded",
            Denied::OverBudget { .. } => "insufficient_quota",
            Denied::StateUnavailable => "state_unavailable",
        }
    }

    /// The `reason` label of `tiergate_auth_failures_total` / `tiergate_team_denied_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Denied::MissingKey => "missing",
            Denied::UnknownKey => "unknown",
            Denied::AdminOnly => "admin",
            Denied::Forbidden { .. } => "forbidden",
            Denied::RateLimited { limit, .. } if limit.starts_with("tokens") => "tpm",
            Denied::RateLimited { .. } => "rpm",
            Denied::OverBudget { .. } => "budget",
            Denied::StateUnavailable => "state",
        }
    }

    /// Seconds for `retry-after`, when there is one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Denied::RateLimited { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            Denied::StateUnavailable => Some(1),
            _ => None,
        }
    }
}

/// The key a request presents: `Authorization: Bearer KEY` (OpenAI clients) or
/// `x-api-key: KEY` (Anthropic clients).
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION)
        && let Ok(v) = v.to_str()
    {
        let v = v.trim();
        let bearer = v
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("bearer "))
            .map(|_| v[7..].trim());
        if let Some(k) = bearer.filter(|k| !k.is_empty()) {
            return Some(k);
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Who a request comes from: a key, or nobody when the gateway is open. Kept by the
/// request until it is settled (the key's entry is shared with the policy, not copied).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub key: Option<Arc<Key>>,
}

/// The `team` label of requests that carry no key (an open gateway).
pub const NO_TEAM: &str = "none";

impl Caller {
    pub fn team(&self) -> &str {
        self.key.as_ref().map_or(NO_TEAM, |k| k.entry.team.as_str())
    }

    pub fn local_only(&self) -> bool {
        self.key.as_ref().is_some_and(|k| k.entry.local_only)
    }

    /// Whether the key may use the tier (by name).
    pub fn may_use_tier(&self, tier: &str) -> bool {
        allowed(
            self.key.as_ref().and_then(|k| k.entry.tiers.as_deref()),
            tier,
        )
    }

    /// Whether the key may reach the upstream (by name).
    pub fn may_use_upstream(&self, upstream: &str) -> bool {
        allowed(
            self.key.as_ref().and_then(|k| k.entry.upstreams.as_deref()),
            upstream,
        )
    }
}

fn allowed(list: Option<&[String]>, name: &str) -> bool {
    list.is_none_or(|l| l.iter().any(|x| x == name))
}

/// The caller of a model endpoint: open gateway, a known key, or 401.
pub fn authenticate(gov: &Governance, headers: &HeaderMap) -> Result<Caller, Denied> {
    if gov.is_open() {
        return Ok(Caller { key: None });
    }
    let presented = presented_key(headers).ok_or(Denied::MissingKey)?;
    match gov.keyring.lookup(presented) {
        Some(key) => Ok(Caller {
            key: Some(key.clone()),
        }),
        None => Err(Denied::UnknownKey),
    }
}

/// Whether a request may read one of the gateway's own surfaces.
pub fn may_read(gov: &Governance, access: Access, headers: &HeaderMap) -> Result<(), Denied> {
    let presented = presented_key(headers);
    match access {
        Access::Open => Ok(()),
        Access::Admin => match presented {
            Some(k) if gov.is_admin(k) => Ok(()),
            Some(_) => Err(Denied::AdminOnly),
            None => Err(Denied::MissingKey),
        },
        Access::Client => match presented {
            Some(k) if gov.is_admin(k) || gov.keyring.lookup(k).is_some() => Ok(()),
            Some(_) => Err(Denied::UnknownKey),
            None if gov.is_open() => Ok(()),
            None => Err(Denied::MissingKey),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::govern::config::{AccessConfig, AuthConfig};
    use crate::govern::keys::{KeyEntry, hash_hex};

    fn gov(access: AccessConfig) -> Governance {
        let auth = AuthConfig {
            keys: vec![KeyEntry {
                name: "alice".into(),
                team: "payments".into(),
                sha256: hash_hex("tg-alice"),
                tiers: Some(vec!["primitive".into()]),
                ..KeyEntry::default()
            }],
            admin_key_sha256: hash_hex("tg-admin"),
            access,
            ..AuthConfig::default()
        };
        Governance::compile(auth, vec![], Default::default(), Default::default(), vec![]).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        let g = gov(AccessConfig::default());
        for h in [
            headers(&[("authorization", "Bearer tg-alice")]),
            headers(&[("authorization", "bearer  tg-alice ")]),
            headers(&[("x-api-key", "tg-alice")]),
            headers(&[("authorization", "Basic eA=="), ("x-api-key", "tg-alice")]),
        ] {
            let c = authenticate(&g, &h).unwrap();
            assert_eq!(c.team(), "payments");
            assert!(c.may_use_tier("primitive") && !c.may_use_tier("architecture"));
            assert!(c.may_use_upstream("anything"));
        }
        let missing = authenticate(&g, &headers(&[("authorization", "Bearer ")])).unwrap_err();
        assert_eq!((missing.status(), missing.code()), (401, "invalid_api_key"));
        let wrong = authenticate(&g, &headers(&[("x-api-key", "tg-bob")])).unwrap_err();
        assert_eq!(wrong, Denied::UnknownKey);
        assert!(!wrong.to_string().contains("tg-bob"));
    }

    #[test]
    fn an_open_gateway_lets_everyone_in() {
        let g = Governance::default();
        let c = authenticate(&g, &HeaderMap::new()).unwrap();
        assert_eq!(c.team(), NO_TEAM);
        assert!(c.may_use_tier("architecture") && !c.local_only());
    }

    #[test]
    fn own_surfaces_follow_their_access_setting() {
        let g = gov(AccessConfig {
            metrics: Access::Admin,
            health: Access::Open,
            live: Access::Client,
        });
        let admin = headers(&[("authorization", "Bearer tg-admin")]);
        let alice = headers(&[("x-api-key", "tg-alice")]);
        let none = HeaderMap::new();
        assert!(may_read(&g, g.access.metrics, &admin).is_ok());
        assert_eq!(
            may_read(&g, g.access.metrics, &alice),
            Err(Denied::AdminOnly)
        );
        assert_eq!(
            may_read(&g, g.access.metrics, &none),
            Err(Denied::MissingKey)
        );
        assert!(may_read(&g, g.access.health, &none).is_ok());
        assert!(may_read(&g, g.access.live, &alice).is_ok());
        assert!(may_read(&g, g.access.live, &admin).is_ok());
        assert!(may_read(&g, g.access.live, &none).is_err());
    }

    #[test]
    fn admin_access_needs_an_admin_key() {
        let auth = AuthConfig {
            access: AccessConfig {
                metrics: Access::Admin,
                ..AccessConfig::default()
            },
            ..AuthConfig::default()
        };
        let e = Governance::compile(auth, vec![], Default::default(), Default::default(), vec![])
            .unwrap_err();
        assert!(e.message.contains("admin_key_sha256"), "{}", e.message);
    }

    #[test]
    fn denials_carry_status_code_and_retry_after() {
        let r = Denied::RateLimited {
            limit: "requests per minute",
            retry_after: Duration::from_secs(7),
        };
        assert_eq!(
            (r.status(), r.code(), r.retry_after()),
            (429, "rate_limit_exceeded", Some(7))
        );
        let b = Denied::OverBudget { scope: "key" };
        assert_eq!(
            (b.status(), b.kind(), b.retry_after()),
            (429, "insufficient_quota", None)
        );
        assert_eq!(
            Denied::Forbidden {
                what: "tier",
                name: "x".into()
            }
            .status(),
            403
        );
    }
}
