//! The lifecycle's governance steps (see `crate::govern` and `crate::secrets`): who is
//! calling and within which limits, whether the request must stay local, and the budget
//! reserved before forwarding. Each is one call from `lifecycle`, in order.

use std::sync::Arc;

use http::HeaderMap;

use super::plan::Plan;
use super::record::Origin;
use crate::error::GatewayError;
use crate::govern::{Caller, Denied, Governor, Reservation, authenticate, limits};
use crate::routing::Decision;
use crate::secrets::Action;
use crate::upstream::Runtime;

/// Why a request may only be answered by local upstreams.
#[derive(Debug, Clone)]
pub enum Pin {
    /// It carries a secret, found by this rule.
    Secret(Arc<str>),
    /// Its key says `local_only`.
    KeyLocalOnly,
}

impl Pin {
    /// The request's `x-tiergate-reason` and decision reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Pin::Secret(_) => "secret",
            Pin::KeyLocalOnly => "local_only",
        }
    }

    fn why(&self) -> String {
        match self {
            Pin::Secret(rule) => format!("carries a secret (rule {rule})"),
            Pin::KeyLocalOnly => "comes from a key whose data policy is local_only".into(),
        }
    }

    /// The error when no local upstream can answer: 503, never a frontier upstream.
    pub fn unanswered(&self, detail: impl std::fmt::Display) -> GatewayError {
        GatewayError::LocalOnly {
            reason: self.reason(),
            why: self.why(),
            detail: detail.to_string(),
        }
    }
}

fn denied(origin: &Origin, team: &str, d: Denied) -> GatewayError {
    let m = &origin.app.metrics;
    match d {
        Denied::MissingKey | Denied::UnknownKey | Denied::AdminOnly => {
            m.auth_failures.with_label_values(&[d.label()]).inc();
        }
        // Rate and budget refusals are counted by the governor itself.
        Denied::Forbidden { .. } => m.team.denied.with_label_values(&[team, d.label()]).inc(),
        _ => {}
    }
    GatewayError::Denied(d)
}

/// Step 1: the client key (401) and its requests and tokens per minute (429).
pub async fn admit(origin: &Origin, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    let gov = &origin.rt.policy.governance;
    let caller = authenticate(gov, headers).map_err(|d| denied(origin, "none", d))?;
    origin
        .app
        .governor
        .admit(&caller)
        .await
        .map_err(GatewayError::Denied)?;
    Ok(caller)
}

/// Step 2: a secret in the raw body pins the request to local upstreams, or refuses it;
/// a `local_only` key pins every request. Counted by rule and action; the secret itself
/// is never logged.
pub fn scan(origin: &Origin, caller: &Caller, body: &[u8]) -> Result<Option<Pin>, GatewayError> {
    let scanner = &origin.rt.policy.secrets;
    if let Some(f) = scanner.scan(body) {
        origin
            .app
            .metrics
            .secrets
            .with_label_values(&[&f.rule, f.action.label()])
            .inc();
        tracing::info!(request_id = %origin.request_id, rule = %f.rule, action = f.action.label(), "request carries a secret");
        if f.action == Action::Block {
            return Err(GatewayError::SecretBlocked { rule: f.rule });
        }
        return Ok(Some(Pin::Secret(f.rule)));
    }
    Ok(caller.local_only().then_some(Pin::KeyLocalOnly))
}

/// Step 3a, before the decision is counted: a tier or upstream the key may not use is
/// 403; a pinned request whose tier has no local upstream moves to the first tier that
/// has one (the primitive tier first).
pub fn restrict(
    origin: &Origin,
    caller: &Caller,
    pin: Option<&Pin>,
    d: &mut Decision,
) -> Result<(), GatewayError> {
    let p = &origin.rt.policy;
    let forbid = |what, name: &str| {
        denied(
            origin,
            caller.team(),
            Denied::Forbidden {
                what,
                name: name.to_string(),
            },
        )
    };
    if !caller.may_use_tier(&p.tiers[d.tier].name) {
        return Err(forbid("tier", &p.tiers[d.tier].name));
    }
    if let Some(u) = d.upstream
        && !caller.may_use_upstream(&p.upstreams[u].name)
    {
        return Err(forbid("upstream", &p.upstreams[u].name));
    }
    let Some(pin) = pin else { return Ok(()) };
    d.reason = pin.reason();
    if let Some(u) = d.upstream {
        // A forced model does not lift the pin.
        if !p.upstreams[u].local {
            return Err(pin.unanswered(format!(
                "the model asked for is upstream {}, which is not local",
                p.upstreams[u].name
            )));
        }
        return Ok(());
    }
    let has_local = |t: usize| {
        p.route(t)
            .any(|u| p.upstreams[u].local && caller.may_use_upstream(&p.upstreams[u].name))
    };
    if !has_local(d.tier) {
        let tiers = std::iter::once(p.primitive_tier).chain(0..p.tiers.len());
        if let Some(t) = tiers.into_iter().find(|&t| has_local(t)) {
            d.tier = t;
        }
    }
    Ok(())
}

/// Step 3b, on the plan: upstreams the key may not reach leave it; a pinned request keeps
/// its local upstreams only, so neither fallback nor escalation can send it elsewhere.
pub fn filter(
    origin: &Origin,
    caller: &Caller,
    pin: Option<&Pin>,
    d: &Decision,
    plan: &mut Plan,
) -> Result<(), GatewayError> {
    let p = &origin.rt.policy;
    let before = plan.order.len();
    plan.order
        .retain(|&(u, _)| caller.may_use_upstream(&p.upstreams[u].name));
    if before > 0 && plan.order.is_empty() {
        return Err(denied(
            origin,
            caller.team(),
            Denied::Forbidden {
                what: "upstreams of tier",
                name: p.tiers[d.tier].name.clone(),
            },
        ));
    }
    if let Some(pin) = pin {
        plan.order.retain(|&(u, _)| p.upstreams[u].local);
        if plan.order.is_empty() {
            return Err(pin.unanswered("no local upstream is enabled for it"));
        }
    }
    Ok(())
}

/// Whether requests to `u` count against budgets: not local, and priced.
pub fn costs(rt: &Runtime, u: usize) -> bool {
    let up = &rt.policy.upstreams[u];
    let price = up.price.per_mtok();
    !up.local && (price.input > 0.0 || price.output > 0.0)
}

/// What step 4 found.
pub enum Budget {
    /// Go on; settle this when the request ends (None: nothing was reserved).
    Go(Option<Reservation>),
    /// Over budget, and the team downgrades: plan again on the primitive tier's free
    /// upstreams.
    Downgrade,
}

/// Step 4, just before forwarding: reserve the request's estimated cost (at the dearest
/// upstream it may reach that costs money, capped) on the key's and its team's budgets.
pub async fn reserve(
    origin: &Origin,
    caller: &Caller,
    sent: &[usize],
    prompt_bytes: usize,
) -> Result<Budget, GatewayError> {
    let rt = &origin.rt;
    if caller.key.is_none() {
        return Ok(Budget::Go(None));
    }
    let tokens = super::record::estimate_tokens(prompt_bytes);
    let gov = &rt.policy.governance;
    let micros = sent
        .iter()
        .filter(|&&u| costs(rt, u))
        .map(|&u| {
            limits::reservation(
                tokens,
                None,
                rt.policy.upstreams[u].price.per_mtok(),
                &gov.reserve,
            )
        })
        .max();
    let Some(micros) = micros else {
        return Ok(Budget::Go(None));
    };
    match origin.app.governor.reserve(gov, caller, micros).await {
        Ok(r) => Ok(Budget::Go(r)),
        Err(Denied::OverBudget { .. }) if Governor::downgrades(gov, caller) => {
            Ok(Budget::Downgrade)
        }
        Err(d) => Err(GatewayError::Denied(d)),
    }
}

/// A downgraded request goes to the primitive tier (`x-tiergate-reason: budget`); plan it
/// again, then keep its free upstreams with `free_only`.
pub fn downgrade(origin: &Origin, d: &mut Decision) {
    d.tier = origin.rt.policy.primitive_tier;
    d.upstream = None;
    d.reason = "budget";
}

/// Keeps the upstreams that cost nothing; none left: over budget after all (429).
pub fn free_only(origin: &Origin, plan: &mut Plan) -> Result<(), GatewayError> {
    plan.order.retain(|&(u, _)| !costs(&origin.rt, u));
    if plan.order.is_empty() {
        return Err(GatewayError::Denied(Denied::OverBudget { scope: "team" }));
    }
    Ok(())
}

/// What the ledger settles when the request ends.
pub struct Settle {
    pub caller: Caller,
    pub reservation: Option<Reservation>,
}

impl Settle {
    /// Replaces the reservation by the real cost (money spent at a local upstream is no
    /// frontier spend) and counts the tokens per minute. Off the hot path.
    pub fn finish(
        self,
        app: &Arc<crate::app::App>,
        rt: &Arc<Runtime>,
        upstream: usize,
        cost_usd: f64,
        tokens: u64,
    ) {
        if self.caller.key.is_none() {
            return;
        }
        let actual = if costs(rt, upstream) {
            limits::to_micros(cost_usd)
        } else {
            0
        };
        let (governor, rt) = (app.governor.clone(), rt.clone());
        tokio::spawn(async move {
            governor
                .settle(
                    &rt.policy.governance,
                    &self.caller,
                    self.reservation,
                    actual,
                    tokens,
                )
                .await;
        });
    }
}
