//! The JSON the keys API answers with: key bundles (JWK, attributes,
//! tags), list items and deleted-key bundles.

use crate::vault::{Key, Vault, Version};
use serde_json::{Value, json};

impl Vault {
    pub(crate) fn recovery_level(&self) -> &'static str {
        // Key Vault says "Customized" when the retention is under 90 days.
        match (
            self.settings.retention_days < 90,
            self.settings.purge_protection,
        ) {
            (false, false) => "Recoverable+Purgeable",
            (false, true) => "Recoverable",
            (true, false) => "CustomizedRecoverable+Purgeable",
            (true, true) => "CustomizedRecoverable",
        }
    }

    pub(crate) fn kid(&self, name: &str, version: &Version) -> String {
        format!("{}/keys/{name}/{}", self.settings.url, version.id)
    }

    pub(crate) fn attributes(&self, version: &Version) -> Value {
        let mut attributes = json!({
            "enabled": version.enabled,
            "created": version.created,
            "updated": version.updated,
            "recoveryLevel": self.recovery_level(),
            "recoverableDays": self.settings.retention_days,
            "exportable": false,
        });
        if let Some(nbf) = version.nbf {
            attributes["nbf"] = json!(nbf);
        }
        if let Some(exp) = version.exp {
            attributes["exp"] = json!(exp);
        }
        attributes
    }

    /// A `KeyBundle`: the JWK, attributes and tags of one version.
    pub(crate) fn bundle(&self, name: &str, version: &Version) -> Value {
        let mut jwk = version.material.public_jwk();
        jwk["kid"] = json!(self.kid(name, version));
        jwk["kty"] = json!(version.kty);
        jwk["key_ops"] = json!(version.key_ops);
        let mut value = json!({ "key": jwk, "attributes": self.attributes(version) });
        if !version.tags.is_empty() {
            value["tags"] = json!(version.tags);
        }
        value
    }

    /// A `KeyItem`, as listed: no key material.
    pub(crate) fn item(&self, name: &str, version: &Version) -> Value {
        let mut value =
            json!({ "kid": self.kid(name, version), "attributes": self.attributes(version) });
        if !version.tags.is_empty() {
            value["tags"] = json!(version.tags);
        }
        value
    }

    pub(crate) fn deleted_bundle(&self, name: &str, key: &Key) -> Value {
        let latest = key.versions.last().expect("keys have a version");
        let mut value = self.bundle(name, latest);
        if let Some(deleted) = &key.deleted {
            value["recoveryId"] = json!(format!("{}/deletedkeys/{name}", self.settings.url));
            value["deletedDate"] = json!(deleted.date);
            value["scheduledPurgeDate"] = json!(deleted.scheduled_purge);
        }
        value
    }
}
