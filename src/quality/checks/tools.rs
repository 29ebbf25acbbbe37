//! The tool-call check: each call names an offered tool, its arguments are a JSON object,
//! and they fit the tool's schema (`local::schema`); a request that forces a call gets one.

use serde_json::Value;

use super::{Answer, Verdict};
use crate::local::offer::Choice;
use crate::local::{ToolOffer, schema};

pub fn check(offer: Option<&ToolOffer>, a: &Answer) -> Verdict {
    if a.tool_calls.is_empty() {
        return match offer {
            Some(o) if o.forced() => {
                Verdict::Fail("the request requires a tool call; the answer has none".into())
            }
            _ => Verdict::Skip,
        };
    }
    for call in &a.tool_calls {
        let args: Value = match serde_json::from_str(&call.arguments) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return Verdict::Fail(format!("{}: arguments are not a JSON object", call.name));
            }
            Err(e) => return Verdict::Fail(format!("{}: arguments are not JSON ({e})", call.name)),
        };
        let Some(offer) = offer else { continue };
        if let Choice::Named(name) = &offer.choice
            && name != &call.name
        {
            return Verdict::Fail(format!(
                "the request names tool {name}; the answer calls {}",
                call.name
            ));
        }
        let Some(tool) = offer.tool(&call.name) else {
            return Verdict::Fail(format!("{} is not a tool the request offers", call.name));
        };
        if let Err(e) = schema::check(&tool.parameters, &args) {
            return Verdict::Fail(format!("{}: {e}", call.name));
        }
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests {
    use super::super::ToolCall;
    use super::*;

    fn offer(choice: &str) -> ToolOffer {
        let body = format!(
            r#"{{"messages":[],"tool_choice":{choice},"tools":[{{"type":"function","function":{{"name":"get_weather","parameters":{{"type":"object","properties":{{"city":{{"type":"string"}}}},"required":["city"]}}}}}}]}}"#
        );
        ToolOffer::from_request(body.as_bytes()).unwrap()
    }

    fn call(name: &str, args: &str) -> Answer {
        let mut a = Answer::text("", Some("tool_calls"));
        a.tool_calls.push(ToolCall {
            name: name.into(),
            arguments: args.into(),
        });
        a
    }

    #[test]
    fn valid_and_invalid_calls() {
        let o = offer("\"auto\"");
        assert_eq!(
            check(Some(&o), &call("get_weather", r#"{"city":"Paris"}"#)),
            Verdict::Pass
        );
        for (name, args, why) in [
            ("get_weather", r#"{"city": 3}"#, "should be of type"),
            ("get_weather", r#"{}"#, "required"),
            ("get_weather", r#"{"city": "Par"#, "not JSON"),
            ("get_weather", r#"["Paris"]"#, "not a JSON object"),
            ("send_mail", r#"{}"#, "not a tool"),
        ] {
            let v = check(Some(&o), &call(name, args));
            assert!(
                matches!(&v, Verdict::Fail(m) if m.contains(why)),
                "{args}: {v:?}"
            );
        }
        assert_eq!(check(None, &call("anything", "{}")), Verdict::Pass);
        assert!(check(None, &call("anything", "{")).failed());
    }

    #[test]
    fn forced_calls() {
        let text = Answer::text("It is sunny.", Some("stop"));
        assert_eq!(check(Some(&offer("\"auto\"")), &text), Verdict::Skip);
        assert!(check(Some(&offer("\"required\"")), &text).failed());
        let named = offer(r#"{"type":"function","function":{"name":"get_weather"}}"#);
        assert!(check(Some(&named), &text).failed());
        assert_eq!(
            check(Some(&named), &call("get_weather", r#"{"city":"Oslo"}"#)),
            Verdict::Pass
        );
        assert_eq!(check(None, &text), Verdict::Skip);
    }
}
