//! The plugin's two servers over real unix sockets, called as the kubelet
//! calls them (a tonic client, protobuf on the wire): identity, node info,
//! registration, and refusals that say what to configure. Mounting and
//! unsealing need root and a cluster: `e2e/tests/csi.rs`.

use keyward_csi::metrics::Metrics;
use keyward_csi::plugin::{Plugin, Registration};
use keyward_csi::proto::*;
use keyward_csi::publish::Unseal;
use keyward_csi::serve::{bind, serve};
use std::path::Path;
use std::sync::Arc;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_prost::ProstCodec;

async fn channel(socket: &Path) -> Channel {
    let socket = socket.to_owned();
    Endpoint::try_from("http://[::1]:1")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .unwrap()
}

async fn call<Req, Resp>(
    channel: &Channel,
    path: &'static str,
    request: Req,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(request),
        PathAndQuery::from_static(path),
        ProstCodec::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn the_kubelet_s_calls_are_answered_and_the_rest_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (csi_socket, reg_socket) = (dir.path().join("csi.sock"), dir.path().join("reg.sock"));
    let metrics = Arc::new(Metrics::default());
    let plugin = Arc::new(Plugin {
        driver: "csi.keyward.io".into(),
        node_id: "node-1".into(),
        unseal: Unseal {
            url: "https://127.0.0.1:1/v1/unseal".into(),
            ca_file: dir.path().join("ca.pem"),
            audience: "keyward".into(),
        },
        metrics: metrics.clone(),
        events: None,
    });
    let registration = Arc::new(Registration {
        driver: "csi.keyward.io".into(),
        endpoint: csi_socket.clone(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let csi = bind(&csi_socket).unwrap();
    let reg = bind(&reg_socket).unwrap();
    let servers = tokio::spawn(async move {
        let (a, b) = tokio::sync::oneshot::channel::<()>();
        let _ = tokio::join!(
            serve(csi, plugin, async move {
                let _ = stopped.await;
                let _ = a.send(());
            }),
            serve(reg, registration, async move {
                let _ = b.await;
            }),
        );
    });
    let node = channel(&csi_socket).await;
    let info: GetPluginInfoResponse = call(
        &node,
        "/csi.v1.Identity/GetPluginInfo",
        GetPluginInfoRequest {},
    )
    .await
    .unwrap();
    assert_eq!(info.name, "csi.keyward.io");
    let probe: ProbeResponse = call(&node, "/csi.v1.Identity/Probe", ProbeRequest {})
        .await
        .unwrap();
    assert_eq!(probe.ready, Some(true));
    let caps: NodeGetCapabilitiesResponse = call(
        &node,
        "/csi.v1.Node/NodeGetCapabilities",
        NodeGetCapabilitiesRequest {},
    )
    .await
    .unwrap();
    assert!(caps.capabilities.is_empty(), "no staging, no stats");
    let node_info: NodeGetInfoResponse =
        call(&node, "/csi.v1.Node/NodeGetInfo", NodeGetInfoRequest {})
            .await
            .unwrap();
    assert_eq!(node_info.node_id, "node-1");

    // Staging is not served; a publish without the kubelet's token says why.
    let staged = call::<_, NodePublishVolumeResponse>(
        &node,
        "/csi.v1.Node/NodeStageVolume",
        NodeGetInfoRequest {},
    )
    .await
    .unwrap_err();
    assert_eq!(staged.code(), Code::Unimplemented);
    let mut publish = NodePublishVolumeRequest {
        volume_id: "csi-1".into(),
        target_path: dir.path().join("target").display().to_string(),
        volume_capability: Some(VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume::default())),
            access_mode: None,
        }),
        ..NodePublishVolumeRequest::default()
    };
    for (key, value) in [
        ("csi.storage.k8s.io/ephemeral", "true"),
        ("secrets", "db"),
        ("csi.storage.k8s.io/pod.name", "app"),
        ("csi.storage.k8s.io/pod.namespace", "team"),
    ] {
        publish.volume_context.insert(key.into(), value.into());
    }
    let refused =
        call::<_, NodePublishVolumeResponse>(&node, "/csi.v1.Node/NodePublishVolume", publish)
            .await
            .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("tokenRequests"),
        "{}",
        refused.message()
    );
    assert!(
        !dir.path().join("target").exists(),
        "nothing mounted or created"
    );
    assert!(
        metrics
            .render()
            .contains(r#"keyward_csi_publishes_total{outcome="invalid"} 1"#),
        "the refusal is counted"
    );
    let unpublished: NodeUnpublishVolumeResponse = call(
        &node,
        "/csi.v1.Node/NodeUnpublishVolume",
        NodeUnpublishVolumeRequest {
            volume_id: "csi-1".into(),
            target_path: dir.path().join("target").display().to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        unpublished,
        NodeUnpublishVolumeResponse {},
        "a volume already gone is fine"
    );

    let kubelet = channel(&reg_socket).await;
    let plugin_info: PluginInfo = call(
        &kubelet,
        "/pluginregistration.Registration/GetInfo",
        InfoRequest {},
    )
    .await
    .unwrap();
    assert_eq!(plugin_info.r#type, "CSIPlugin");
    assert_eq!(plugin_info.endpoint, csi_socket.display().to_string());
    assert_eq!(plugin_info.supported_versions, ["1.0.0"]);
    let _: RegistrationStatusResponse = call(
        &kubelet,
        "/pluginregistration.Registration/NotifyRegistrationStatus",
        RegistrationStatus {
            plugin_registered: true,
            error: String::new(),
        },
    )
    .await
    .unwrap();
    let _ = stop.send(());
    servers.await.unwrap();
}
