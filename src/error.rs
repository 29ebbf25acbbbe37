//! Every error a client can get, where it came from, and the one place where an error
//! becomes a response (`GatewayError::response`), in the client's wire format.

use http::{HeaderValue, Response, StatusCode, header};

use crate::http::{Body, HEADER_REASON, HEADER_TIER, header_value, json};
use crate::protocol::Format;

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
    /// Feedback for a request id the gateway does not know (never seen, or expired).
    #[error(
        "No answer with request id '{0}' is known (unknown, or older than the feedback window)."
    )]
    UnknownRequestId(String),
    #[error("Method {method} is not allowed on this URL; allowed: {allow}.")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("The request was not received within {0:?}.")]
    RequestTimeout(std::time::Duration),
    /// A fault of tiergate's own (a body it could not encode): never the client's.
    #[error("tiergate failed to handle the request: {0}")]
    Internal(String),
    /// The client's key: missing, unknown, not allowed, over a limit or a budget.
    #[error("{0}")]
    Denied(crate::govern::Denied),
    /// A secret in a request the policy refuses (`secrets.action: block`).
    #[error(
        "This request carries a secret (rule {rule}) and the policy refuses such requests; remove it and send the request again."
    )]
    SecretBlocked { rule: std::sync::Arc<str> },
    /// A request that must stay local (`reason`: `secret` or `local_only`) that no local
    /// upstream could answer. It is never sent elsewhere.
    #[error("This request {why}, so only a local upstream may answer it, and none could: {detail}")]
    LocalOnly {
        reason: &'static str,
        why: String,
        detail: String,
    },
}

/// Where an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The request itself: bad JSON, a missing field, an unknown URL.
    Client,
    /// The policy refused it: no such model or tier, no upstream left.
    Policy,
    /// The upstreams failed it.
    Upstream,
    /// tiergate itself.
    Gateway,
}

/// A handler's error, with the tier the request was routed to when it got that far: the
/// error response then carries `x-tiergate-tier` like every routed response.
#[derive(Debug)]
pub struct ErrorReply {
    pub error: GatewayError,
    pub tier: Option<String>,
}

impl From<GatewayError> for ErrorReply {
    fn from(error: GatewayError) -> Self {
        ErrorReply { error, tier: None }
    }
}

impl ErrorReply {
    pub fn response(&self, format: Format) -> Response<Body> {
        let mut resp = self.error.response(format);
        if let Some(t) = &self.tier {
            resp.headers_mut().insert(HEADER_TIER, header_value(t));
        }
        resp
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
    /// Broke off its answer (before a stream's first event, or a whole body midway).
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
    /// The same error once more, for a result read twice (the request's conversation): the
    /// input errors as they are, any other as `Internal` with its message.
    pub fn again(&self) -> GatewayError {
        use GatewayError::*;
        match self {
            InvalidJson(m) => InvalidJson(m.clone()),
            MissingField(f) => MissingField(f),
            InvalidField { param, message } => InvalidField {
                param,
                message: message.clone(),
            },
            other => Internal(other.to_string()),
        }
    }

    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            InvalidJson(_)
            | MissingField(_)
            | InvalidField { .. }
            | BodyRead(_)
            | TierNotFound(_) => StatusCode::BAD_REQUEST,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ModelNotFound(_) | NotFound(_) | UnknownRequestId(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            NoUpstream(_) | LocalOnly { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Denied(d) => StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN),
            SecretBlocked { .. } => StatusCode::FORBIDDEN,
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
        if let GatewayError::Denied(d) = self {
            return d.kind();
        }
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
            UnknownRequestId(_) => "unknown_request_id",
            MethodNotAllowed { .. } => "method_not_allowed",
            RequestTimeout(_) => "request_timeout",
            Internal(_) => "internal_error",
            Denied(d) => d.code(),
            SecretBlocked { .. } => "secret_detected",
            LocalOnly { .. } => "local_upstream_unavailable",
        }
    }

    /// The low-cardinality label of the error in metrics and logs (its code).
    pub fn label(&self) -> &'static str {
        self.code()
    }

    pub fn source(&self) -> Source {
        use GatewayError::*;
        match self {
            InvalidJson(_)
            | MissingField(_)
            | InvalidField { .. }
            | BodyTooLarge(_)
            | BodyRead(_)
            | NotFound(_)
            | MethodNotAllowed { .. }
            | RequestTimeout(_)
            | UnknownRequestId(_) => Source::Client,
            ModelNotFound(_)
            | TierNotFound(_)
            | NoUpstream(_)
            | Denied(_)
            | SecretBlocked { .. } => Source::Policy,
            LocalOnly { .. } => Source::Upstream,
            UpstreamFailed { .. } => Source::Upstream,
            Internal(_) => Source::Gateway,
        }
    }

    /// Whether the client may send the same request again and hope for another outcome.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            GatewayError::UpstreamFailed { .. }
                | GatewayError::NoUpstream(_)
                | GatewayError::RequestTimeout(_)
                | GatewayError::Internal(_)
                | GatewayError::LocalOnly { .. }
        ) || matches!(self, GatewayError::Denied(d) if d.retry_after().is_some())
    }

    pub fn param(&self) -> Option<&'static str> {
        match self {
            GatewayError::MissingField(p) | GatewayError::InvalidField { param: p, .. } => Some(p),
            GatewayError::ModelNotFound(_) => Some("model"),
            GatewayError::TierNotFound(_) => Some("x-tiergate-tier"),
            GatewayError::UnknownRequestId(_) => Some("request_id"),
            _ => None,
        }
    }

    /// The body in `format` (OpenAI's error body; Anthropic's on /v1/messages*).
    pub fn body(&self, format: Format) -> Vec<u8> {
        format.error_body(
            self.status().as_u16(),
            &self.to_string(),
            self.kind(),
            self.param(),
            Some(self.code()),
        )
    }

    /// The one place where an error becomes a response.
    pub fn response(&self, format: Format) -> Response<Body> {
        let mut resp = json(self.status(), self.body(format));
        let h = resp.headers_mut();
        if let GatewayError::MethodNotAllowed { allow, .. } = self {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        h.insert(
            "x-should-retry",
            HeaderValue::from_static(if self.retryable() { "true" } else { "false" }),
        );
        match self {
            GatewayError::Denied(d) => {
                if let Some(secs) = d.retry_after() {
                    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
            }
            GatewayError::SecretBlocked { .. } => {
                h.insert(HEADER_REASON, HeaderValue::from_static("secret"));
            }
            GatewayError::LocalOnly { reason, .. } => {
                h.insert(HEADER_REASON, HeaderValue::from_static(reason));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_openai_shaped() {
        let e = GatewayError::ModelNotFound("gpt-9".into());
        let v: serde_json::Value = serde_json::from_slice(&e.body(Format::Chat)).unwrap();
        assert_eq!(e.status(), 404);
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["message"].as_str().unwrap().contains("gpt-9"));
    }

    #[test]
    fn method_not_allowed_says_what_is() {
        let e = GatewayError::MethodNotAllowed {
            method: "GET".into(),
            allow: "POST",
        };
        let r = e.response(Format::Messages);
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "POST");
        assert_eq!(e.source(), Source::Client);
        assert!(!e.retryable());
    }

    #[test]
    fn no_upstream_names_the_tier() {
        let e = GatewayError::NoUpstream("architecture".into());
        assert_eq!(e.status(), 503);
        assert!(e.to_string().contains("architecture"));
    }
}
