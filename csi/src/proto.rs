//! The protobuf messages Keyward's node plugin speaks, written by hand from
//! the CSI v1 specification (package `csi.v1`) and the kubelet's plugin
//! registration API (package `pluginregistration`): only the RPCs an
//! inline ephemeral volume needs. Field numbers are the specification's;
//! the golden-byte tests below pin them.

use std::collections::HashMap;

// ---- csi.v1 Identity

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetPluginInfoRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetPluginInfoResponse {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub vendor_version: String,
    #[prost(map = "string, string", tag = "3")]
    pub manifest: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetPluginCapabilitiesRequest {}

/// A node-only plugin advertises no capability (no controller service).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetPluginCapabilitiesResponse {
    #[prost(message, repeated, tag = "1")]
    pub capabilities: Vec<Empty>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProbeRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProbeResponse {
    /// `google.protobuf.BoolValue`; absent means ready.
    #[prost(message, optional, tag = "1")]
    pub ready: Option<bool>,
}

/// A message with no fields, standing in for capability lists left empty.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

// ---- csi.v1 Node

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeGetCapabilitiesRequest {}

/// No staging, no volume stats: the kubelet then calls only
/// NodePublishVolume and NodeUnpublishVolume.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeGetCapabilitiesResponse {
    #[prost(message, repeated, tag = "1")]
    pub capabilities: Vec<Empty>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeGetInfoRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeGetInfoResponse {
    #[prost(string, tag = "1")]
    pub node_id: String,
    #[prost(int64, tag = "2")]
    pub max_volumes_per_node: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodePublishVolumeRequest {
    #[prost(string, tag = "1")]
    pub volume_id: String,
    #[prost(map = "string, string", tag = "2")]
    pub publish_context: HashMap<String, String>,
    #[prost(string, tag = "3")]
    pub staging_target_path: String,
    #[prost(string, tag = "4")]
    pub target_path: String,
    #[prost(message, optional, tag = "5")]
    pub volume_capability: Option<VolumeCapability>,
    #[prost(bool, tag = "6")]
    pub readonly: bool,
    /// `nodePublishSecretRef`'s Secret; Keyward takes none.
    #[prost(map = "string, string", tag = "7")]
    pub secrets: HashMap<String, String>,
    #[prost(map = "string, string", tag = "8")]
    pub volume_context: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodePublishVolumeResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeUnpublishVolumeRequest {
    #[prost(string, tag = "1")]
    pub volume_id: String,
    #[prost(string, tag = "2")]
    pub target_path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeUnpublishVolumeResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct VolumeCapability {
    #[prost(oneof = "AccessType", tags = "1, 2")]
    pub access_type: Option<AccessType>,
    #[prost(message, optional, tag = "3")]
    pub access_mode: Option<AccessMode>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AccessType {
    #[prost(message, tag = "1")]
    Block(Empty),
    #[prost(message, tag = "2")]
    Mount(MountVolume),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MountVolume {
    #[prost(string, tag = "1")]
    pub fs_type: String,
    #[prost(string, repeated, tag = "2")]
    pub mount_flags: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AccessMode {
    #[prost(int32, tag = "1")]
    pub mode: i32,
}

// ---- pluginregistration (served by the plugin, called by the kubelet)

#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginInfo {
    /// `CSIPlugin`.
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub name: String,
    /// The CSI socket's absolute path.
    #[prost(string, tag = "3")]
    pub endpoint: String,
    #[prost(string, repeated, tag = "4")]
    pub supported_versions: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RegistrationStatus {
    #[prost(bool, tag = "1")]
    pub plugin_registered: bool,
    #[prost(string, tag = "2")]
    pub error: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RegistrationStatusResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn probe_ready_is_a_bool_value_wrapper() {
        let ready = ProbeResponse { ready: Some(true) }.encode_to_vec();
        assert_eq!(ready, [0x0a, 0x02, 0x08, 0x01]);
        assert_eq!(
            ProbeResponse { ready: Some(false) }.encode_to_vec(),
            [0x0a, 0x00]
        );
    }

    /// Bytes as a CSI client encodes them: target_path (4), the mount
    /// capability (5 → oneof 2) with access mode (3), readonly (6), one
    /// volume_context entry (8).
    #[test]
    fn a_publish_request_decodes_field_by_field() {
        let mut bytes = vec![0x0a, 0x02, b'v', b'1'];
        bytes.extend([0x22, 0x02, b'/', b't']);
        bytes.extend([0x2a, 0x06, 0x12, 0x00, 0x1a, 0x02, 0x08, 0x01]);
        bytes.extend([0x30, 0x01]);
        bytes.extend([0x42, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v']);
        let request = NodePublishVolumeRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(request.volume_id, "v1");
        assert_eq!(request.target_path, "/t");
        assert!(request.readonly);
        assert_eq!(request.volume_context["k"], "v");
        let capability = request.volume_capability.unwrap();
        assert_eq!(
            capability.access_type,
            Some(AccessType::Mount(MountVolume::default()))
        );
        assert_eq!(capability.access_mode.unwrap().mode, 1);
    }

    #[test]
    fn plugin_info_fields_are_numbered_as_the_kubelet_reads_them() {
        let info = PluginInfo {
            r#type: "C".into(),
            name: "n".into(),
            endpoint: "e".into(),
            supported_versions: vec!["1".into()],
        };
        assert_eq!(
            info.encode_to_vec(),
            [0x0a, 1, b'C', 0x12, 1, b'n', 0x1a, 1, b'e', 0x22, 1, b'1']
        );
        let status = RegistrationStatus::decode([0x08, 0x01, 0x12, 0x01, b'x'].as_slice()).unwrap();
        assert!(status.plugin_registered);
        assert_eq!(status.error, "x");
    }
}
