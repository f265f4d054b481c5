//! Binding the two unix sockets and serving until a signal: the CSI socket
//! first, so the kubelet, which calls NodeGetInfo as soon as the
//! registration socket appears, finds it; the registration socket is
//! removed on the way out, which deregisters the plugin. Only root (the
//! kubelet) or this process's own uid may connect; each connection goes
//! through [`crate::authority::relay`] to tonic.

use crate::grpc::{Dispatch, Server};
use anyhow::{Context, Result};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio::net::UnixStream;
use tokio_stream::wrappers::ReceiverStream;

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
    let (connections, incoming) = tokio::sync::mpsc::channel::<std::io::Result<UnixStream>>(16);
    let accepting = tokio::spawn(accept(listener, connections));
    let served = tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(Server(service), ReceiverStream::new(incoming), stop)
        .await
        .context("serving gRPC");
    accepting.abort();
    served
}

/// Accepts trusted callers and hands tonic the inner end of a relay.
async fn accept(
    listener: UnixListener,
    connections: tokio::sync::mpsc::Sender<std::io::Result<UnixStream>>,
) {
    let me = rustix::process::geteuid().as_raw();
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                // E.g. out of file descriptors: back off rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let uid = client.peer_cred().map(|cred| cred.uid()).ok();
        if !matches!(uid, Some(0)) && uid != Some(me) {
            tracing::warn!(
                ?uid,
                "refused a connection: only the kubelet (root) may call"
            );
            continue;
        }
        let Ok((inner, outer)) = UnixStream::pair() else {
            continue;
        };
        tokio::spawn(async move {
            if let Err(error) = crate::authority::relay(client, outer).await {
                tracing::debug!(%error, "connection ended");
            }
        });
        if connections.send(Ok(inner)).await.is_err() {
            return;
        }
    }
}
