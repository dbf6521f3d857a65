//! Limits that keep a slow or abusive client from holding a process's memory, connections or
//! request slots, and the accept loop that applies them to the S3 and admin listeners.
//!
//! - at most `max_connections` open connections per listener (more are closed at accept);
//! - request headers must arrive within `header_timeout` (also an idle keep-alive connection
//!   waits at most that long for its next request) and fit in `max_header_bytes` (431);
//! - at most `max_requests` S3 requests are handled at once; more get `503 SlowDown`;
//! - a request body must keep coming: every 64 KiB of it (or its end) within
//!   `body_timeout`, else `400 RequestTimeout` (a body trickled at a byte a second fails
//!   after `body_timeout`, not after days).
//!
//! Settings: `TESSERA_MAX_CONNECTIONS`, `TESSERA_HEADER_TIMEOUT`, `TESSERA_MAX_HEADER_BYTES`,
//! `TESSERA_MAX_REQUESTS`, `TESSERA_BODY_TIMEOUT`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Body bytes that must arrive within each `body_timeout`.
pub const BODY_WINDOW_BYTES: usize = 64 << 10;

/// The limits of a process.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections per listener.
    pub max_connections: usize,
    /// Time to receive a request's headers (and to wait for the next on a kept-alive
    /// connection).
    pub header_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// S3 requests handled at once.
    pub max_requests: usize,
    /// Time in which each 64 KiB of a request body must arrive.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 << 10,
            max_requests: 1024,
            body_timeout: Duration::from_secs(30),
        }
    }
}

static LIMITS: OnceLock<Limits> = OnceLock::new();

impl Limits {
    /// The defaults, overridden by `TESSERA_*` environment variables.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut l = Self::default();
        let env = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        let count = |n: &str, v: String| -> anyhow::Result<usize> {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|x| *x > 0)
                .ok_or_else(|| anyhow::anyhow!("{n}: expected a positive number, got {v:?}"))
        };
        let time = |n: &str, v: String| -> anyhow::Result<Duration> {
            crate::config::parse_duration(&v).map_err(|e| anyhow::anyhow!("{n}: {e}"))
        };
        if let Some(v) = env("TESSERA_MAX_CONNECTIONS") {
            l.max_connections = count("TESSERA_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = env("TESSERA_MAX_REQUESTS") {
            l.max_requests = count("TESSERA_MAX_REQUESTS", v)?;
        }
        if let Some(v) = env("TESSERA_MAX_HEADER_BYTES") {
            l.max_header_bytes = count("TESSERA_MAX_HEADER_BYTES", v)?.max(8192);
        }
        if let Some(v) = env("TESSERA_HEADER_TIMEOUT") {
            l.header_timeout = time("TESSERA_HEADER_TIMEOUT", v)?;
        }
        if let Some(v) = env("TESSERA_BODY_TIMEOUT") {
            l.body_timeout = time("TESSERA_BODY_TIMEOUT", v)?;
        }
        Ok(l)
    }

    /// Makes these the process's limits (the first call wins).
    pub fn install(self) -> &'static Limits {
        LIMITS.get_or_init(|| self)
    }
}

/// The process's limits (the defaults until [`Limits::install`]).
pub fn get() -> &'static Limits {
    LIMITS.get_or_init(Limits::default)
}

static REQUESTS: OnceLock<Arc<Semaphore>> = OnceLock::new();

/// A slot for one S3 request, held while it is handled; `None` when `max_requests` are.
pub fn request_slot() -> Option<tokio::sync::OwnedSemaphorePermit> {
    REQUESTS
        .get_or_init(|| Arc::new(Semaphore::new(get().max_requests)))
        .clone()
        .try_acquire_owned()
        .ok()
}

/// Marks a request that came over TLS (the `aws:SecureTransport` policy condition).
#[derive(Clone, Copy, Debug)]
pub struct Secure;

/// Serves `router` on `listener` (over TLS with `tls`) with the connection and header
/// limits, until `shutdown` resolves; then lets open connections finish their requests (at
/// most 30 s).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = get();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32);
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection refused: too many open connections");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let secure = tls.is_some();
        let svc =
            router
                .clone()
                .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
                    if secure {
                        req.extensions_mut().insert(Secure);
                    }
                    req
                });
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            // The protocol is sniffed from the first bytes, before hyper's own header timer
            // runs: a connection that sends nothing is closed here.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(limits.header_timeout, tcp.peek(&mut first)).await,
                Ok(Ok(1))
            ) {
                tracing::debug!(%peer, "connection sent nothing: closed");
                return;
            }
            let svc = TowerToHyperService::new(svc);
            let result = match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await;
                    let Ok(Ok(stream)) = handshake else {
                        tracing::debug!(%peer, "TLS handshake failed or timed out");
                        return;
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open 30 s after shutdown began; closing them");
    }
    Ok(())
}
