//! One TLS listener with its own limits: a cap on open connections, timeouts
//! on every phase of a connection, a cap on requests in flight and a
//! deadline per request. The webhook runs two (admission, tenant API), so a
//! flood on one spends only that one's budget.

use super::idle::IdleTimeout;
use super::pre_auth::source_key;
use super::slots::{Slot, Slots};
use crate::metrics::metrics;
use crate::unseal::RateLimiter;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Limits of one listener. `Default` is the admission listener's.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// The listener's label in metrics and logs (`admission`, `api`).
    pub name: &'static str,
    /// From accept to a finished TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// From when the server waits for a request head (the first, or the
    /// next on a kept-alive connection) to its last byte, so it also closes
    /// idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// No byte moved either way for this long closes the connection (a
    /// client that stops reading its answer). Must exceed `request_timeout`.
    pub idle_timeout: Duration,
    /// Open connections at most. At the cap a new connection displaces an
    /// idle one of the source holding the most (see `slots`), or is closed
    /// as soon as accepted.
    pub max_connections: usize,
    /// The same for one source address (IPv6 per /64), so one client
    /// cannot hold every slot of `max_connections`.
    pub max_connections_per_source: usize,
    /// New connections one source may open in a burst, then per second;
    /// beyond it they are closed at accept, before any TLS work. A client
    /// that reconnects for every request (as a flood does when each junk
    /// request ends its connection) otherwise costs a handshake each.
    pub connect_rate_per_source: Option<ConnectRate>,
    /// Requests handled at once; more wait up to `queue_timeout`, then 503.
    pub max_in_flight: usize,
    pub queue_timeout: Duration,
    /// From the request head to the answer, including reading the body
    /// and any wait for a slot; beyond it the client gets 504.
    pub request_timeout: Duration,
    /// Largest body a JSON extractor takes (413 beyond).
    pub body_limit: usize,
}

/// A token bucket for new connections.
#[derive(Clone, Copy, Debug)]
pub struct ConnectRate {
    pub burst: u32,
    pub per_second: f64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self::admission()
    }
}

impl ServerLimits {
    /// `/mutate` and `/validate`, called by the API server only. A
    /// ReplicaSet scale-up sends hundreds of reviews at once; each takes
    /// about a millisecond, so a short queue serves a burst instead of
    /// refusing pods. The body limit fits an UPDATE review of two objects
    /// at etcd's 1.5 MiB limit.
    pub fn admission() -> Self {
        ServerLimits {
            name: "admission",
            tls_handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 512,
            // The API server may call from one address only.
            max_connections_per_source: 512,
            // And opens as many as a burst of reviews needs.
            connect_rate_per_source: None,
            max_in_flight: 64,
            queue_timeout: Duration::from_secs(2),
            // Below the API server's own timeoutSeconds (10 by default),
            // so it gets this answer rather than its own timeout.
            request_timeout: Duration::from_secs(9),
            body_limit: 4 * 1024 * 1024,
        }
    }

    /// `/v1/unseal`, reachable by every tenant pod. An
    /// unseal request is a token and a few names; the injector retries a
    /// 429 or 503, so a full server refuses at once rather than queueing.
    pub fn api() -> Self {
        ServerLimits {
            name: "api",
            tls_handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_connections: 512,
            // An injector holds one; a node's pods behind SNAT share one
            // address, so room for a burst of them.
            max_connections_per_source: 32,
            // An injector opens one or two (a retry); the same room.
            connect_rate_per_source: Some(ConnectRate {
                burst: 32,
                per_second: 8.0,
            }),
            max_in_flight: 128,
            queue_timeout: Duration::from_millis(250),
            request_timeout: Duration::from_secs(15),
            body_limit: 64 * 1024,
        }
    }

    /// Refuses limits that cannot work together.
    pub fn check(&self) -> Result<(), String> {
        let name = self.name;
        if self.max_connections == 0
            || self.max_connections_per_source == 0
            || self.max_in_flight == 0
        {
            return Err(format!(
                "{name}: the connection and in-flight caps must be at least 1"
            ));
        }
        if let Some(rate) = self.connect_rate_per_source
            && (rate.burst == 0 || rate.per_second.is_nan() || rate.per_second <= 0.0)
        {
            return Err(format!(
                "{name}: the connection rate per source needs a burst of at least 1 and a rate above 0 \
                 (leave it out for no limit)"
            ));
        }
        if self.idle_timeout <= self.request_timeout {
            return Err(format!(
                "{name}: the idle timeout ({:?}) must exceed the request timeout ({:?}), \
                 or a slow answer would be cut off",
                self.idle_timeout, self.request_timeout
            ));
        }
        for (what, value) in [
            ("TLS handshake", self.tls_handshake_timeout),
            ("header read", self.header_read_timeout),
            ("request", self.request_timeout),
        ] {
            if value.is_zero() {
                return Err(format!("{name}: the {what} timeout must be above 0"));
            }
        }
        Ok(())
    }
}

/// Serves `app` over TLS on `listener` under `limits` until the task is
/// dropped. Connections are served on the runtime this runs on.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    mut limits: ServerLimits,
) {
    if let Err(problem) = limits.check() {
        tracing::warn!(%problem, "adjusting the listener's limits");
        limits.max_connections = limits.max_connections.max(1);
        limits.max_connections_per_source = limits.max_connections_per_source.max(1);
        limits.max_in_flight = limits.max_in_flight.max(1);
        limits.connect_rate_per_source = None;
        limits.idle_timeout = limits.idle_timeout.max(limits.request_timeout * 2);
    }
    let name = limits.name;
    let acceptor = TlsAcceptor::from(tls);
    let slots = Slots::new(limits.max_connections, limits.max_connections_per_source);
    let connect_rate = limits
        .connect_rate_per_source
        .map(|rate| RateLimiter::new(rate.burst, rate.per_second));
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(Budget {
                in_flight: Semaphore::new(limits.max_in_flight),
                queue_timeout: limits.queue_timeout,
                request_timeout: limits.request_timeout,
                name,
            }),
            within_budget,
        ))
        .layer(DefaultBodyLimit::max(limits.body_limit));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Bounds the memory a connection holds while its head arrives.
        .max_buf_size(64 * 1024);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, typically: let some close.
                tracing::warn!(listener = name, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let source = source_key(peer);
        if let Some(rate) = &connect_rate
            && !rate.allow(&source)
        {
            metrics().connection_rate_limited(name);
            drop(tcp);
            continue;
        }
        let slot = match slots.try_open(source) {
            Ok(opened) => {
                if opened.displaced_another {
                    metrics().connection_displaced(name);
                }
                opened.slot
            }
            Err(_) => {
                metrics().connection_refused(name);
                drop(tcp);
                continue;
            }
        };
        let connection = Connection {
            acceptor: acceptor.clone(),
            http: http.clone(),
            app: app.clone(),
            name,
            peer,
            handshake_timeout: limits.tls_handshake_timeout,
            idle_timeout: limits.idle_timeout,
        };
        tokio::spawn(connection.serve(tcp, slot));
    }
}

/// What serving one accepted connection needs.
struct Connection {
    acceptor: TlsAcceptor,
    http: hyper::server::conn::http1::Builder,
    app: Router,
    name: &'static str,
    peer: SocketAddr,
    handshake_timeout: Duration,
    idle_timeout: Duration,
}

impl Connection {
    /// The handshake, then requests until the client leaves, a timeout
    /// fires, or the listener displaces this connection for a newcomer.
    async fn serve(self, tcp: TcpStream, slot: Slot) {
        let (name, peer) = (self.name, self.peer);
        let _open = OpenConnection::new(name);
        let handshake = tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp));
        let stream = tokio::select! {
            handshake = handshake => match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(listener = name, %peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics().connection_timeout(name, "tls_handshake");
                    return;
                }
            },
            () = slot.evicted() => return,
        };
        let requests = slot.in_flight_counter();
        let app = self.app;
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let in_flight = requests.start();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                drop(in_flight);
                response
            }
        });
        let io = TokioIo::new(IdleTimeout::new(stream, self.idle_timeout, name));
        let served = self.http.serve_connection(io, service);
        tokio::pin!(served);
        let result = tokio::select! {
            result = served.as_mut() => result,
            () = slot.evicted() => {
                if !slot.busy() {
                    return;
                }
                // A request arrived just as it was chosen: answer it first.
                served.as_mut().graceful_shutdown();
                served.await
            }
        };
        if let Err(error) = result {
            if error.is_timeout() {
                metrics().connection_timeout(name, "header_read");
            }
            tracing::debug!(listener = name, %peer, %error, "connection ended with an error");
        }
    }
}

/// Holds the open-connections gauge up while it lives.
struct OpenConnection {
    name: &'static str,
}

impl OpenConnection {
    fn new(name: &'static str) -> Self {
        metrics().connection_opened(name);
        OpenConnection { name }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics().connection_closed(self.name);
    }
}

struct Budget {
    in_flight: Semaphore,
    queue_timeout: Duration,
    request_timeout: Duration,
    name: &'static str,
}

/// Health and metrics skip the budget: a busy webhook is not a dead one,
/// and the kubelet must not restart it for being busy.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// The in-flight cap and the request deadline. tower's ConcurrencyLimit
/// waits for a slot without bound and LoadShed refuses without waiting;
/// admission needs the bounded wait in between, so this is one semaphore.
async fn within_budget(
    State(budget): State<Arc<Budget>>,
    request: Request,
    next: Next,
) -> Response {
    if exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let deadline = tokio::time::Instant::now() + budget.request_timeout;
    let slot = if budget.queue_timeout.is_zero() {
        budget.in_flight.try_acquire().ok()
    } else {
        tokio::time::timeout(budget.queue_timeout, budget.in_flight.acquire())
            .await
            .ok()
            .and_then(Result::ok)
    };
    let Some(_slot) = slot else {
        metrics().request_shed(budget.name);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
            "overloaded: too many requests in flight; retry shortly",
        )
            .into_response();
    };
    match tokio::time::timeout_at(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics().request_timeout(budget.name);
            (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "no answer within the webhook's {:?} request deadline",
                    budget.request_timeout
                ),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_consistent() {
        ServerLimits::admission().check().unwrap();
        ServerLimits::api().check().unwrap();
        let mut bad = ServerLimits::api();
        bad.idle_timeout = bad.request_timeout;
        assert!(bad.check().unwrap_err().contains("idle timeout"));
        bad = ServerLimits::api();
        bad.max_in_flight = 0;
        assert!(bad.check().is_err());
        bad = ServerLimits::api();
        bad.connect_rate_per_source = Some(ConnectRate {
            burst: 0,
            per_second: 1.0,
        });
        assert!(bad.check().unwrap_err().contains("connection rate"));
    }
}
