//! The double's state and the state rules of the Cloud KMS REST API:
//! crypto keys, versions, primary versions, destruction, and the
//! cryptographic calls (signing details in [`crate::signing`]).

use crate::rotation;
use crate::signing;
use crate::wire::{self, Answer, Route, Status};
use keyward_core::SecretBytes;
use keyward_core::crypto::{self, RsaKeySize, RsaPrivateKey};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

enum Material {
    Aes(Box<[u8; 32]>),
    Rsa(Box<RsaPrivateKey>),
    /// A signing key's private half, PKCS#8 DER.
    Signing(SecretBytes),
    Generating,
}

pub(crate) struct Version {
    pub(crate) state: &'static str,
    material: Material,
    created: SystemTime,
    destroy_time: Option<SystemTime>,
}

pub(crate) struct Key {
    pub(crate) purpose: &'static str,
    algorithm: &'static str,
    protection: &'static str,
    labels: BTreeMap<String, String>,
    destroy_secs: i64,
    pub(crate) primary: Option<u32>,
    pub(crate) versions: BTreeMap<u32, Version>,
    created: SystemTime,
    /// `rotationPeriod` in seconds.
    pub(crate) rotation_period: Option<i64>,
    /// `nextRotationTime` in seconds since the Unix epoch.
    pub(crate) next_rotation: Option<i64>,
}

/// What a test may look at.
#[derive(Debug, Clone)]
pub struct KeySnapshot {
    pub purpose: &'static str,
    pub algorithm: &'static str,
    pub protection_level: &'static str,
    pub labels: BTreeMap<String, String>,
    pub destroy_scheduled_secs: i64,
    pub rotation_period_secs: Option<i64>,
    pub next_rotation_secs: Option<i64>,
    /// How many versions exist (destroyed ones included).
    pub versions: usize,
    /// The primary version (symmetric keys only).
    pub primary: Option<u32>,
    /// Each version's state: `ENABLED`, `DISABLED`, `DESTROY_SCHEDULED`,
    /// `DESTROYED` or `PENDING_GENERATION`.
    pub version_states: BTreeMap<u32, &'static str>,
}

pub struct Kms {
    rings: Vec<String>,
    pub(crate) keys: HashMap<String, Key>,
}

pub(crate) type Shared = Arc<Mutex<Kms>>;

fn fail<T>(status: Status, message: impl Into<String>) -> Result<T, (Status, String)> {
    Err((status, message.into()))
}

impl Kms {
    pub fn new(ring: &str) -> Kms {
        Kms {
            rings: vec![ring.to_owned()],
            keys: HashMap::new(),
        }
    }

    pub fn snapshot(&self, name: &str) -> Option<KeySnapshot> {
        let key = self.keys.get(name)?;
        Some(KeySnapshot {
            purpose: key.purpose,
            algorithm: key.algorithm,
            protection_level: key.protection,
            labels: key.labels.clone(),
            destroy_scheduled_secs: key.destroy_secs,
            rotation_period_secs: key.rotation_period,
            next_rotation_secs: key.next_rotation,
            versions: key.versions.len(),
            primary: key.primary,
            version_states: key.versions.iter().map(|(n, v)| (*n, v.state)).collect(),
        })
    }

    pub(crate) fn key(&mut self, name: &str) -> Result<&mut Key, (Status, String)> {
        match self.keys.get_mut(name) {
            Some(key) => Ok(key),
            None => fail(Status::NotFound, format!("{name} not found.")),
        }
    }
}

fn version_json(key_name: &str, key: &Key, number: u32) -> Value {
    let version = &key.versions[&number];
    let mut value = json!({
        "name": format!("{key_name}/cryptoKeyVersions/{number}"),
        "state": version.state,
        "protectionLevel": key.protection,
        "algorithm": key.algorithm,
        "createTime": wire::timestamp(version.created),
    });
    if let Some(at) = version.destroy_time {
        value["destroyTime"] = json!(wire::timestamp(at));
    }
    value
}

fn key_json(name: &str, key: &Key) -> Value {
    let mut value = json!({
        "name": name,
        "purpose": key.purpose,
        "createTime": wire::timestamp(key.created),
        "versionTemplate": { "protectionLevel": key.protection, "algorithm": key.algorithm },
        "labels": key.labels,
        "destroyScheduledDuration": format!("{}s", key.destroy_secs),
    });
    if let Some(primary) = key.primary {
        value["primary"] = version_json(name, key, primary);
    }
    if let Some(period) = key.rotation_period {
        value["rotationPeriod"] = json!(format!("{period}s"));
    }
    if let Some(next) = key.next_rotation {
        value["nextRotationTime"] = json!(wire::timestamp(
            SystemTime::UNIX_EPOCH + Duration::from_secs(next as u64)
        ));
    }
    value
}

/// Adds a version with the key's algorithm; asymmetric material (RSA-OAEP
/// and signing keys) is generated in the background, as Cloud KMS does
/// (`PENDING_GENERATION` until then).
pub(crate) fn add_version(
    shared: &Shared,
    kms: &mut Kms,
    key_name: &str,
) -> Result<u32, (Status, String)> {
    let key = kms.key(key_name)?;
    let number = key.versions.keys().max().copied().unwrap_or(0) + 1;
    let (state, material) = match key.algorithm {
        "GOOGLE_SYMMETRIC_ENCRYPTION" => {
            let mut bytes = Box::new([0u8; 32]);
            crypto::fill_random(bytes.as_mut());
            ("ENABLED", Material::Aes(bytes))
        }
        algorithm => {
            let shared = shared.clone();
            let name = key_name.to_owned();
            tokio::spawn(async move {
                // RSA generation takes up to seconds: off the runtime.
                let material = tokio::task::spawn_blocking(move || asymmetric_material(algorithm))
                    .await
                    .expect("asymmetric key generation");
                let mut kms = shared.lock().unwrap();
                if let Some(version) = kms
                    .keys
                    .get_mut(&name)
                    .and_then(|k| k.versions.get_mut(&number))
                {
                    version.material = material;
                    version.state = "ENABLED";
                }
            });
            ("PENDING_GENERATION", Material::Generating)
        }
    };
    key.versions.insert(
        number,
        Version {
            state,
            material,
            created: SystemTime::now(),
            destroy_time: None,
        },
    );
    Ok(number)
}

/// Fresh material for an asymmetric version `algorithm` (one CreateCryptoKey
/// accepted): a signing key, else an RSA-OAEP key.
fn asymmetric_material(algorithm: &'static str) -> Material {
    if let Some(scheme) = signing::scheme_of(algorithm) {
        return Material::Signing(signing::generate(scheme));
    }
    let size = if algorithm == "RSA_DECRYPT_OAEP_3072_SHA256" {
        RsaKeySize::Bits3072
    } else {
        RsaKeySize::Bits4096
    };
    Material::Rsa(Box::new(RsaPrivateKey::generate(size)))
}

/// Version `number` of `key` when it is ENABLED (so its material exists).
fn enabled<'k>(key: &'k Key, name: &str, number: u32) -> Result<&'k Version, (Status, String)> {
    let Some(version) = key.versions.get(&number) else {
        return fail(Status::NotFound, format!("{name} not found."));
    };
    if version.state != "ENABLED" || matches!(version.material, Material::Generating) {
        return Err(not_enabled(name, version.state));
    }
    Ok(version)
}

fn not_enabled(version_name: &str, state: &str) -> (Status, String) {
    (
        Status::FailedPrecondition,
        format!("{version_name} is not enabled, current state is: {state}."),
    )
}

pub fn dispatch(
    shared: &Shared,
    route: &Route,
    query: &HashMap<String, String>,
    body: &Value,
) -> Answer {
    let mut kms = shared.lock().unwrap();
    // Automatic rotation, evaluated lazily: whatever fell due since the
    // last request happens before this one is answered.
    rotation::rotate_due(shared, &mut kms, SystemTime::now());
    if !kms.rings.contains(&route.ring) {
        return fail(Status::NotFound, format!("{} not found.", route.ring));
    }
    let key_name = route.key.clone().unwrap_or_default();
    let version_number = || -> Result<u32, (Status, String)> {
        match route.version.as_deref().map(str::parse::<u32>) {
            Some(Ok(n)) if n > 0 => Ok(n),
            _ => fail(Status::InvalidArgument, "invalid crypto key version id"),
        }
    };
    let version_name = |n: u32| format!("{key_name}/cryptoKeyVersions/{n}");
    match route.rpc {
        "CreateCryptoKey" => {
            let id = query.get("cryptoKeyId").cloned().unwrap_or_default();
            let valid = !id.is_empty()
                && id.len() <= 63
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return fail(
                    Status::InvalidArgument,
                    format!("invalid crypto_key_id `{id}`"),
                );
            }
            let name = format!("{}/cryptoKeys/{id}", route.ring);
            if kms.keys.contains_key(&name) {
                return fail(Status::AlreadyExists, format!("{name} already exists."));
            }
            let purpose = wire::enum_name(&body["purpose"], wire::PURPOSES)
                .ok_or((Status::InvalidArgument, "purpose is required".to_owned()))?;
            let template = &body["versionTemplate"];
            let protection = wire::enum_name(&template["protectionLevel"], wire::PROTECTION_LEVELS)
                .unwrap_or("SOFTWARE");
            let algorithm = match (
                purpose,
                wire::enum_name(&template["algorithm"], wire::ALGORITHMS),
            ) {
                ("ENCRYPT_DECRYPT", None | Some("GOOGLE_SYMMETRIC_ENCRYPTION")) => {
                    "GOOGLE_SYMMETRIC_ENCRYPTION"
                }
                ("ASYMMETRIC_DECRYPT", Some(a)) if a.starts_with("RSA_DECRYPT") => a,
                ("ASYMMETRIC_SIGN", Some(a)) if signing::scheme_of(a).is_some() => a,
                _ => {
                    return fail(
                        Status::InvalidArgument,
                        "the version template algorithm does not match the purpose (or is not served by the double)",
                    );
                }
            };
            let destroy_secs = if body["destroyScheduledDuration"].is_null() {
                30 * 86_400
            } else {
                wire::duration_secs(&body["destroyScheduledDuration"]).ok_or((
                    Status::InvalidArgument,
                    "invalid destroy_scheduled_duration".to_owned(),
                ))?
            };
            if !(86_400..=120 * 86_400).contains(&destroy_secs) {
                return fail(
                    Status::InvalidArgument,
                    "destroy_scheduled_duration must be between 24 hours and 120 days",
                );
            }
            let labels = match labels_of(body) {
                Ok(labels) => labels,
                Err(message) => return fail(Status::InvalidArgument, message),
            };
            kms.keys.insert(
                name.clone(),
                Key {
                    purpose,
                    algorithm,
                    protection,
                    labels,
                    destroy_secs,
                    primary: None,
                    versions: BTreeMap::new(),
                    created: SystemTime::now(),
                    rotation_period: None,
                    next_rotation: None,
                },
            );
            if query.get("skipInitialVersionCreation").map(String::as_str) != Some("true") {
                let first = add_version(shared, &mut kms, &name)?;
                if purpose == "ENCRYPT_DECRYPT" {
                    kms.key(&name)?.primary = Some(first);
                }
            }
            let key = kms.key(&name)?;
            Ok(key_json(&name, key))
        }
        "GetCryptoKey" => {
            let key = kms.key(&key_name)?;
            Ok(key_json(&key_name, key))
        }
        "UpdateCryptoKey" => {
            let mask = query.get("updateMask").cloned().unwrap_or_default();
            let key = kms.key(&key_name)?;
            for field in mask.split(',').filter(|f| !f.is_empty()) {
                match field {
                    "rotation_period" | "rotationPeriod" => {
                        if key.purpose != "ENCRYPT_DECRYPT" && !body["rotationPeriod"].is_null() {
                            return fail(
                                Status::InvalidArgument,
                                "automatic rotation is only supported for ENCRYPT_DECRYPT keys",
                            );
                        }
                        key.rotation_period = wire::duration_secs(&body["rotationPeriod"]);
                        if key.rotation_period.is_some_and(|p| p < 86_400) {
                            return fail(
                                Status::InvalidArgument,
                                "rotation_period must be at least 24 hours",
                            );
                        }
                    }
                    "next_rotation_time" | "nextRotationTime" => {
                        key.next_rotation = body["nextRotationTime"]
                            .as_str()
                            .and_then(wire::parse_timestamp);
                    }
                    "labels" => {
                        key.labels = match labels_of(body) {
                            Ok(labels) => labels,
                            Err(message) => return fail(Status::InvalidArgument, message),
                        };
                    }
                    other => {
                        return fail(
                            Status::InvalidArgument,
                            format!("unsupported update_mask path `{other}`"),
                        );
                    }
                }
            }
            if key.rotation_period.is_some() != key.next_rotation.is_some() {
                return fail(
                    Status::InvalidArgument,
                    "rotation_period and next_rotation_time must be set together",
                );
            }
            Ok(key_json(&key_name, key))
        }
        "ListCryptoKeyVersions" => {
            let key = kms.key(&key_name)?;
            let size: usize = query
                .get("pageSize")
                .and_then(|s| s.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(25);
            let start: usize = query
                .get("pageToken")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let numbers: Vec<u32> = key.versions.keys().copied().collect();
            let page: Vec<Value> = numbers
                .iter()
                .skip(start)
                .take(size)
                .map(|n| version_json(&key_name, key, *n))
                .collect();
            let mut value = json!({ "cryptoKeyVersions": page, "totalSize": numbers.len() });
            if start + size < numbers.len() {
                value["nextPageToken"] = json!((start + size).to_string());
            }
            Ok(value)
        }
        "CreateCryptoKeyVersion" => {
            let number = add_version(shared, &mut kms, &key_name)?;
            let key = kms.key(&key_name)?;
            Ok(version_json(&key_name, key, number))
        }
        "GetCryptoKeyVersion" => {
            let number = version_number()?;
            let key = kms.key(&key_name)?;
            if !key.versions.contains_key(&number) {
                return fail(
                    Status::NotFound,
                    format!("{} not found.", version_name(number)),
                );
            }
            Ok(version_json(&key_name, key, number))
        }
        "UpdateCryptoKeyPrimaryVersion" => {
            let id = body["cryptoKeyVersionId"]
                .as_str()
                .and_then(|s| s.parse::<u32>().ok());
            let key = kms.key(&key_name)?;
            if key.purpose != "ENCRYPT_DECRYPT" {
                return fail(
                    Status::FailedPrecondition,
                    "only ENCRYPT_DECRYPT keys have a primary version",
                );
            }
            let Some(id) = id.filter(|id| key.versions.contains_key(id)) else {
                return fail(Status::NotFound, "crypto key version not found.");
            };
            let state = key.versions[&id].state;
            if state != "ENABLED" {
                return Err(not_enabled(&version_name(id), state));
            }
            key.primary = Some(id);
            Ok(key_json(&key_name, key))
        }
        "UpdateCryptoKeyVersion" => {
            let number = version_number()?;
            let mask = query.get("updateMask").cloned().unwrap_or_default();
            if mask != "state" {
                return fail(
                    Status::InvalidArgument,
                    format!("unsupported update_mask `{mask}`"),
                );
            }
            let wanted = wire::enum_name(&body["state"], wire::STATES);
            let name = version_name(number);
            let key = kms.key(&key_name)?;
            let Some(version) = key.versions.get_mut(&number) else {
                return fail(Status::NotFound, format!("{name} not found."));
            };
            match (version.state, wanted) {
                ("ENABLED" | "DISABLED", Some(state @ ("ENABLED" | "DISABLED"))) => {
                    version.state = state
                }
                (_, Some("ENABLED" | "DISABLED")) => {
                    return fail(
                        Status::FailedPrecondition,
                        format!(
                            "The request cannot be fulfilled. Resource {name} is in state {}.",
                            version.state
                        ),
                    );
                }
                _ => {
                    return fail(
                        Status::InvalidArgument,
                        "state may only be set to ENABLED or DISABLED",
                    );
                }
            }
            Ok(version_json(&key_name, key, number))
        }
        "DestroyCryptoKeyVersion" => {
            let number = version_number()?;
            let name = version_name(number);
            let key = kms.key(&key_name)?;
            let destroy_secs = key.destroy_secs;
            let Some(version) = key.versions.get_mut(&number) else {
                return fail(Status::NotFound, format!("{name} not found."));
            };
            if !matches!(version.state, "ENABLED" | "DISABLED") {
                return fail(
                    Status::FailedPrecondition,
                    format!(
                        "The request cannot be fulfilled. Resource {name} is in state {}.",
                        version.state
                    ),
                );
            }
            version.state = "DESTROY_SCHEDULED";
            version.destroy_time =
                Some(SystemTime::now() + Duration::from_secs(destroy_secs as u64));
            Ok(version_json(&key_name, key, number))
        }
        "RestoreCryptoKeyVersion" => {
            let number = version_number()?;
            let name = version_name(number);
            let key = kms.key(&key_name)?;
            let Some(version) = key.versions.get_mut(&number) else {
                return fail(Status::NotFound, format!("{name} not found."));
            };
            if version.state != "DESTROY_SCHEDULED" {
                return fail(
                    Status::FailedPrecondition,
                    format!(
                        "The request cannot be fulfilled. Resource {name} is in state {}.",
                        version.state
                    ),
                );
            }
            // Restored versions come back DISABLED.
            version.state = "DISABLED";
            version.destroy_time = None;
            Ok(version_json(&key_name, key, number))
        }
        "Encrypt" => {
            let key = kms.key(&key_name)?;
            if key.purpose != "ENCRYPT_DECRYPT" {
                return fail(
                    Status::FailedPrecondition,
                    format!("{key_name} is not an ENCRYPT_DECRYPT key."),
                );
            }
            let plaintext = wire::unb64(&body["plaintext"])
                .ok_or((Status::InvalidArgument, "invalid plaintext".to_owned()))?;
            let aad = wire::unb64(&body["additionalAuthenticatedData"]).ok_or((
                Status::InvalidArgument,
                "invalid additional_authenticated_data".to_owned(),
            ))?;
            if plaintext.len() > 64 * 1024 || aad.len() > 64 * 1024 {
                return fail(
                    Status::InvalidArgument,
                    "plaintext and AAD are limited to 64 KiB",
                );
            }
            let Some(primary) = key.primary else {
                return fail(
                    Status::FailedPrecondition,
                    format!("{key_name} has no primary version."),
                );
            };
            let version = &key.versions[&primary];
            let Material::Aes(secret) = &version.material else {
                return Err(not_enabled(&version_name(primary), version.state));
            };
            if version.state != "ENABLED" {
                return Err(not_enabled(&version_name(primary), version.state));
            }
            // Ciphertext: version number, nonce, AES-256-GCM(plaintext)
            // bound to the key name and the caller's AAD.
            let nonce = crypto::random_nonce();
            let bound = [key_name.as_bytes(), &[0], &aad].concat();
            let mut ciphertext = primary.to_be_bytes().to_vec();
            ciphertext.extend_from_slice(&nonce);
            ciphertext.extend(crypto::seal(secret, &nonce, &bound, &plaintext));
            Ok(json!({
                "name": version_name(primary),
                "ciphertext": wire::b64(&ciphertext),
                "protectionLevel": key.protection,
            }))
        }
        "Decrypt" => {
            let key = kms.key(&key_name)?;
            if key.purpose != "ENCRYPT_DECRYPT" {
                return fail(
                    Status::FailedPrecondition,
                    format!("{key_name} is not an ENCRYPT_DECRYPT key."),
                );
            }
            let ciphertext = wire::unb64(&body["ciphertext"])
                .ok_or((Status::InvalidArgument, "invalid ciphertext".to_owned()))?;
            let aad = wire::unb64(&body["additionalAuthenticatedData"]).ok_or((
                Status::InvalidArgument,
                "invalid additional_authenticated_data".to_owned(),
            ))?;
            let failed = || {
                fail::<Value>(
                    Status::InvalidArgument,
                    "Decryption failed: verify that 'name' refers to the correct CryptoKey.",
                )
            };
            if ciphertext.len() < 4 + crypto::NONCE_LEN + crypto::TAG_LEN {
                return failed();
            }
            let number = u32::from_be_bytes(ciphertext[..4].try_into().expect("4 bytes"));
            let Some(version) = key.versions.get(&number) else {
                return failed();
            };
            if version.state != "ENABLED" {
                return Err(not_enabled(&version_name(number), version.state));
            }
            let Material::Aes(secret) = &version.material else {
                return failed();
            };
            let nonce: [u8; crypto::NONCE_LEN] = ciphertext[4..4 + crypto::NONCE_LEN]
                .try_into()
                .expect("nonce");
            let bound = [key_name.as_bytes(), &[0], &aad].concat();
            match crypto::open(secret, &nonce, &bound, &ciphertext[4 + crypto::NONCE_LEN..]) {
                Ok(plaintext) => Ok(json!({
                    "plaintext": wire::b64(&plaintext),
                    "usedPrimary": key.primary == Some(number),
                    "protectionLevel": key.protection,
                })),
                Err(_) => failed(),
            }
        }
        "GetPublicKey" => {
            let number = version_number()?;
            let name = version_name(number);
            let key = kms.key(&key_name)?;
            if !matches!(key.purpose, "ASYMMETRIC_DECRYPT" | "ASYMMETRIC_SIGN") {
                return fail(
                    Status::FailedPrecondition,
                    format!("{name} is not an asymmetric key version."),
                );
            }
            let version = enabled(key, &name, number)?;
            let pem = match (&version.material, signing::scheme_of(key.algorithm)) {
                (Material::Rsa(private), _) => crypto::public_key_to_pem(&private.public_key()),
                (Material::Signing(pkcs8), Some(scheme)) => signing::public_pem(scheme, pkcs8)?,
                _ => return Err(not_enabled(&name, version.state)),
            };
            Ok(json!({
                "pem": pem,
                "algorithm": key.algorithm,
                "name": name,
                "protectionLevel": key.protection,
            }))
        }
        "AsymmetricDecrypt" => {
            let number = version_number()?;
            let name = version_name(number);
            let key = kms.key(&key_name)?;
            if key.purpose != "ASYMMETRIC_DECRYPT" {
                return fail(
                    Status::FailedPrecondition,
                    format!("{name} is not an ASYMMETRIC_DECRYPT key version."),
                );
            }
            let Material::Rsa(private) = &enabled(key, &name, number)?.material else {
                return fail(Status::InvalidArgument, "Decryption failed.");
            };
            let ciphertext = wire::unb64(&body["ciphertext"])
                .ok_or((Status::InvalidArgument, "invalid ciphertext".to_owned()))?;
            match private.decrypt(&ciphertext) {
                Ok(plaintext) => Ok(json!({
                    "plaintext": wire::b64(&plaintext),
                    "protectionLevel": key.protection,
                })),
                Err(_) => fail(Status::InvalidArgument, "Decryption failed."),
            }
        }
        "AsymmetricSign" => {
            let number = version_number()?;
            let name = version_name(number);
            let key = kms.key(&key_name)?;
            let scheme = signing::scheme_of(key.algorithm)
                .filter(|_| key.purpose == "ASYMMETRIC_SIGN")
                .ok_or_else(|| {
                    (
                        Status::InvalidArgument,
                        format!("{name} is not an ASYMMETRIC_SIGN key version."),
                    )
                })?;
            let Material::Signing(pkcs8) = &enabled(key, &name, number)?.material else {
                return fail(Status::InvalidArgument, format!("{name} cannot sign."));
            };
            let signature = signing::sign(scheme, pkcs8, body)?;
            // No CRC32C checksums: the provider sends none and checks none.
            Ok(json!({
                "signature": wire::b64(&signature),
                "name": name,
                "protectionLevel": key.protection,
                "verifiedDigestCrc32c": false,
                "verifiedDataCrc32c": false,
            }))
        }
        other => fail(
            Status::NotFound,
            format!("{other} is not served by the double"),
        ),
    }
}

/// A CryptoKey body's labels, checked as Cloud KMS checks them.
fn labels_of(body: &Value) -> Result<BTreeMap<String, String>, String> {
    let fits = |s: &str| {
        s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    let mut labels = BTreeMap::new();
    for (k, v) in body["labels"].as_object().into_iter().flatten() {
        let v = v.as_str().unwrap_or_default().to_owned();
        if k.is_empty() || !fits(k) || !fits(&v) {
            return Err(format!("invalid label `{k}`"));
        }
        labels.insert(k.clone(), v);
    }
    Ok(labels)
}
