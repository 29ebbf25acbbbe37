//! A small JSON Schema check for tool arguments: `type`, `required`, `properties`,
//! `additionalProperties: false`, `items` and `enum`, which is what function schemas use.
//! Hand-written rather than the `jsonschema` crate: that one brings regex engines, URL
//! resolution and dozens of dependencies for keywords tool schemas do not use; anything this
//! check does not know is accepted, never rejected.

use serde_json::Value;

/// Checks `value` against `schema`; the error names the path of the first mismatch.
pub fn check(schema: &Value, value: &Value) -> Result<(), String> {
    check_at(schema, value, "arguments")
}

fn check_at(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
    if let Some(t) = schema.get("type") {
        let ok = match t {
            Value::String(t) => has_type(value, t),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| has_type(value, t)),
            _ => true,
        };
        if !ok {
            return Err(format!(
                "{path} should be of type {t}, got {}",
                type_of(value)
            ));
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        return Err(format!(
            "{path} should be one of {}",
            Value::Array(allowed.clone())
        ));
    }
    if let Value::Object(obj) = value {
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(name) {
                    return Err(format!("{path}.{name} is required"));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check_at(s, v, &format!("{path}.{k}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{path}.{k} is not an allowed property"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check_at(s, v, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use serde_json::json;

    fn weather() -> serde_json::Value {
        json!({"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"},
               "unit":{"type":"string","enum":["c","f"]},"tags":{"type":"array","items":{"type":"string"}}},
               "required":["city"]})
    }

    #[test]
    fn good_arguments_pass() {
        check(&weather(), &json!({"city":"Paris"})).unwrap();
        check(
            &weather(),
            &json!({"city":"Paris","days":3,"unit":"c","tags":["a"],"extra":1}),
        )
        .unwrap();
    }

    #[test]
    fn mismatches_are_named() {
        assert_eq!(
            check(&weather(), &json!({})).unwrap_err(),
            "arguments.city is required"
        );
        assert!(
            check(&weather(), &json!({"city":7}))
                .unwrap_err()
                .contains("arguments.city should be of type")
        );
        assert!(check(&weather(), &json!({"city":"P","days":1.5})).is_err());
        assert!(check(&weather(), &json!({"city":"P","unit":"k"})).is_err());
        assert!(
            check(&weather(), &json!({"city":"P","tags":[1]}))
                .unwrap_err()
                .contains("tags[0]")
        );
        assert!(check(&weather(), &json!("Paris")).is_err());
        let closed = json!({"type":"object","properties":{},"additionalProperties":false});
        assert!(check(&closed, &json!({"x":1})).is_err());
    }

    #[test]
    fn unknown_keywords_and_empty_schemas_accept() {
        check(&json!({}), &json!({"anything": true})).unwrap();
        check(&json!({"type":"object","minProperties":5}), &json!({})).unwrap();
    }
}
