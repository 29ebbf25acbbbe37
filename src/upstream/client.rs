//! The pooled client of one upstream: rustls (ring, webpki roots, optional extra CA file),
//! TCP_NODELAY on every connection, HTTP/2 where TLS negotiates it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::Semaphore;

use super::state::UpstreamState;
use crate::config::Upstream;
use crate::provider::{self, Uris};

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// What serving needs of one upstream at run time, built once per policy load.
pub struct UpstreamRuntime {
    pub client: HttpClient,
    pub uris: Uris,
    /// The header value that authenticates to this upstream (marked sensitive), if any.
    pub auth: Option<(http::HeaderName, HeaderValue)>,
    /// Bounds requests in flight to this upstream.
    pub permits: Arc<Semaphore>,
    /// Breaker, health, budget and latency: kept across reloads.
    pub state: Arc<UpstreamState>,
}

/// Carries the run-time state of upstreams that keep their name over a policy reload: the
/// breaker and health (an outage is not forgotten), and the concurrency permits when the
/// limit did not change (requests in flight on the old policy still count).
pub fn inherit(
    new: &mut [UpstreamRuntime],
    new_policy: &[Upstream],
    old: &[UpstreamRuntime],
    old_policy: &[Upstream],
) {
    for (run, up) in new.iter_mut().zip(new_policy) {
        let Some(i) = old_policy.iter().position(|o| o.name == up.name) else {
            continue;
        };
        run.state = old[i].state.clone();
        if old_policy[i].max_concurrency == up.max_concurrency {
            run.permits = old[i].permits.clone();
        }
    }
}

/// Builds the runtime of one upstream; an error is a message for the operator.
pub fn build(up: &Upstream) -> Result<UpstreamRuntime, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(up.timeouts.connect));
    http.set_keepalive(Some(Duration::from_secs(60)));

    let tls = tls_config(up)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector);

    Ok(UpstreamRuntime {
        client,
        uris: Uris::of(up)?,
        auth: provider::auth(up)?,
        permits: Arc::new(Semaphore::new(up.max_concurrency)),
        state: Arc::new(UpstreamState::new()),
    })
}

fn tls_config(up: &Upstream) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &up.ca_file {
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
            format!(
                "upstream {}: cannot read ca_file {}: {e}",
                up.name,
                path.display()
            )
        })?;
        for cert in certs {
            let cert = cert
                .map_err(|e| format!("upstream {}: bad PEM in {}: {e}", up.name, path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("upstream {}: bad CA in {}: {e}", up.name, path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // ALPN (h2, http/1.1) is set by the connector builder.
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
