//! The listener: HTTP/1.1 and HTTP/2 (h2c, or h2 by ALPN over TLS) on one port,
//! TCP_NODELAY on every accepted socket, graceful drain with a deadline. With TLS the
//! handshake runs in the connection's own task, within `header_read_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::app::App;
use crate::tls::Tls;

/// Serves plain HTTP until `shutdown` resolves, then stops accepting, turns unready and
/// lets the connections in flight finish for at most `drain`.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    serve_tls(app, listener, None, shutdown, drain).await;
}

/// `serve`, terminating TLS when `tls` is given.
pub async fn serve_tls(
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let limits = app.runtime.load().policy.server.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A slow or idle client holds its own connection only: the head must arrive within
    // `header_read_timeout` (hyper also applies it to an idle keep-alive connection
    // waiting for its next request) and may not exceed `max_header_bytes`.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(crate::router::handle(app, req).await) }
        });
        let Some(tls) = &tls else {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("connection ended with an error: {e}");
                }
            });
            continue;
        };
        let (acceptor, builder, watcher) =
            (tls.acceptor.clone(), builder.clone(), graceful.watcher());
        let handshake_within = limits.header_read_timeout;
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(handshake_within, acceptor.accept(stream)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!("TLS handshake failed: {e}"),
                Err(_) => {
                    return tracing::debug!("TLS handshake not done within {handshake_within:?}");
                }
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!("connection ended with an error: {e}");
            }
        });
    }
    app.set_ready(false);
    drop(listener);
    tracing::info!("draining connections for at most {drain:?}");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(drain) => tracing::warn!("drain deadline reached; closing the rest"),
    }
}
