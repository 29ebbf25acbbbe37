//! TLS termination over real sockets: a CA and certificates made here with rcgen; the
//! handshake, h2 chosen by ALPN, a certificate replaced on disk and served without a
//! restart, and mTLS refusing a client that shows no certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tiergate::config::schema::TlsConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tiergate test CA");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// A leaf for `name`: its certificate (DER, PEM) and key (PEM).
    fn leaf(&self, name: &str, cn: &str) -> (CertificateDer<'static>, String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &*self.issuer).unwrap();
        (cert.der().clone(), cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    // Written beside and renamed, as a certificate manager does.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
    p
}

struct Server {
    addr: std::net::SocketAddr,
    _gateway: Arc<tiergate::app::App>,
    _tls: Arc<tiergate::tls::Tls>,
}

async fn start(config: TlsConfig) -> Server {
    let policy = common::two_tier_policy("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1");
    let policy = tiergate::config::parse("tls.yaml", &policy, |_| None).unwrap();
    let app = tiergate::app::App::new(tiergate::app::Runtime::new(policy).unwrap());
    let tls = Arc::new(tiergate::tls::Tls::new(&config).unwrap());
    tls.watch();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tiergate::server::serve_tls(
        app.clone(),
        listener,
        Some(tls.clone()),
        std::future::pending(),
        Duration::from_secs(1),
    ));
    Server {
        addr,
        _gateway: app,
        _tls: tls,
    }
}

fn connector(ca: &Ca, client: Option<(CertificateDer<'static>, String)>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            use rustls::pki_types::pem::PemObject;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(vec![cert], key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// Connects, and returns the negotiated ALPN protocol and the server's certificate.
async fn handshake(
    addr: std::net::SocketAddr,
    tls: &TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tls.connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// GET /healthz over HTTP/2 on an established TLS stream.
async fn h2_healthz(
    stream: tokio_rustls::client::TlsStream<TcpStream>,
) -> Result<(u16, Bytes), Box<dyn std::error::Error + Send + Sync>> {
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = http::Request::get("https://localhost/healthz")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn config(dir: &Path, cert: &str, key: &str, client_ca: Option<&str>) -> TlsConfig {
    TlsConfig {
        cert: write(dir, "cert.pem", cert),
        key: write(dir, "key.pem", key),
        client_ca: client_ca.map(|ca| write(dir, "ca.pem", ca)),
        watch: Duration::from_millis(50),
    }
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tiergate-tls-{name}-{:x}", fastrand::u64(..)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn handshake_negotiates_h2_and_serves() {
    let ca = Ca::new();
    let (_, cert, key) = ca.leaf("localhost", "one");
    let dir = tempdir("h2");
    let server = start(config(&dir, &cert, &key, None)).await;
    let stream = handshake(server.addr, &connector(&ca, None)).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (status, body) = h2_healthz(stream).await.unwrap();
    assert_eq!((status, &body[..]), (200, &b"ok\n"[..]));
    // A client of another CA is refused.
    let other = Ca::new();
    assert!(
        handshake(server.addr, &connector(&other, None))
            .await
            .is_err()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_without_restart() {
    let ca = Ca::new();
    let (first_der, cert, key) = ca.leaf("localhost", "first");
    let dir = tempdir("swap");
    let server = start(config(&dir, &cert, &key, None)).await;
    let tls = connector(&ca, None);
    let served = |s: &tokio_rustls::client::TlsStream<TcpStream>| {
        s.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    assert_eq!(
        served(&handshake(server.addr, &tls).await.unwrap()),
        first_der
    );

    let (second_der, cert2, key2) = ca.leaf("localhost", "second");
    // The key first, then the certificate: in between the pair does not match and the
    // old certificate stays.
    write(&dir, "key.pem", &key2);
    write(&dir, "cert.pem", &cert2);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = handshake(server.addr, &tls).await.unwrap();
        if served(&s) == second_der {
            let (status, _) = h2_healthz(s).await.unwrap();
            assert_eq!(status, 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A broken file keeps the last good certificate.
    write(&dir, "cert.pem", "not a certificate");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        served(&handshake(server.addr, &tls).await.unwrap()),
        second_der
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn mtls_refuses_a_client_without_a_certificate() {
    let ca = Ca::new();
    let (_, cert, key) = ca.leaf("localhost", "server");
    let dir = tempdir("mtls");
    let ca_pem = ca.issuer.pem();
    let server = start(config(&dir, &cert, &key, Some(&ca_pem))).await;

    // Without a certificate: TLS 1.3 may finish the client's side of the handshake, but
    // the server's alert ends the connection before any answer.
    let refused = match handshake(server.addr, &connector(&ca, None)).await {
        Err(_) => true,
        Ok(s) => h2_healthz(s).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");

    // A certificate from another CA is refused too.
    let stranger = Ca::new();
    let (scert, _, skey) = stranger.leaf("client", "stranger");
    let refused = match handshake(server.addr, &connector(&ca, Some((scert, skey)))).await {
        Err(_) => true,
        Ok(s) => h2_healthz(s).await.is_err(),
    };
    assert!(refused, "a client of another CA was served");

    let (ccert, _, ckey) = ca.leaf("client", "client");
    let stream = handshake(server.addr, &connector(&ca, Some((ccert, ckey))))
        .await
        .unwrap();
    let (status, _) = h2_healthz(stream).await.unwrap();
    assert_eq!(status, 200);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    let ca = Ca::new();
    let (_, cert, key) = ca.leaf("localhost", "a");
    let (_, _, other_key) = ca.leaf("localhost", "b");
    let dir = tempdir("bad");
    let mismatched = config(&dir, &cert, &other_key, None);
    let e = tiergate::tls::Tls::new(&mismatched).err().unwrap();
    assert!(e.contains("do not belong together"), "{e}");
    let empty = config(&dir, "", &key, None);
    let e = tiergate::tls::Tls::new(&empty).err().unwrap();
    assert!(e.contains("tls.cert"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}
