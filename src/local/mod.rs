//! What real local servers (llama.cpp, llama-cpp-python, Ollama, vLLM) need before their
//! answers reach an OpenAI client: OpenAI's shape (`normalize`) and tool calls written as
//! text turned into proper `tool_calls` (`toolcall`, checked with `schema` against the
//! request's `offer`), for whole bodies here and for streams in `stream`. Pure: no I/O.
//! Applied to upstreams marked `repair: true` in the policy (see `proxy::local`).

pub mod normalize;
pub mod offer;
pub mod schema;
pub mod stream;
pub mod toolcall;

pub use offer::ToolOffer;
pub use stream::StreamFix;
pub use toolcall::Outcome;

use serde_json::Value;

/// A whole response after normalisation and repair.
#[derive(Debug)]
pub struct Fixed {
    pub body: Vec<u8>,
    /// Repaired or Failed when the request offered tools and the answer was judged as a
    /// call; None when there was nothing to repair.
    pub outcome: Option<Outcome>,
}

/// Normalises a whole (non-streamed) response of status `status` and, when the request
/// offered tools, repairs calls written as text. `model` is the upstream's configured model.
pub fn fix_body(status: u16, body: &[u8], model: &str, offer: Option<&ToolOffer>) -> Fixed {
    if !(200..300).contains(&status) {
        return Fixed {
            body: normalize::error_body(status, body),
            outcome: None,
        };
    }
    if offer.is_none()
        && !normalize::needs_fix(body)
        && let Some(body) = normalize::with_model(body, model)
    {
        return Fixed {
            body,
            outcome: None,
        };
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return Fixed {
            body: body.to_vec(),
            outcome: None,
        };
    };
    normalize::response(&mut v, model);
    let mut outcome = None;
    if let Some(offer) = offer {
        let n = v
            .get("choices")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("local")
            .to_string();
        for i in 0..n {
            let Some(content) = normalize::content_of(&v, i) else {
                continue;
            };
            match toolcall::repair(offer, content) {
                Outcome::NotToolCall => {}
                Outcome::Repaired(calls) => {
                    normalize::set_tool_calls(&mut v, i, &calls, &id);
                    if outcome.is_none() {
                        outcome = Some(Outcome::Repaired(calls));
                    }
                }
                failed @ Outcome::Failed(_) => outcome = Some(failed),
            }
        }
    }
    Fixed {
        body: serde_json::to_vec(&v).unwrap_or_else(|_| body.to_vec()),
        outcome,
    }
}

#[cfg(test)]
mod tests;
