//! `/healthz`, `/readyz` and `/metrics` over plain HTTP, on axum as the
//! webhook serves its own.

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// Set once the controllers have started; `/readyz` answers 503 before.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

pub async fn bind(address: &str) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|error| Error::Serve {
            address: address.to_owned(),
            error,
        })
}

pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, ready: Readiness) {
    if let Err(error) = axum::serve(listener, router(metrics, ready)).await {
        tracing::error!(%error, "the health and metrics listener stopped");
    }
}

pub fn router(metrics: Arc<Metrics>, ready: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                if ready.is_ready() {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
                }
            }),
        )
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(CONTENT_TYPE, keyward_kubeutil::metrics::CONTENT_TYPE)],
                    metrics.render(),
                )
                    .into_response()
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn get(address: std::net::SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn health_readiness_and_metrics_answer_on_loopback() {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        metrics.rotated("scheduled");
        let ready = Readiness::default();
        tokio::spawn(serve(listener, Arc::clone(&metrics), ready.clone()));

        assert!(get(address, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(address, "/readyz").await.starts_with("HTTP/1.1 503"));
        ready.set_ready();
        assert!(get(address, "/readyz").await.starts_with("HTTP/1.1 200"));
        let text = get(address, "/metrics").await;
        assert!(
            text.contains("keyward_rotations_total{reason=\"scheduled\"} 1"),
            "{text}"
        );
        assert!(get(address, "/nope").await.starts_with("HTTP/1.1 404"));
    }
}
