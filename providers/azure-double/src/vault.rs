//! The double's state and Key Vault's rules for keys: versions with their
//! own attributes and tags, soft delete with a retention period and
//! purge protection (answers rendered by [`crate::render`]).

use crate::material::{Kind, Material};
use crate::ops;
use crate::policy::{self, Policy};
use crate::wire::{self, Answer, Fault, Route, bad_parameter, fault};
use keyward_core::crypto;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub(crate) struct Version {
    pub(crate) id: String,
    pub(crate) kty: &'static str,
    pub(crate) material: Material,
    pub(crate) key_ops: Vec<String>,
    pub(crate) enabled: bool,
    pub(crate) nbf: Option<i64>,
    pub(crate) exp: Option<i64>,
    pub(crate) created: i64,
    pub(crate) updated: i64,
    pub(crate) tags: BTreeMap<String, String>,
}

pub(crate) struct Deleted {
    pub(crate) date: i64,
    pub(crate) scheduled_purge: i64,
}

#[derive(Default)]
pub(crate) struct Key {
    /// In creation order; the last one is the key's current version.
    pub(crate) versions: Vec<Version>,
    pub(crate) deleted: Option<Deleted>,
    pub(crate) policy: Option<Policy>,
}

/// How the vault is set up (see [`crate::Options`]).
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) retention_days: u32,
    pub(crate) purge_protection: bool,
    pub(crate) page_size: usize,
}

pub(crate) struct Vault {
    pub(crate) settings: Settings,
    pub(crate) keys: HashMap<String, Key>,
}

pub(crate) type Shared = Arc<Mutex<Vault>>;

pub(crate) fn now() -> i64 {
    wire::unix(SystemTime::now())
}

fn not_found(what: &str) -> Fault {
    fault(
        404,
        "KeyNotFound",
        format!(
            "A key with (name/id) {what} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command."
        ),
    )
}

fn deleted_not_found(name: &str) -> Fault {
    fault(404, "KeyNotFound", format!("Deleted Key not found: {name}"))
}

/// A version id: 32 hex digits, as Key Vault makes them.
fn version_id() -> String {
    let mut bytes = [0u8; 16];
    crypto::fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Vault {
    /// A key that exists and is not deleted.
    pub(crate) fn live(&self, name: &str) -> Result<&Key, Fault> {
        match self.keys.get(name) {
            Some(key) if key.deleted.is_none() && !key.versions.is_empty() => Ok(key),
            _ => Err(not_found(name)),
        }
    }

    fn live_mut(&mut self, name: &str) -> Result<&mut Key, Fault> {
        match self.keys.get_mut(name) {
            Some(key) if key.deleted.is_none() && !key.versions.is_empty() => Ok(key),
            _ => Err(not_found(name)),
        }
    }

    fn version<'k>(key: &'k Key, name: &str, id: Option<&str>) -> Result<&'k Version, Fault> {
        match id {
            None => Ok(key.versions.last().expect("keys have a version")),
            Some(id) => key
                .versions
                .iter()
                .find(|v| v.id == id)
                .ok_or_else(|| not_found(&format!("{name}/{id}"))),
        }
    }
}

/// What a new version gets besides its material.
struct Template {
    kind: Kind,
    kty: &'static str,
    key_ops: Vec<String>,
    enabled: bool,
    nbf: Option<i64>,
    exp: Option<i64>,
    tags: BTreeMap<String, String>,
}

fn tags_of(value: &Value) -> Result<BTreeMap<String, String>, Fault> {
    let Some(map) = value.as_object() else {
        return Err(bad_parameter("tags must be an object of strings."));
    };
    // Key Vault's limits: 15 tags, names up to 512 and values up to 256
    // characters.
    if map.len() > 15 {
        return Err(bad_parameter("A key may have at most 15 tags."));
    }
    map.iter()
        .map(|(k, v)| match v.as_str() {
            Some(v) if k.len() <= 512 && v.len() <= 256 => Ok((k.clone(), v.to_owned())),
            _ => Err(bad_parameter(format!("Invalid tag `{k}`."))),
        })
        .collect()
}

const KEY_OPS: &[&str] = &[
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "wrapKey",
    "unwrapKey",
    "import",
    "export",
];

fn ops_of(value: &Value) -> Result<Vec<String>, Fault> {
    let ops: Option<Vec<String>> = value.as_array().and_then(|ops| {
        ops.iter()
            .map(|o| {
                o.as_str()
                    .filter(|o| KEY_OPS.contains(o))
                    .map(str::to_owned)
            })
            .collect()
    });
    ops.ok_or_else(|| bad_parameter("key_ops must be a list of known key operations."))
}

fn time_of(value: &Value, field: &str) -> Result<Option<i64>, Fault> {
    match value {
        Value::Null => Ok(None),
        v => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad_parameter(format!("attributes.{field} must be Unix seconds."))),
    }
}

fn template(body: &Value) -> Result<Template, Fault> {
    let (kind, kty) = Kind::parse(body)?;
    let attributes = &body["attributes"];
    if attributes["exportable"] == json!(true) {
        return Err(bad_parameter(
            "Exportable keys need a release policy (not modelled).",
        ));
    }
    Ok(Template {
        kind,
        kty,
        key_ops: match &body["key_ops"] {
            Value::Null => kind.default_ops(),
            ops => ops_of(ops)?,
        },
        enabled: attributes["enabled"].as_bool().unwrap_or(true),
        nbf: time_of(&attributes["nbf"], "nbf")?,
        exp: time_of(&attributes["exp"], "exp")?,
        tags: match &body["tags"] {
            Value::Null => BTreeMap::new(),
            tags => tags_of(tags)?,
        },
    })
}

/// A version of key `name` made from a create request's `body`, as a tool
/// other than Keyward (Terraform, `az`) makes one.
pub(crate) async fn create(shared: &Shared, name: &str, body: &Value) -> Answer {
    add_version(shared, name, template(body)?).await
}

/// Adds a version made from `template` to key `name` (creating the key),
/// generating the material off the runtime first. The lock is not held
/// while RSA keys are generated; the deleted state is checked again after.
async fn add_version(shared: &Shared, name: &str, template: Template) -> Answer {
    let kind = template.kind;
    let material = tokio::task::spawn_blocking(move || Material::generate(kind))
        .await
        .expect("key generation");
    let mut vault = shared.lock().unwrap();
    if vault.keys.get(name).is_some_and(|k| k.deleted.is_some()) {
        return Err(in_deleted_state(name));
    }
    let now = now();
    let version = Version {
        id: version_id(),
        kty: template.kty,
        material,
        key_ops: template.key_ops,
        enabled: template.enabled,
        nbf: template.nbf,
        exp: template.exp,
        created: now,
        updated: now,
        tags: template.tags,
    };
    let key = vault.keys.entry(name.to_owned()).or_default();
    key.versions.push(version);
    let vault = &*vault;
    let key = &vault.keys[name];
    Ok(vault.bundle(name, key.versions.last().expect("just added")))
}

fn in_deleted_state(name: &str) -> Fault {
    fault(
        409,
        "Conflict",
        format!("Key {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged."),
    )
    .with_inner("ObjectIsDeletedButRecoverable")
}

/// The template of a rotation: the current version's type, size,
/// operations and tags, and `exp` from the rotation policy's expiryTime.
fn rotation_template(vault: &Vault, name: &str) -> Result<Template, Fault> {
    let key = vault.live(name)?;
    let latest = key.versions.last().expect("keys have a version");
    Ok(Template {
        kind: latest.material.kind(),
        kty: latest.kty,
        key_ops: latest.key_ops.clone(),
        enabled: true,
        nbf: None,
        exp: key
            .policy
            .as_ref()
            .and_then(Policy::expiry_secs)
            .map(|secs| now() + secs),
        tags: latest.tags.clone(),
    })
}

pub(crate) async fn rotate(shared: &Shared, name: &str) -> Answer {
    let template = rotation_template(&shared.lock().unwrap(), name)?;
    add_version(shared, name, template).await
}

/// Answers one request; `Ok(Value::Null)` means 204 No Content.
pub(crate) async fn dispatch(
    shared: &Shared,
    route: &Route,
    query: &HashMap<String, String>,
    body: &Value,
) -> Answer {
    let name = route.name.as_str();
    if !wire::valid_name(name) {
        return Err(bad_parameter(format!("Invalid key name `{name}`.")));
    }
    match route.rpc {
        "CreateKey" => {
            let template = template(body)?;
            if shared
                .lock()
                .unwrap()
                .keys
                .get(name)
                .is_some_and(|k| k.deleted.is_some())
            {
                return Err(in_deleted_state(name));
            }
            add_version(shared, name, template).await
        }
        "RotateKey" => rotate(shared, name).await,
        _ => {
            let mut vault = shared.lock().unwrap();
            answer(&mut vault, route, query, body)
        }
    }
}

fn answer(
    vault: &mut Vault,
    route: &Route,
    query: &HashMap<String, String>,
    body: &Value,
) -> Answer {
    let name = route.name.as_str();
    let version_id = route.version.as_deref();
    let now = now();
    match route.rpc {
        "GetKey" => {
            let key = vault.live(name)?;
            let version = Vault::version(key, name, version_id)?;
            Ok(vault.bundle(name, version))
        }
        "ListKeyVersions" => {
            let key = vault.live(name)?;
            let size = query
                .get("maxresults")
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|n| (1..=25).contains(n))
                .unwrap_or(vault.settings.page_size);
            let start: usize = query
                .get("$skiptoken")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = key
                .versions
                .iter()
                .skip(start)
                .take(size)
                .map(|v| vault.item(name, v))
                .collect();
            let mut value = json!({ "value": page, "nextLink": null });
            if start + size < key.versions.len() {
                // An absolute link, as Key Vault gives it; the SDK adds
                // api-version again itself.
                value["nextLink"] = json!(format!(
                    "{}/keys/{name}/versions?api-version={}&$skiptoken={}&maxresults={size}",
                    vault.settings.url,
                    query
                        .get("api-version")
                        .map(String::as_str)
                        .unwrap_or("7.5"),
                    start + size
                ));
            }
            Ok(value)
        }
        "UpdateKey" => {
            let key = vault.live_mut(name)?;
            let index = match version_id {
                None => key.versions.len() - 1,
                Some(id) => key
                    .versions
                    .iter()
                    .position(|v| v.id == id)
                    .ok_or_else(|| not_found(&format!("{name}/{id}")))?,
            };
            let attributes = &body["attributes"];
            let enabled = match &attributes["enabled"] {
                Value::Null => None,
                v => Some(
                    v.as_bool()
                        .ok_or_else(|| bad_parameter("enabled must be a boolean."))?,
                ),
            };
            let nbf = time_of(&attributes["nbf"], "nbf")?;
            let exp = time_of(&attributes["exp"], "exp")?;
            let tags = match &body["tags"] {
                Value::Null => None,
                tags => Some(tags_of(tags)?),
            };
            let ops = match &body["key_ops"] {
                Value::Null => None,
                ops => Some(ops_of(ops)?),
            };
            let version = &mut key.versions[index];
            // Absent fields stay as they are (PATCH semantics).
            if let Some(enabled) = enabled {
                version.enabled = enabled;
            }
            if nbf.is_some() {
                version.nbf = nbf;
            }
            if exp.is_some() {
                version.exp = exp;
            }
            if let Some(tags) = tags {
                version.tags = tags;
            }
            if let Some(ops) = ops {
                version.key_ops = ops;
            }
            version.updated = now;
            let key = &vault.keys[name];
            Ok(vault.bundle(name, &key.versions[index]))
        }
        "WrapKey" | "UnwrapKey" | "Sign" | "Verify" => {
            let key = vault.live(name)?;
            let version = Vault::version(key, name, version_id)?;
            let kid = vault.kid(name, version);
            match route.rpc {
                "WrapKey" => ops::wrap(version, &kid, body, now),
                "UnwrapKey" => ops::unwrap(version, &kid, body, now),
                "Sign" => ops::sign(version, &kid, body, now),
                _ => ops::verify(version, body, now),
            }
        }
        "GetKeyRotationPolicy" => {
            let key = vault.live(name)?;
            let id = format!("{}/keys/{name}/rotationpolicy", vault.settings.url);
            Ok(policy::json(&id, key.policy.as_ref()))
        }
        "UpdateKeyRotationPolicy" => {
            let (actions, expiry_time) = policy::parse(body)?;
            let key = vault.live_mut(name)?;
            let created = key.policy.as_ref().map(|p| p.created).unwrap_or(now);
            key.policy = Some(Policy {
                actions,
                expiry_time,
                created,
                updated: now,
            });
            let key = vault.live(name)?;
            let id = format!("{}/keys/{name}/rotationpolicy", vault.settings.url);
            Ok(policy::json(&id, key.policy.as_ref()))
        }
        "DeleteKey" => {
            let retention = i64::from(vault.settings.retention_days) * 86_400;
            let key = vault.live_mut(name)?;
            key.deleted = Some(Deleted {
                date: now,
                scheduled_purge: now + retention,
            });
            Ok(vault.deleted_bundle(name, &vault.keys[name]))
        }
        "GetDeletedKey" => match vault.keys.get(name) {
            Some(key) if key.deleted.is_some() => Ok(vault.deleted_bundle(name, key)),
            _ => Err(deleted_not_found(name)),
        },
        "RecoverDeletedKey" => match vault.keys.get_mut(name) {
            Some(key) if key.deleted.is_some() => {
                key.deleted = None;
                let key = &vault.keys[name];
                Ok(vault.bundle(name, key.versions.last().expect("keys have a version")))
            }
            _ => Err(deleted_not_found(name)),
        },
        "PurgeDeletedKey" => {
            if vault.keys.get(name).is_none_or(|k| k.deleted.is_none()) {
                return Err(deleted_not_found(name));
            }
            if vault.settings.purge_protection {
                return Err(fault(
                    403,
                    "Forbidden",
                    "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.",
                ));
            }
            vault.keys.remove(name);
            Ok(Value::Null)
        }
        other => Err(bad_parameter(format!(
            "{other} is not served by the double."
        ))),
    }
}
