//! `SealedSecret`: encrypted values that are safe to commit to Git.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::validation::{
    Collector, DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN, Invalid, is_dns_label, is_dns_subdomain,
};

/// Standard base64 with padding, the text form of an envelope.
pub const ENVELOPE_PATTERN: &str = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$";

/// Item names: what a Kubernetes Secret accepts as a data key. Items also
/// become file names in the injected volume, so `.` and `..` are refused.
pub const ITEM_NAME_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// Values encrypted under a ManagedKey, one envelope per item. Commit these
/// to Git; only the key's provider can decrypt them.
// kube's `printcolumn(...)` repeats `type_ =` etc. per column by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "keyward.io",
    version = "v1alpha1",
    kind = "SealedSecret",
    plural = "sealedsecrets",
    shortname = "kss",
    category = "keyward",
    namespaced,
    status = "SealedSecretStatus",
    derive = "PartialEq",
    doc = "Values encrypted under a ManagedKey, safe to commit to Git. Pods that opt in get them as files at start-up; a Kubernetes Secret is created only when spec.template is set.",
    printcolumn(
        name = "Key",
        type_ = "string",
        json_path = ".spec.keyRef.name",
        description = "ManagedKey that wraps the data key"
    ),
    printcolumn(name = "Scope", type_ = "string", json_path = ".spec.scope"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Git-Behind",
        type_ = "boolean",
        json_path = ".status.rewrappedSinceGit",
        priority = 1,
        description = "The cluster copy was re-wrapped; run `keyward rewrap` and commit"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    /// The ManagedKey whose current version wrapped this secret's data key.
    pub key_ref: KeyReference,

    /// What the ciphertext is bound to. `strict` (default) binds each value
    /// to this namespace, this SealedSecret's name and the item name, so a
    /// value copied anywhere else does not decrypt. `namespace` binds only
    /// the namespace, so items may be moved between SealedSecrets there.
    #[serde(default)]
    pub scope: Scope,

    /// Which ServiceAccounts may unseal. When omitted, any pod in this
    /// namespace that opts in may unseal, like a Kubernetes Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,

    /// Item name -> envelope (standard base64) produced by `keyward seal`.
    /// Item names follow Secret data key rules and become file names.
    #[schemars(schema_with = "encrypted_data_schema")]
    pub encrypted_data: BTreeMap<String, String>,

    /// Also materialise a Kubernetes Secret with these properties. Off by
    /// default: without a template, plaintext never reaches etcd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,
}

/// Reference to a ManagedKey.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyReference {
    /// Name of the ManagedKey.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,

    /// Namespace of the ManagedKey; defaults to the namespace of the object
    /// that holds this reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
}

/// What a sealed value is cryptographically bound to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    /// Bound to namespace, SealedSecret name and item name.
    #[default]
    Strict,
    /// Bound to the namespace only.
    Namespace,
}

/// Who may unseal.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    /// Names of ServiceAccounts in this namespace whose pods may unseal.
    /// Write the plain name (`api`), not `system:serviceaccount:ns:api`.
    #[serde(default)]
    #[schemars(inner(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN)))]
    pub service_accounts: Vec<String>,
}

/// Properties of the Kubernetes Secret to create from the unsealed values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Secret type, e.g. `Opaque` (default) or `kubernetes.io/tls`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub type_: Option<String>,

    /// Labels to put on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Annotations to put on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What the operator last observed about this SealedSecret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Item name -> version of the ManagedKey that wrapped it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub key_versions: BTreeMap<String, u32>,

    /// True when the operator re-wrapped the cluster copy (after a
    /// rotation) and the copy in Git still uses an older key version. Run
    /// `keyward rewrap` and commit the result.
    #[serde(default)]
    pub rewrapped_since_git: bool,

    /// Set while the copy in Git is behind the key's primary version and
    /// the operator does not bring it forward in the cluster (it re-wrapped
    /// the cluster copy already, or an applier restored Git's copy after
    /// that re-wrap). Retention keeps the Deactivated versions listed until
    /// Git catches up; a Compromised one is retired whatever Git holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_behind: Option<GitBehind>,

    /// Standard conditions: `Ready` (every item can be unsealed) and
    /// `Degraded` (e.g. an item uses a Deactivated or Compromised version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// The key versions the Git copy of a SealedSecret needs, and since when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitBehind {
    /// Versions of the key that Git's copy is sealed under; retention keeps
    /// them until Git catches up (run `keyward rewrap` and commit).
    pub versions: Vec<u32>,
    /// When the operator first saw Git's copy behind.
    pub since: Time,
}

fn encrypted_data_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "minProperties": 1,
        "additionalProperties": {
            "type": "string",
            "minLength": 4,
            "pattern": ENVELOPE_PATTERN,
        },
    })
}

impl SealedSecret {
    /// The ServiceAccounts `spec.access` lets unseal; empty: any.
    pub fn service_accounts(&self) -> Vec<String> {
        Access::service_accounts_of(self.spec.access.as_ref())
    }

    /// Namespace of the referenced ManagedKey: `keyRef.namespace`, or this
    /// SealedSecret's own namespace.
    pub fn key_namespace(&self) -> Option<&str> {
        self.spec
            .key_ref
            .namespace_or(self.metadata.namespace.as_deref())
    }
}

impl KeyReference {
    /// `namespace`, or `own` (the namespace of the object holding the
    /// reference).
    pub fn namespace_or<'a>(&'a self, own: Option<&'a str>) -> Option<&'a str> {
        self.namespace.as_deref().or(own)
    }
}

impl Access {
    /// The ServiceAccounts `access` lets unseal; empty (no `access`): any.
    pub fn service_accounts_of(access: Option<&Access>) -> Vec<String> {
        access
            .map(|access| access.service_accounts.clone())
            .unwrap_or_default()
    }
}

impl SealedSecretSpec {
    /// Checks what the OpenAPI schema cannot express, with messages the
    /// admission webhook returns to the user as is.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut errors = Collector::default();
        self.key_ref.check("spec.keyRef", &mut errors);
        if self.encrypted_data.is_empty() {
            errors.push(
                "spec.encryptedData",
                "is empty; add at least one item with `keyward seal`",
            );
        }
        for (item, envelope) in &self.encrypted_data {
            let field = format!("spec.encryptedData[{item}]");
            if let Some(problem) = item_name_problem(item) {
                errors.push(&field, problem);
            }
            if !is_padded_base64(envelope) {
                errors.push(
                    &field,
                    "is not a sealed value (standard base64 with padding); paste the output of `keyward seal` unchanged",
                );
            }
        }
        if let Some(access) = &self.access {
            for (i, sa) in access.service_accounts.iter().enumerate() {
                let field = format!("spec.access.serviceAccounts[{i}]");
                if let Some(name) = sa.strip_prefix("system:serviceaccount:") {
                    let short = name.rsplit(':').next().unwrap_or(name);
                    errors.push(
                        field,
                        format!("write the ServiceAccount name only, e.g. `{short}`; it must be in this namespace"),
                    );
                } else if !is_dns_subdomain(sa) {
                    errors.push(
                        field,
                        format!("`{sa}` is not a valid ServiceAccount name (lowercase letters, digits, '-' and '.')"),
                    );
                }
            }
        }
        let restricted = self
            .access
            .as_ref()
            .is_some_and(|a| !a.service_accounts.is_empty());
        if restricted && self.template.is_some() {
            errors.push(
                "spec.template",
                "cannot be used with spec.access: a Secret is readable by anything allowed to read Secrets in the namespace, whatever spec.access says; remove spec.template and read the values through the injector, or remove spec.access",
            );
        }
        if let Some(template) = &self.template
            && template.type_.as_deref() == Some("")
        {
            errors.push(
                "spec.template.type",
                "is empty; omit it for `Opaque` or name a Secret type",
            );
        }
        errors.finish()
    }
}

impl KeyReference {
    pub(crate) fn check(&self, field: &str, errors: &mut Collector) {
        if !is_dns_subdomain(&self.name) {
            errors.push(
                format!("{field}.name"),
                format!(
                    "`{}` is not a valid ManagedKey name (lowercase letters, digits, '-' and '.')",
                    self.name
                ),
            );
        }
        if let Some(ns) = &self.namespace
            && !is_dns_label(ns)
        {
            errors.push(
                format!("{field}.namespace"),
                format!("`{ns}` is not a valid namespace name"),
            );
        }
    }
}

fn item_name_problem(item: &str) -> Option<String> {
    let valid_chars = !item.is_empty()
        && item
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid_chars || item.len() > 253 {
        Some(format!(
            "item name `{item}` may only contain letters, digits, '-', '_' and '.' (at most 253)"
        ))
    } else if item == "." || item == ".." || item.starts_with("..") {
        Some(format!(
            "item name `{item}` is reserved; items become file names, so pick another"
        ))
    } else {
        None
    }
}

fn is_padded_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    let padding = text.len() - body.len();
    !text.is_empty()
        && text.len().is_multiple_of(4)
        && padding <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_check_matches_padding_rules() {
        assert!(is_padded_base64("AAAA"));
        assert!(is_padded_base64("AAA="));
        assert!(is_padded_base64("AA=="));
        assert!(!is_padded_base64("A==="));
        assert!(!is_padded_base64("AAA"));
        assert!(!is_padded_base64("AA-_"));
        assert!(!is_padded_base64(""));
    }

    #[test]
    fn item_names() {
        assert!(item_name_problem("db.password").is_none());
        assert!(item_name_problem("..data").is_some());
        assert!(item_name_problem("a/b").is_some());
        assert!(item_name_problem("").is_some());
    }
}
