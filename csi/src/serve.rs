//! Binding the two unix sockets and serving until a signal: the CSI socket
//! first, so the kubelet, which calls NodeGetInfo as soon as the
//! registration socket appears, finds it; the registration socket is
//! removed on the way out, which deregisters the plugin.

use crate::grpc::{Dispatch, Server};
use anyhow::{Context, Result};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

/// A listener on `path`, replacing a stale socket left by a previous run.
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the old {}", path.display())),
    }
    UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))
}

/// Serves `service` on `listener` until `stop` resolves.
pub async fn serve<T: Dispatch>(
    listener: UnixListener,
    service: Arc<T>,
    stop: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(Server(service), UnixListenerStream::new(listener), stop)
        .await
        .context("serving gRPC")
}
