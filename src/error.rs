//! Every error a client can get, and the one place where errors become responses.

use http::StatusCode;

use crate::protocol::error::to_json;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("We could not parse the JSON body of your request: {0}")]
    InvalidJson(String),
    #[error("Missing required parameter: '{0}'.")]
    MissingField(&'static str),
    #[error("Invalid value for '{param}': {message}")]
    InvalidField {
        param: &'static str,
        message: String,
    },
    #[error("Request body is larger than the limit of {0} bytes.")]
    BodyTooLarge(usize),
    #[error("Could not read the request body: {0}")]
    BodyRead(String),
    #[error(
        "The model '{0}' does not exist. Use 'auto', a tier or an upstream listed by GET /v1/models."
    )]
    ModelNotFound(String),
    #[error("The tier '{0}' named by the x-tiergate-tier header does not exist.")]
    TierNotFound(String),
    #[error(
        "No upstream is available for tier '{0}' (every upstream of it is disabled or saturated)."
    )]
    NoUpstream(String),
    #[error("Every upstream of tier '{tier}' failed; last: {detail}")]
    UpstreamFailed {
        tier: String,
        detail: String,
        kind: UpstreamFailure,
    },
    #[error("Unknown request URL: {0}")]
    NotFound(String),
    #[error("Method {0} is not allowed on this URL.")]
    MethodNotAllowed(String),
    #[error("The request was not received within {0:?}.")]
    RequestTimeout(std::time::Duration),
}

/// A handler's error, with the tier the request was routed to when it got that far: the
/// error response then carries `x-tiergate-tier` like every routed response.
#[derive(Debug)]
pub struct Refused {
    pub error: GatewayError,
    pub tier: Option<String>,
}

impl From<GatewayError> for Refused {
    fn from(error: GatewayError) -> Self {
        Refused { error, tier: None }
    }
}

/// How the last upstream attempt failed; decides the status the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    Connect,
    Timeout,
    RateLimited,
    ServerError,
    Saturated,
    /// Broke off before its first event.
    Broken,
    /// Skipped: circuit open or health check failing.
    Unavailable,
}

impl UpstreamFailure {
    /// A low-cardinality label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::RateLimited => "rate_limited",
            UpstreamFailure::ServerError => "server_error",
            UpstreamFailure::Saturated => "saturated",
            UpstreamFailure::Broken => "broken",
            UpstreamFailure::Unavailable => "unavailable",
        }
    }
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            InvalidJson(_)
            | MissingField(_)
            | InvalidField { .. }
            | BodyRead(_)
            | TierNotFound(_) => StatusCode::BAD_REQUEST,
            BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ModelNotFound(_) | NotFound(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            NoUpstream(_) => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamFailed { kind, .. } => match kind {
                UpstreamFailure::Timeout => StatusCode::GATEWAY_TIMEOUT,
                UpstreamFailure::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                UpstreamFailure::Saturated | UpstreamFailure::Unavailable => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                UpstreamFailure::Connect
                | UpstreamFailure::ServerError
                | UpstreamFailure::Broken => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// OpenAI's error `type`.
    pub fn kind(&self) -> &'static str {
        match self.status().as_u16() {
            429 => "rate_limit_error",
            s if s >= 500 => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// OpenAI's error `code`, also the metric label of the error.
    pub fn code(&self) -> &'static str {
        use GatewayError::*;
        match self {
            InvalidJson(_) => "invalid_json",
            MissingField(_) => "missing_required_parameter",
            InvalidField { .. } => "invalid_value",
            BodyTooLarge(_) => "request_too_large",
            BodyRead(_) => "invalid_body",
            ModelNotFound(_) => "model_not_found",
            TierNotFound(_) => "tier_not_found",
            NoUpstream(_) => "no_upstream_available",
            UpstreamFailed { kind, .. } => match kind {
                UpstreamFailure::Timeout => "upstream_timeout",
                UpstreamFailure::RateLimited => "rate_limit_exceeded",
                UpstreamFailure::Saturated => "upstream_saturated",
                UpstreamFailure::Unavailable => "upstream_unavailable",
                UpstreamFailure::Connect
                | UpstreamFailure::ServerError
                | UpstreamFailure::Broken => "upstream_error",
            },
            NotFound(_) => "unknown_url",
            MethodNotAllowed(_) => "method_not_allowed",
            RequestTimeout(_) => "request_timeout",
        }
    }

    pub fn param(&self) -> Option<&'static str> {
        match self {
            GatewayError::MissingField(p) | GatewayError::InvalidField { param: p, .. } => Some(p),
            GatewayError::ModelNotFound(_) => Some("model"),
            GatewayError::TierNotFound(_) => Some("x-tiergate-tier"),
            _ => None,
        }
    }

    /// The OpenAI-shaped JSON body.
    pub fn body(&self) -> Vec<u8> {
        to_json(
            &self.to_string(),
            self.kind(),
            self.param(),
            Some(self.code()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_openai_shaped() {
        let e = GatewayError::ModelNotFound("gpt-9".into());
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(e.status(), 404);
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["message"].as_str().unwrap().contains("gpt-9"));
    }

    #[test]
    fn no_upstream_names_the_tier() {
        let e = GatewayError::NoUpstream("architecture".into());
        assert_eq!(e.status(), 503);
        assert!(e.to_string().contains("architecture"));
    }
}
