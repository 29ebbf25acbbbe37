//! TLS termination: a rustls server config from PEM files, a certificate that is swapped
//! in when its files change (connections keep the one they started with), ALPN `h2` and
//! `http/1.1`, and client certificates required against a CA file when one is named.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::schema::TlsConfig;

/// The certificate in use, swapped whole.
#[derive(Debug)]
pub struct Reloading {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

pub struct Tls {
    pub acceptor: TlsAcceptor,
    resolver: Arc<Reloading>,
    config: TlsConfig,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its key, and checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls.cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("tls.cert {}: no certificate in it", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls.key {}: {e}", key.display()))?;
    let signer = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| format!("tls.key {}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified
        .keys_match()
        .map_err(|e| format!("tls.cert and tls.key do not belong together: {e}"))?;
    Ok(certified)
}

impl Tls {
    pub fn new(config: &TlsConfig) -> Result<Self, String> {
        let key = load_certified_key(&config.cert, &config.key)?;
        let resolver = Arc::new(Reloading {
            current: ArcSwap::from_pointee(key),
        });
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?;
        let mut server = match &config.client_ca {
            None => builder
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone()),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(ca)
                    .map_err(|e| format!("tls.client_ca {}: {e}", ca.display()))?;
                for c in certs {
                    let c = c.map_err(|e| format!("tls.client_ca {}: {e}", ca.display()))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("tls.client_ca {}: {e}", ca.display()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| format!("tls.client_ca {}: {e}", ca.display()))?;
                builder
                    .with_client_cert_verifier(verifier)
                    .with_cert_resolver(resolver.clone())
            }
        };
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            resolver,
            config: config.clone(),
        })
    }

    /// Loads the files again and swaps the certificate in if they are good.
    pub fn reload(&self) -> Result<(), String> {
        let key = load_certified_key(&self.config.cert, &self.config.key)?;
        self.resolver.current.store(Arc::new(key));
        Ok(())
    }

    /// Checks the files every `watch` and reloads when either changed. A half-written
    /// pair (new certificate, old key) is refused and tried again at the next check.
    pub fn watch(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = self.config.watch;
        tokio::spawn(async move {
            let mut seen = None;
            loop {
                let Some(tls) = weak.upgrade() else { return };
                let now = (stamp(&tls.config.cert), stamp(&tls.config.key));
                if seen.is_none() {
                    seen = Some(now);
                } else if seen != Some(now) {
                    match tls.reload() {
                        Ok(()) => {
                            seen = Some(now);
                            tracing::info!("TLS certificate reloaded");
                        }
                        Err(e) => tracing::warn!("TLS certificate not reloaded: {e}"),
                    }
                }
                drop(tls);
                tokio::time::sleep(every).await;
            }
        });
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}
