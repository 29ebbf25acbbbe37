//! From what the client asked for (model name, header) and the classifier's score to a tier
//! and the upstreams to try. Pure functions over what routing needs of the policy (`Routes`,
//! which `config::Policy` implements): routing does not import `config`.

use super::classifier::{self, Classification};
use super::input::Conversation;
use super::rules::CompiledClassifier;
use crate::error::GatewayError;

/// What routing needs of the compiled policy: tiers, upstreams and aliases by name.
pub trait Routes {
    fn tier_index(&self, name: &str) -> Option<usize>;
    fn upstream_index(&self, name: &str) -> Option<usize>;
    /// The first tier that lists the upstream.
    fn tier_of_upstream(&self, upstream: usize) -> Option<usize>;
    /// The model name a client's model name stands for (`model_aliases`), if it is an alias.
    fn alias(&self, model: &str) -> Option<&str>;
    fn primitive_tier(&self) -> usize;
    fn architecture_tier(&self) -> usize;
    fn classifier(&self) -> &CompiledClassifier;
}

/// What the client's request names, before any classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Auto,
    Tier(usize),
    Upstream(usize),
}

/// The routing decision for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub tier: usize,
    /// Set when the request is pinned to one upstream.
    pub upstream: Option<usize>,
    /// The classifier's score, when it decided (`auto`).
    pub score: Option<f64>,
    /// The score is within the policy's `classifier.uncertain_band`.
    pub uncertain: bool,
    /// A bounded reason code: `header`, `model_tier`, `model_upstream`, or the classifier's.
    pub reason: &'static str,
    pub reasons: Vec<String>,
}

/// Resolves the header `x-tiergate-tier` (which wins) and the model name.
pub fn target<P: Routes + ?Sized>(
    policy: &P,
    model: &str,
    header_tier: Option<&str>,
) -> Result<(Target, &'static str), GatewayError> {
    if let Some(h) = header_tier {
        let h = h.trim();
        if h.eq_ignore_ascii_case("auto") {
            return Ok((Target::Auto, "auto"));
        }
        return policy
            .tier_index(h)
            .map(|t| (Target::Tier(t), "header"))
            .ok_or_else(|| GatewayError::TierNotFound(h.to_string()));
    }
    let model = policy.alias(model).unwrap_or(model);
    if model == "auto" {
        Ok((Target::Auto, "auto"))
    } else if let Some(t) = policy.tier_index(model) {
        Ok((Target::Tier(t), "model_tier"))
    } else if let Some(u) = policy.upstream_index(model) {
        Ok((Target::Upstream(u), "model_upstream"))
    } else {
        Err(GatewayError::ModelNotFound(model.to_string()))
    }
}

/// Maps a classification onto the policy's tiers.
pub fn tier_for<P: Routes + ?Sized>(policy: &P, c: &Classification) -> usize {
    if c.score >= policy.classifier().threshold {
        policy.architecture_tier()
    } else {
        policy.primitive_tier()
    }
}

/// The whole decision. `conversation` is only built (and only called) for `auto`.
pub fn decide<'c, 'a: 'c, P: Routes + ?Sized>(
    policy: &P,
    target: Target,
    reason: &'static str,
    conversation: impl FnOnce() -> Result<&'c Conversation<'a>, GatewayError>,
) -> Result<Decision, GatewayError> {
    Ok(match target {
        Target::Tier(tier) => Decision {
            tier,
            upstream: None,
            score: None,
            uncertain: false,
            reason,
            reasons: Vec::new(),
        },
        Target::Upstream(u) => Decision {
            tier: policy
                .tier_of_upstream(u)
                .unwrap_or(policy.primitive_tier()),
            upstream: Some(u),
            score: None,
            uncertain: false,
            reason,
            reasons: Vec::new(),
        },
        Target::Auto => {
            let c = classifier::classify(conversation()?, policy.classifier());
            Decision {
                tier: tier_for(policy, &c),
                upstream: None,
                score: Some(c.score),
                uncertain: policy.classifier().uncertain(c.score),
                reason: c.code,
                reasons: c.reasons,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_POLICY, Policy, parse};

    fn policy() -> Policy {
        parse("default", DEFAULT_POLICY, |_| None).unwrap()
    }

    #[test]
    fn explicit_choices_win() {
        let p = policy();
        assert_eq!(
            target(&p, "auto", Some("architecture")).unwrap().0,
            Target::Tier(1)
        );
        assert_eq!(target(&p, "primitive", None).unwrap().0, Target::Tier(0));
        assert_eq!(target(&p, "openai", None).unwrap().0, Target::Upstream(1));
        assert_eq!(target(&p, "auto", None).unwrap().0, Target::Auto);
        assert!(matches!(
            target(&p, "gpt-9", None),
            Err(GatewayError::ModelNotFound(_))
        ));
        assert!(matches!(
            target(&p, "auto", Some("nope")),
            Err(GatewayError::TierNotFound(_))
        ));
    }

    #[test]
    fn auto_uses_the_classifier_and_fim_is_primitive() {
        let p = policy();
        let fim = Conversation::from_prompt("def f(x", true);
        let d = decide(&p, Target::Auto, "auto", || Ok(&fim)).unwrap();
        assert_eq!((d.tier, d.reason), (p.primitive_tier, "fim"));
        let arch = "Split the billing module of this monolith into its own microservice with an event bus, and plan the database migration.";
        let arch = Conversation::from_prompt(arch, false);
        let d = decide(&p, Target::Auto, "auto", || Ok(&arch)).unwrap();
        assert_eq!(d.tier, p.architecture_tier);
    }
}
