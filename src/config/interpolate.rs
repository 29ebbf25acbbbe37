//! `${VAR}` and `${VAR:-default}` in the policy text, resolved before parsing so that any value
//! (numbers included) can come from the environment. `$${` writes a literal `${`.

use super::ConfigError;

/// Replaces every reference using `lookup`; a variable that is unset and has no default is an
/// error at the place where it is written.
pub fn interpolate(
    file: &str,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let offset = text.len() - tail.len();
            let Some(end) = body.find('}') else {
                return Err(ConfigError::at(file, text, offset, "unclosed `${`"));
            };
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let msg = format!("`${{{expr}}}` is not a variable reference");
                return Err(ConfigError::at(file, text, offset, msg));
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    let msg = format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
                    );
                    return Err(ConfigError::at(file, text, offset, msg));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.org".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_set_and_defaulted_variables() {
        let out = interpolate(
            "p",
            "a: ${HOST}\nb: ${NOPE:-x}\nc: ${EMPTY:-d}\nd: $${HOST} $5",
            env,
        );
        assert_eq!(out.unwrap(), "a: example.org\nb: x\nc: d\nd: ${HOST} $5");
    }

    #[test]
    fn missing_variable_is_located() {
        let err = interpolate("p.yaml", "a: 1\nb: x ${NOPE}\n", env).unwrap_err();
        assert_eq!((err.line, err.column), (2, 6));
        assert!(
            err.to_string()
                .starts_with("p.yaml:2:6: environment variable NOPE")
        );
    }

    #[test]
    fn unclosed_reference_is_an_error() {
        assert!(interpolate("p", "a: ${HOST", env).is_err());
    }
}
