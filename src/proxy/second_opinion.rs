//! Step 3's second opinion (`classifier.second_opinion`): an `auto` decision whose score is
//! inside the band asks the policy's upstream to classify the task in one word, over that
//! upstream's own pooled client (`quality::probe::ask`). Within the deadline its answer
//! decides the tier; past it, or on any failure, the first opinion stands. The prompt and
//! the reading of the answer are `routing::second_opinion`'s.

use super::guard::Pin;
use super::record::Origin;
use crate::govern::Caller;
use crate::quality::checks::Answer;
use crate::quality::probe::ask;
use crate::routing::second_opinion::{self, Outcome};
use crate::routing::{Conversation, Decision, task};

/// Asks for the second opinion when the decision wants one, and counts what became of it.
pub async fn consult(
    origin: &Origin,
    caller: &Caller,
    pin: Option<&Pin>,
    conv: Option<&Conversation<'_>>,
    d: &mut Decision,
) {
    let (app, rt) = (&origin.app, &origin.rt);
    let policy = &rt.policy;
    let Some(so) = policy.classifier.second_opinion.as_ref() else {
        return;
    };
    if !second_opinion::wanted(so, d) {
        return;
    }
    let up = &policy.upstreams[so.upstream];
    // A pinned request's data stays local; a key keeps to the upstreams it may use.
    let reachable =
        up.is_enabled() && (pin.is_none() || up.local) && caller.may_use_upstream(&up.name);
    let outcome = if reachable {
        ask_upstream(origin, conv, so, d).await
    } else {
        Outcome::Skipped
    };
    app.metrics
        .classifier
        .second_opinion(&policy.tiers[d.tier].name, outcome);
}

async fn ask_upstream(
    origin: &Origin,
    conv: Option<&Conversation<'_>>,
    so: &second_opinion::SecondOpinion,
    d: &mut Decision,
) -> Outcome {
    let rt = &origin.rt;
    let up = &rt.policy.upstreams[so.upstream];
    // The conversation the first opinion read.
    let Some(conv) = conv else {
        return Outcome::Error;
    };
    let body = second_opinion::request(&task::extract(conv).text, so.max_tokens);
    let call = ask::send(up, &rt.upstreams[so.upstream], body);
    let verdict = match tokio::time::timeout(so.deadline, call).await {
        Err(_) => return Outcome::Timeout,
        Ok(Err(e)) => {
            tracing::info!(request_id = %origin.request_id, upstream = %up.name, "second opinion failed: {e}");
            return Outcome::Error;
        }
        Ok(Ok(reply)) => {
            Answer::from_chat_json(&reply.body).and_then(|a| second_opinion::parse(&a.text))
        }
    };
    match verdict {
        Some(architecture) => second_opinion::apply(&rt.policy, d, architecture),
        None => {
            tracing::debug!(request_id = %origin.request_id, upstream = %up.name, "second opinion: not one of the two words");
            Outcome::Error
        }
    }
}
