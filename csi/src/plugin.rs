//! The two gRPC servers: CSI Identity and Node on the driver's socket, and
//! the kubelet's plugin registration on a socket in its `plugins_registry`
//! directory (so no registrar sidecar is needed).

use crate::events::{RefreshEvents, RefreshedPod};
use crate::grpc::{Dispatch, Reply, Request, unary, unimplemented};
use crate::metrics::{Metrics, Outcome};
use crate::proto::*;
use crate::publish::{self, Unseal};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tonic::Status;
use tonic::codegen::BoxFuture;

/// The Identity and Node services of one node.
pub struct Plugin {
    pub driver: String,
    pub node_id: String,
    pub unseal: Unseal,
    pub metrics: Arc<Metrics>,
    /// None: refreshes are logged and counted, not posted as Events.
    pub events: Option<RefreshEvents>,
}

impl Dispatch for Plugin {
    fn dispatch(self: Arc<Self>, path: &str, request: Request) -> BoxFuture<Reply, Infallible> {
        let plugin = self;
        match path {
            "/csi.v1.Identity/GetPluginInfo" => {
                unary(request, move |_: GetPluginInfoRequest| async move {
                    Ok(GetPluginInfoResponse {
                        name: plugin.driver.clone(),
                        vendor_version: env!("CARGO_PKG_VERSION").into(),
                        manifest: Default::default(),
                    })
                })
            }
            "/csi.v1.Identity/GetPluginCapabilities" => {
                unary(request, |_: GetPluginCapabilitiesRequest| async {
                    Ok(GetPluginCapabilitiesResponse::default())
                })
            }
            "/csi.v1.Identity/Probe" => unary(request, |_: ProbeRequest| async {
                Ok(ProbeResponse { ready: Some(true) })
            }),
            "/csi.v1.Node/NodeGetCapabilities" => {
                unary(request, |_: NodeGetCapabilitiesRequest| async {
                    Ok(NodeGetCapabilitiesResponse::default())
                })
            }
            "/csi.v1.Node/NodeGetInfo" => unary(request, move |_: NodeGetInfoRequest| async move {
                Ok(NodeGetInfoResponse {
                    node_id: plugin.node_id.clone(),
                    max_volumes_per_node: 0,
                })
            }),
            "/csi.v1.Node/NodePublishVolume" => {
                unary(request, move |asked: NodePublishVolumeRequest| async move {
                    plugin.publish(asked).await
                })
            }
            "/csi.v1.Node/NodeUnpublishVolume" => unary(
                request,
                move |asked: NodeUnpublishVolumeRequest| async move { plugin.unpublish(asked) },
            ),
            other => unimplemented(other),
        }
    }
}

impl Plugin {
    async fn publish(
        &self,
        request: NodePublishVolumeRequest,
    ) -> Result<NodePublishVolumeResponse, Status> {
        let started = Instant::now();
        let result = self.publish_volume(request).await;
        let outcome = match &result {
            Ok(outcome) => *outcome,
            Err(status) => Outcome::of_error(status),
        };
        self.metrics
            .published(outcome, started.elapsed().as_secs_f64());
        result.map(|_| NodePublishVolumeResponse {})
    }

    async fn publish_volume(&self, request: NodePublishVolumeRequest) -> Result<Outcome, Status> {
        let target = PathBuf::from(&request.target_path);
        let asked = publish::asked(&request, &self.unseal.audience).inspect_err(|status| {
            tracing::warn!(volume = %request.volume_id, reason = status.message(), "publish refused");
        })?;
        let (namespace, pod, pod_uid, secrets) = (
            asked.namespace.clone(),
            asked.pod.clone(),
            asked.pod_uid.clone(),
            asked.secrets.join(","),
        );
        match publish::publish(&self.unseal, &target, asked).await {
            Ok(outcome) => {
                tracing::info!(%namespace, %pod, %secrets, ?outcome, "published");
                if let (Outcome::Refreshed, Some(events)) = (outcome, &self.events) {
                    events.refreshed(RefreshedPod {
                        namespace,
                        name: pod,
                        uid: pod_uid,
                        secrets,
                    });
                }
                Ok(outcome)
            }
            Err(status) => {
                tracing::warn!(%namespace, %pod, %secrets, reason = status.message(), "publish failed");
                Err(status)
            }
        }
    }

    fn unpublish(
        &self,
        request: NodeUnpublishVolumeRequest,
    ) -> Result<NodeUnpublishVolumeResponse, Status> {
        if !request.target_path.starts_with('/') {
            return Err(Status::invalid_argument(
                "target_path must be an absolute path",
            ));
        }
        publish::unpublish(Path::new(&request.target_path))?;
        self.metrics.unpublished();
        tracing::info!(volume = %request.volume_id, "unpublished and wiped");
        Ok(NodeUnpublishVolumeResponse {})
    }
}

/// The kubelet's registration API for this plugin.
pub struct Registration {
    pub driver: String,
    pub endpoint: PathBuf,
}

impl Dispatch for Registration {
    fn dispatch(self: Arc<Self>, path: &str, request: Request) -> BoxFuture<Reply, Infallible> {
        let registration = self;
        match path {
            "/pluginregistration.Registration/GetInfo" => {
                unary(request, move |_: InfoRequest| async move {
                    Ok(PluginInfo {
                        r#type: "CSIPlugin".into(),
                        name: registration.driver.clone(),
                        endpoint: registration.endpoint.display().to_string(),
                        supported_versions: vec!["1.0.0".into()],
                    })
                })
            }
            "/pluginregistration.Registration/NotifyRegistrationStatus" => {
                unary(request, |status: RegistrationStatus| async move {
                    if status.plugin_registered {
                        tracing::info!("the kubelet registered the plugin");
                    } else {
                        tracing::error!(error = %status.error, "the kubelet refused to register the plugin");
                    }
                    Ok(RegistrationStatusResponse {})
                })
            }
            other => unimplemented(other),
        }
    }
}
