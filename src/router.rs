//! Every request enters here: its id, the route table (data: which endpoint answers a method
//! and path; 404 and 405 follow from it), and the dispatch to the pipeline (`proxy`) or to
//! the gateway's own pages (`status`, `ui`).

use std::sync::Arc;

use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::app::App;
use crate::error::GatewayError;
use crate::http::{Body, HEADER_REQUEST_ID, header_value, request_id};
use crate::protocol::Format;
use crate::status::{self, Page};
use crate::{govern, proxy, ui};

/// What answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// A model request, through the pipeline.
    Proxy(Format),
    /// One of the gateway's own pages.
    Status(Page),
    /// `POST /v1/feedback`.
    Feedback,
}

impl Endpoint {
    /// The wire format of the endpoint's errors.
    pub fn format(self) -> Format {
        match self {
            Endpoint::Proxy(f) => f,
            _ => Format::Chat,
        }
    }
}

pub struct Route {
    pub paths: &'static [&'static str],
    /// The methods, as the `Allow` header lists them.
    pub allow: &'static str,
    pub endpoint: Endpoint,
}

/// The route table. Paths without `/v1` are accepted where clients are known to send them.
pub const ROUTES: &[Route] = &[
    Route {
        paths: &["/v1/chat/completions", "/chat/completions"],
        allow: "POST",
        endpoint: Endpoint::Proxy(Format::Chat),
    },
    Route {
        paths: &["/v1/completions", "/completions"],
        allow: "POST",
        endpoint: Endpoint::Proxy(Format::Completions),
    },
    Route {
        paths: &["/v1/responses", "/responses"],
        allow: "POST",
        endpoint: Endpoint::Proxy(Format::Responses),
    },
    Route {
        paths: &["/v1/messages"],
        allow: "POST",
        endpoint: Endpoint::Proxy(Format::Messages),
    },
    Route {
        paths: &["/v1/messages/count_tokens"],
        allow: "POST",
        endpoint: Endpoint::Proxy(Format::CountTokens),
    },
    Route {
        paths: &["/v1/models", "/models"],
        allow: "GET, HEAD",
        endpoint: Endpoint::Status(Page::Models),
    },
    Route {
        paths: &["/healthz"],
        allow: "GET, HEAD",
        endpoint: Endpoint::Status(Page::Health),
    },
    Route {
        paths: &["/readyz"],
        allow: "GET, HEAD",
        endpoint: Endpoint::Status(Page::Ready),
    },
    Route {
        paths: &["/metrics"],
        allow: "GET, HEAD",
        endpoint: Endpoint::Status(Page::Metrics),
    },
    Route {
        paths: &["/", "/index.html"],
        allow: "GET, HEAD",
        endpoint: Endpoint::Status(Page::Live),
    },
    Route {
        paths: &[ui::STATS_PATH],
        allow: "GET, HEAD",
        endpoint: Endpoint::Status(Page::Stats),
    },
    Route {
        paths: &["/v1/feedback", "/feedback"],
        allow: "POST",
        endpoint: Endpoint::Feedback,
    },
    Route {
        paths: &["/api/hello"],
        allow: "GET, HEAD",
        endpoint: Endpoint::Status(Page::Hello),
    },
];

/// Whether `allow` (as in an `Allow` header) lists `method`.
fn allows(allow: &str, method: &Method) -> bool {
    allow.split(", ").any(|m| m == method.as_str())
}

/// The endpoint for `method` and `path`: a path no route has is a 404, a method its route
/// does not allow a 405 in that endpoint's error format.
pub fn route(method: &Method, path: &str) -> Result<Endpoint, (GatewayError, Format)> {
    let Some(r) = ROUTES.iter().find(|r| r.paths.contains(&path)) else {
        return Err((
            GatewayError::NotFound(format!("{method} {path}")),
            Format::Chat,
        ));
    };
    if allows(r.allow, method) {
        Ok(r.endpoint)
    } else {
        Err((
            GatewayError::MethodNotAllowed {
                method: method.to_string(),
                allow: r.allow,
            },
            r.endpoint.format(),
        ))
    }
}

/// Whether a request may read one of the gateway's own pages: `/v1/models` like the model
/// endpoints (a client key when keys are configured), the rest as `auth.access` says.
fn page_access(app: &App, page: Page, headers: &http::HeaderMap) -> Result<(), govern::Denied> {
    let rt = app.runtime.load();
    let gov = &rt.policy.governance;
    let access = match page {
        Page::Models => {
            return govern::authenticate(gov, headers)
                .map(|_| ())
                .inspect_err(|d| {
                    app.metrics
                        .auth_failures
                        .with_label_values(&[d.label()])
                        .inc()
                });
        }
        Page::Health | Page::Ready => gov.access.health,
        Page::Metrics => gov.access.metrics,
        Page::Live | Page::Stats => gov.access.live,
        Page::Hello => return Ok(()),
    };
    govern::auth::may_read(gov, access, headers).inspect_err(|d| {
        app.metrics
            .auth_failures
            .with_label_values(&[d.label()])
            .inc()
    })
}

/// Every request enters here.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let request_id = request_id(req.headers());
    let mut resp = match route(req.method(), req.uri().path()) {
        Ok(Endpoint::Proxy(format)) => proxy::serve(&app, req, format, &request_id).await,
        Ok(Endpoint::Status(page)) => match page_access(&app, page, req.headers()) {
            Ok(()) => status::serve(&app, page),
            Err(denied) => {
                tracing::debug!(request_id = %request_id, code = denied.code(), "rejected: {denied}");
                GatewayError::Denied(denied).response(Format::Chat)
            }
        },
        Ok(Endpoint::Feedback) => {
            match govern::authenticate(&app.runtime.load().policy.governance, req.headers()) {
                Ok(_) => proxy::quality::feedback(&app, req).await,
                Err(denied) => {
                    app.metrics
                        .auth_failures
                        .with_label_values(&[denied.label()])
                        .inc();
                    GatewayError::Denied(denied).response(Format::Chat)
                }
            }
        }
        Err((e, format)) => {
            if matches!(e, GatewayError::MethodNotAllowed { .. }) {
                tracing::debug!(request_id = %request_id, code = e.code(), "rejected: {e}");
            }
            e.response(format)
        }
    };
    const ID: http::HeaderName = http::HeaderName::from_static(HEADER_REQUEST_ID);
    resp.headers_mut().insert(ID, header_value(&request_id));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_methods_are_405_in_the_endpoint_format() {
        for r in ROUTES {
            for path in r.paths {
                let wrong = if r.allow == "POST" {
                    Method::GET
                } else {
                    Method::DELETE
                };
                let Err((e, format)) = route(&wrong, path) else {
                    panic!("{wrong} {path} was routed");
                };
                assert_eq!(e.status(), 405, "{path}");
                assert_eq!(format, r.endpoint.format());
                let right = Method::from_bytes(r.allow.split(", ").next().unwrap().as_bytes());
                assert_eq!(route(&right.unwrap(), path).ok(), Some(r.endpoint));
            }
        }
        assert_eq!(route(&Method::GET, "/nope").unwrap_err().0.status(), 404);
    }

    #[test]
    fn every_path_is_routed_once() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            for p in r.paths {
                assert!(seen.insert(*p), "{p} twice");
            }
        }
    }
}
