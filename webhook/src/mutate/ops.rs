//! The JSONPatch operations a mutation is made of, typed: the answer to a
//! review is written straight from them. Built as `serde_json::Value`s they
//! cost more CPU than parsing the Pod (a map per object, docs/performance.md
//! "/mutate").

use k8s_openapi::api::core::v1::{Container, Volume, VolumeMount};
use serde::Serialize;

/// One operation; serialises as `{"op": "add"|"replace", "path", "value"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    Add {
        path: String,
        value: Added,
    },
    /// Only a container's `command` is replaced (env-exec's wrapper).
    Replace {
        path: String,
        value: Vec<String>,
    },
}

/// What an `add` puts in: one item appended to a list (`path/-`), or a list
/// that did not exist.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Added {
    Volume(Box<Volume>),
    Volumes(Vec<Volume>),
    Container(Box<Container>),
    Containers(Vec<Container>),
    Mount(Box<VolumeMount>),
    Mounts(Vec<VolumeMount>),
}

impl From<Volume> for Added {
    fn from(volume: Volume) -> Self {
        Added::Volume(Box::new(volume))
    }
}

impl From<Vec<Volume>> for Added {
    fn from(volumes: Vec<Volume>) -> Self {
        Added::Volumes(volumes)
    }
}

impl From<VolumeMount> for Added {
    fn from(mount: VolumeMount) -> Self {
        Added::Mount(Box::new(mount))
    }
}

impl From<Vec<VolumeMount>> for Added {
    fn from(mounts: Vec<VolumeMount>) -> Self {
        Added::Mounts(mounts)
    }
}

/// Appends `values` to the list at `path`: one `add` per item when the list
/// `exists`, else one `add` creating it. Nothing when `values` is empty.
pub fn push_all<T>(ops: &mut Vec<Op>, path: &str, exists: bool, values: Vec<T>)
where
    T: Into<Added>,
    Vec<T>: Into<Added>,
{
    if values.is_empty() {
        return;
    }
    if exists {
        for value in values {
            ops.push(Op::Add {
                path: format!("{path}/-"),
                value: value.into(),
            });
        }
    } else {
        ops.push(Op::Add {
            path: path.to_owned(),
            value: values.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_serialise_as_jsonpatch() {
        let mut ops = Vec::new();
        let mount = || VolumeMount {
            name: "v".into(),
            mount_path: "/m".into(),
            ..Default::default()
        };
        push_all(
            &mut ops,
            "/spec/containers/0/volumeMounts",
            true,
            vec![mount()],
        );
        push_all(
            &mut ops,
            "/spec/containers/1/volumeMounts",
            false,
            vec![mount()],
        );
        push_all::<VolumeMount>(&mut ops, "/nothing", false, Vec::new());
        ops.push(Op::Replace {
            path: "/spec/containers/0/command".into(),
            value: vec!["/w".into()],
        });
        let mount = json!({"name": "v", "mountPath": "/m"});
        assert_eq!(
            serde_json::to_value(&ops).unwrap(),
            json!([
                {"op": "add", "path": "/spec/containers/0/volumeMounts/-", "value": mount},
                {"op": "add", "path": "/spec/containers/1/volumeMounts", "value": [mount]},
                {"op": "replace", "path": "/spec/containers/0/command", "value": ["/w"]},
            ])
        );
        let patch: json_patch::Patch = serde_json::from_value(serde_json::to_value(&ops).unwrap())
            .expect("reads as a JSONPatch");
        assert_eq!(patch.0.len(), 3);
    }
}
