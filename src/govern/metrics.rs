//! The per-team metric families: the `team` label comes from the policy (its teams and its
//! keys' teams) or is `none` for requests without a key; never a key or a key's name.

use prometheus::{GaugeVec, IntCounterVec, Registry};

use crate::metrics::{Metrics, counter, fcounter, gauge, status_class};

/// Per-team families (see `crate::govern`).
#[derive(Clone)]
pub struct TeamMetrics {
    /// team, tier, status_class
    pub requests: IntCounterVec,
    /// team
    pub input_tokens: IntCounterVec,
    pub output_tokens: IntCounterVec,
    pub cost_usd: prometheus::CounterVec,
    pub avoided_cost_usd: prometheus::CounterVec,
    pub budget_used_usd: GaugeVec,
    pub budget_left_usd: GaugeVec,
    /// team, reason (rpm | tpm | budget | forbidden | state)
    pub denied: IntCounterVec,
}

impl TeamMetrics {
    pub fn new(r: &Registry) -> Self {
        TeamMetrics {
            requests: counter(
                r,
                "tiergate_team_requests_total",
                "Requests answered, by team, tier and status class.",
                &["team", "tier", "status_class"],
            ),
            input_tokens: counter(
                r,
                "tiergate_team_input_tokens_total",
                "Prompt tokens by team.",
                &["team"],
            ),
            output_tokens: counter(
                r,
                "tiergate_team_output_tokens_total",
                "Completion tokens by team.",
                &["team"],
            ),
            cost_usd: fcounter(
                r,
                "tiergate_team_cost_usd_total",
                "Spend in US dollars by team.",
                &["team"],
            ),
            avoided_cost_usd: fcounter(
                r,
                "tiergate_team_avoided_cost_usd_total",
                "Reference cost minus actual cost, by team.",
                &["team"],
            ),
            budget_used_usd: gauge(
                r,
                "tiergate_team_budget_used_usd",
                "The team's frontier spend this calendar month (UTC), US dollars.",
                &["team"],
            ),
            budget_left_usd: gauge(
                r,
                "tiergate_team_budget_left_usd",
                "What is left of the team's monthly budget (its own, or its keys' summed).",
                &["team"],
            ),
            denied: counter(
                r,
                "tiergate_team_denied_total",
                "Requests refused by a limit, by team and reason.",
                &["team", "reason"],
            ),
        }
    }

    /// One finished request of a team: what the record path calls.
    pub fn observe(&self, o: &TeamObservation<'_>) {
        self.requests
            .with_label_values(&[o.team, o.tier, status_class(o.status)])
            .inc();
        if o.input_tokens > 0 {
            self.input_tokens
                .with_label_values(&[o.team])
                .inc_by(o.input_tokens);
        }
        if o.output_tokens > 0 {
            self.output_tokens
                .with_label_values(&[o.team])
                .inc_by(o.output_tokens);
        }
        if o.cost_usd > 0.0 {
            self.cost_usd
                .with_label_values(&[o.team])
                .inc_by(o.cost_usd);
        }
        if o.avoided_cost_usd > 0.0 {
            self.avoided_cost_usd
                .with_label_values(&[o.team])
                .inc_by(o.avoided_cost_usd);
        }
    }
}

/// What a finished request tells the per-team families.
#[derive(Debug, Clone, Copy)]
pub struct TeamObservation<'a> {
    pub team: &'a str,
    pub tier: &'a str,
    pub status: u16,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub avoided_cost_usd: f64,
}

/// The per-team and secret-scan series of the policy, at zero (`none`: requests without
/// a key).
pub fn preset(m: &Metrics, policy: &crate::config::Policy) {
    let gov = &policy.governance;
    let teams = gov
        .teams
        .keys()
        .map(String::as_str)
        .chain(gov.is_open().then_some(crate::govern::auth::NO_TEAM));
    for team in teams {
        let t = &m.team;
        for tier in &policy.tiers {
            for class in ["2xx", "4xx", "5xx"] {
                t.requests.with_label_values(&[team, &tier.name, class]);
            }
        }
        t.input_tokens.with_label_values(&[team]);
        t.output_tokens.with_label_values(&[team]);
        t.cost_usd.with_label_values(&[team]);
        t.avoided_cost_usd.with_label_values(&[team]);
        for reason in ["rpm", "tpm", "budget", "forbidden", "state"] {
            t.denied.with_label_values(&[team, reason]);
        }
        if let Some(total) = gov.teams.get(team).and_then(|x| x.total_budget_usd) {
            t.budget_used_usd.with_label_values(&[team]);
            t.budget_left_usd.with_label_values(&[team]).set(total);
        }
    }
    if policy.secrets.is_enabled() {
        for rule in policy.secrets.rule_ids() {
            for action in ["local", "block"] {
                m.secrets.with_label_values(&[rule, action]);
            }
        }
    }
    for reason in ["missing", "unknown", "admin"] {
        m.auth_failures.with_label_values(&[reason]);
    }
}
