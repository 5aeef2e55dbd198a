//! The accept loop and each connection's life: a bound on open connections, header-read and
//! idle keep-alive timeouts, accept errors (such as running out of file descriptors) survived
//! with a back-off, and the graceful part of shutdown.
//!
//! axum's own `serve` has none of these knobs, so connections are driven here with hyper's
//! connection builder (HTTP/1.1 and HTTP/2 by prior knowledge, as axum does).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::lifecycle::Lifecycle;

/// Limits on connections and how long a client may take; defaults suit a server on a network
/// that untrusted clients reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a client has, once its connection is ready for a request (just opened, or the
    /// previous answer sent), to send the request's complete headers.
    pub header_timeout: Duration,
    /// How long a connection may sit idle between requests; zero turns keep-alive off. Idle
    /// time counts towards the header timeout too, so this is at most `header_timeout`.
    pub keep_alive_timeout: Duration,
    /// Time to receive a whole request body; a slower client gets 408.
    pub body_timeout: Duration,
    /// Most connections open at once; past it new ones wait in the kernel's backlog until
    /// one closes.
    pub max_connections: usize,
    /// After SIGTERM, how long in-flight requests may go on before they are ended.
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            shutdown_timeout: Duration::from_secs(20),
        }
    }
}

/// After the shutdown deadline, how long ended answers get to reach their clients before the
/// connections still open are dropped.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Longest pause after a failing `accept` (such as EMFILE); the pause doubles from 5 ms.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see [`Lifecycle`]).
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    lifecycle: Lifecycle,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (close_tx, close_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut backoff = Duration::ZERO;
    let mut limit_warned_at: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        if permits.available_permits() == 0
            && limit_warned_at.is_none_or(|at| at.elapsed() > Duration::from_secs(10))
        {
            limit_warned_at = Some(Instant::now());
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached: new connections wait until one closes"
            );
        }
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = Duration::ZERO;
                connections.spawn(connection(
                    tcp,
                    peer,
                    app.clone(),
                    Arc::clone(&limits),
                    close_rx.clone(),
                    permit,
                ));
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot accept connections; retrying");
                tokio::time::sleep(backoff).await;
            }
        }
    }
    // Draining: refuse new connections, close idle ones, let requests in flight finish.
    lifecycle.start_draining();
    drop(listener);
    let _ = close_tx.send(true);
    tracing::info!(
        in_flight_connections = connections.len(),
        deadline_s = limits.shutdown_timeout.as_secs_f64(),
        "shutting down: finishing in-flight requests"
    );
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            connections = connections.len(),
            "shutdown deadline passed: ending the requests still running"
        );
        lifecycle.stop();
        let _ = tokio::time::timeout(STOP_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if !connections.is_empty() {
            tracing::warn!(
                connections = connections.len(),
                "closing connections whose answers did not end"
            );
        }
        connections.shutdown().await;
    }
    tracing::info!("all connections closed");
    Ok(())
}

/// Errors of one incoming connection (it was reset before it was accepted), not of the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// Serves one connection until it closes, times out idle, or shutdown closes it.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Arc<ConnectionLimits>,
    mut close: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    // Without TCP_NODELAY, Nagle holds each small SSE event until the client's delayed ACK
    // (~40 ms): every streamed token would wait for it.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
    }
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let guard = activity.request_started();
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(Body::new)).await?;
                Ok::<_, Infallible>(crate::body_guard::hold_until_sent(response, guard))
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(!limits.keep_alive_timeout.is_zero());
    let conn = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    let mut closing = false;
    let idle_limit = if limits.keep_alive_timeout.is_zero() {
        limits.header_timeout
    } else {
        limits.keep_alive_timeout
    };
    loop {
        let idle_check = tokio::time::sleep(activity.idle_deadline(idle_limit));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            changed = close.changed(), if !closing => {
                if changed.is_err() || *close.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = idle_check, if !closing => {
                if activity.idle_for() >= idle_limit {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When a connection last finished an answer, and how many it is still giving.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when the connection last became idle.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// How long the connection has had nothing to answer (zero while it has).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst));
        self.opened.elapsed().saturating_sub(since)
    }

    /// Time until the connection will have been idle for `limit` if nothing happens.
    fn idle_deadline(&self, limit: Duration) -> Duration {
        // While an answer runs `idle_for` is zero: look again a whole `limit` later.
        let left = limit.saturating_sub(self.idle_for());
        if left.is_zero() {
            Duration::from_millis(1)
        } else {
            left
        }
    }
}

/// Held while an answer's body is being sent.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let now = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since_ms.store(now, Ordering::SeqCst);
        activity.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
