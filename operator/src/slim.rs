//! What the watch stores keep of each object: everything the reconciles
//! read, without `metadata.managedFields` and kubectl's last-applied
//! annotation (which repeats the whole object, ciphertext included). The
//! reconciles write with targeted patches, never the cached object back,
//! so nothing on the server loses them.

use kube::Resource;

/// `kubectl apply`'s copy of the applied object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub fn slim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_crds::SealedSecret;

    #[test]
    fn managed_fields_and_the_last_applied_copy_go_the_rest_stays() {
        let mut secret: SealedSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
            "metadata": {
                "name": "db", "namespace": "apps",
                "annotations": {LAST_APPLIED: "{...}", "keyward.io/keep": "yes"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {"keyRef": {"name": "k"}, "encryptedData": {"a": "b"}},
        }))
        .unwrap();
        slim(&mut secret);
        assert!(secret.metadata.managed_fields.is_none());
        let annotations = secret.metadata.annotations.unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations["keyward.io/keep"], "yes");
        assert_eq!(secret.spec.encrypted_data.len(), 1);
    }
}
