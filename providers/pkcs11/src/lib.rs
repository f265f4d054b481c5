//! Keyward's PKCS#11 provider: keys live in an HSM (SoftHSM2, Thales Luna,
//! AWS CloudHSM...) and never leave it. AES-256 key versions wrap DEKs with
//! CKM_AES_GCM inside the token, the wrap context bound as AAD; RSA key pairs
//! unwrap what was sealed offline with their exported public key
//! (CKM_RSA_PKCS_OAEP, SHA-256, MGF1-SHA-256, no label). Signing keys are
//! key pairs whose private half signs inside the token (RSA-PSS, ECDSA
//! P-256, Ed25519); their public half is exported as SubjectPublicKeyInfo.
//!
//! The lifecycle PKCS#11 cannot express (owner, primary version, disabled,
//! scheduled destruction) is kept in a private data object per key on the
//! same token, so every replica sharing the HSM sees the same state.
#![forbid(unsafe_code)]

mod adopt;
mod config;
mod der;
mod ecdsa_der;
mod meta;
mod oaep;
mod pool;
mod signing;
mod spki;
mod token;

pub use config::{DEFAULT_MAX_SESSIONS, Pkcs11Config};
pub use token::version_id;

use async_trait::async_trait;
use cryptoki::session::Session;
use keyward_core::crypto::signing::{SigningAlgorithm, ToSign};
use keyward_core::provider::key_record::unix_seconds;
use keyward_core::provider::{
    Claim, DeletionTarget, KeyAlgorithm, KeyInfo, KeyProvider, KeySpec, ProviderError,
    PublicKeyInfo, Result, Signature, VerifyingKey, WrapAlgorithm, WrapContext, WrappedDek,
};
use keyward_core::secret::Dek;
use meta::{ID_PREFIX, KeyMeta};
use pool::{OpResult, Token};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime};
use token::StoredMeta;

/// How often an operation also sweeps the whole token for due deletions
/// (the key an operation touches is always checked).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub struct Pkcs11Provider {
    token: Arc<Token>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Token writes are exclusive in this process (shared by every provider
    /// on the same token), reads and crypto are shared. Across processes the
    /// operator is the only writer (it is leader-elected).
    objects: Arc<RwLock<()>>,
    last_sweep: Mutex<Option<Instant>>,
    token_generates_iv: bool,
    /// Set once the token turned out to lack RSA-OAEP with SHA-256.
    raw_rsa: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(lock: &RwLock<()>) -> RwLockWriteGuard<'_, ()> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read(lock: &RwLock<()>) -> RwLockReadGuard<'_, ()> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now() -> u64 {
    unix_seconds(SystemTime::now())
}

impl Pkcs11Provider {
    /// Loads the module, finds the token by label and logs in with the PIN
    /// from `config.pin_file`.
    pub async fn connect(config: Pkcs11Config) -> Result<Self> {
        let token_generates_iv = config.token_generates_iv;
        let token = tokio::task::spawn_blocking(move || Token::open(&config))
            .await
            .map_err(|e| ProviderError::Storage(format!("PKCS#11 task failed: {e}")))??;
        Ok(Pkcs11Provider {
            shared: Arc::new(Shared {
                objects: token.objects_lock(),
                last_sweep: Mutex::new(None),
                token_generates_iv,
                raw_rsa: AtomicBool::new(false),
            }),
            token: Arc::new(token),
        })
    }

    /// Sessions opened so far; stays at or below `max_sessions` however many
    /// calls run, because sessions are pooled and reused.
    pub fn sessions_opened(&self) -> usize {
        self.token.sessions_opened()
    }

    /// Runs `work` on a pooled session, after destroying whatever is due.
    async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Session, &Shared) -> OpResult<T> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        self.token
            .run(move |session| {
                sweep_if_due(session, &shared)?;
                work(session, &shared)
            })
            .await
    }
}

/// Finds a key by id (`p11k-...`) or by name.
fn load(session: &Session, key: &str) -> OpResult<StoredMeta> {
    let found = if key.starts_with(ID_PREFIX) {
        token::find_meta(session, key)?
    } else {
        token::all_meta(session)?
            .into_iter()
            .find(|stored| stored.meta.key.name == key)
    };
    Ok(found.ok_or_else(|| ProviderError::UnknownKey(key.to_owned()))?)
}

/// Destroys the due parts of one key; `None` when the whole key is gone.
/// The caller holds the admin lock and passes a fresh read.
fn purge_locked(session: &Session, stored: StoredMeta) -> OpResult<Option<StoredMeta>> {
    let due = stored.meta.key.due(now());
    if due.whole_key {
        for version in &stored.meta.key.versions {
            token::destroy_version(session, &stored.meta.key.id, version.version)?;
        }
        tracing::info!(key = %stored.meta.key.id, "destroyed key on the token after its deletion window");
        token::delete_meta(session, stored)?;
        return Ok(None);
    }
    if due.versions.is_empty() {
        return Ok(Some(stored));
    }
    let mut meta = stored.meta.clone();
    for version in due.versions {
        token::destroy_version(session, &meta.key.id, version)?;
        meta.key.mark_destroyed(version);
        tracing::info!(key = %meta.key.id, version, "destroyed key version on the token after its deletion window");
    }
    token::write_meta(session, Some(stored), &mut meta)?;
    token::find_meta(session, &meta.key.id)
}

/// Loads a key for use, destroying what is due first.
fn load_settled(session: &Session, shared: &Shared, key: &str) -> OpResult<StoredMeta> {
    let stored = {
        let _reading = read(&shared.objects);
        load(session, key)?
    };
    if stored.meta.key.due(now()) == Default::default() {
        return Ok(stored);
    }
    let _admin = write(&shared.objects);
    let fresh = token::find_meta(session, &stored.meta.key.id)?;
    let settled = match fresh {
        Some(fresh) => purge_locked(session, fresh)?,
        None => None,
    };
    Ok(settled.ok_or_else(|| ProviderError::UnknownKey(key.to_owned()))?)
}

fn sweep_if_due(session: &Session, shared: &Shared) -> OpResult<()> {
    {
        let mut last = lock(&shared.last_sweep);
        if last.is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
            return Ok(());
        }
        *last = Some(Instant::now());
    }
    let _admin = write(&shared.objects);
    for stored in token::all_meta(session)? {
        purge_locked(session, stored)?;
    }
    Ok(())
}

/// Loads, changes and writes back one key's metadata under the admin lock.
fn update<T>(
    session: &Session,
    shared: &Shared,
    key: &str,
    change: impl FnOnce(&Session, &mut KeyMeta) -> OpResult<T>,
) -> OpResult<T> {
    let _admin = write(&shared.objects);
    let stored = purge_locked(session, load(session, key)?)?
        .ok_or_else(|| ProviderError::UnknownKey(key.to_owned()))?;
    let mut meta = stored.meta.clone();
    let result = change(session, &mut meta)?;
    if meta != stored.meta {
        token::write_meta(session, Some(stored), &mut meta)?;
    }
    Ok(result)
}

/// The key `spec.owner` already has (a retry, or a cluster rebuilt from
/// Git), or `None` when `spec.name` is free for a new one.
fn owned_or_name_free(existing: &[StoredMeta], spec: &KeySpec) -> OpResult<Option<KeyInfo>> {
    if spec.owner.is_some()
        && let Some(found) = existing.iter().find(|s| s.meta.key.owner == spec.owner)
    {
        return Ok(Some(found.meta.key.info()));
    }
    meta::check_name(&spec.name)?;
    if existing.iter().any(|s| s.meta.key.name == spec.name) {
        return Err(ProviderError::InvalidRequest(format!(
            "a key named `{}` already exists on the token; pick another name or rotate the existing key",
            spec.name
        ))
        .into());
    }
    Ok(None)
}

fn wrong_type(meta: &KeyMeta, expected: &'static str) -> ProviderError {
    ProviderError::WrongKeyType {
        key: meta.key.id.clone(),
        expected,
        actual: meta.key.algorithm.describe(),
    }
}

/// The scheme of a signing key, or the error for any other key.
fn signing_scheme(meta: &KeyMeta) -> Result<SigningAlgorithm> {
    meta.key
        .algorithm
        .signing()
        .ok_or_else(|| wrong_type(meta, "a signing key (usage Sign)"))
}

fn modulus_len(algorithm: KeyAlgorithm) -> usize {
    match algorithm {
        KeyAlgorithm::Rsa4096 => 512,
        _ => 384,
    }
}

#[async_trait]
impl KeyProvider for Pkcs11Provider {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo> {
        let spec = spec.clone();
        self.run(move |session, shared| {
            let _admin = write(&shared.objects);
            let existing = token::all_meta(session)?;
            if let Some(found) = owned_or_name_free(&existing, &spec)? {
                return Ok(found);
            }
            let mut meta = KeyMeta::new(&spec, meta::new_key_id(), now());
            token::generate_version(session, &meta, 1)?;
            token::write_meta(session, None, &mut meta)?;
            tracing::info!(key = %meta.key.id, name = %meta.key.name, algorithm = %meta.key.algorithm, "created key on the token");
            Ok(meta.key.info())
        })
        .await
    }

    async fn adopt_key(&self, reference: &str, spec: &KeySpec) -> Result<KeyInfo> {
        if spec.algorithm != KeyAlgorithm::Aes256 {
            return Err(ProviderError::InvalidRequest(format!(
                "only AES256 keys can be adopted from the token, not {}",
                spec.algorithm.describe()
            )));
        }
        let (label, spec) = (reference.to_owned(), spec.clone());
        self.run(move |session, shared| {
            let _admin = write(&shared.objects);
            let existing = token::all_meta(session)?;
            // Adopted before: a retry, or a cluster rebuilt from Git.
            if let Some(found) = owned_or_name_free(&existing, &spec)? {
                return Ok(found);
            }
            let (handle, id) = adopt::find(session, &label)?;
            if let Some(owner) = existing
                .iter()
                .find(|s| (1..=s.meta.key.primary).any(|v| token::version_id(&s.meta.key.id, v) == id))
            {
                return Err(ProviderError::InvalidRequest(format!(
                    "the token key labelled `{label}` is already Keyward key `{}`; adopt it only once",
                    owner.meta.key.name
                ))
                .into());
            }
            let mut meta = KeyMeta::new(&spec, meta::new_key_id(), now());
            adopt::take(session, handle, &meta.key.id)?;
            token::write_meta(session, None, &mut meta)?;
            tracing::info!(key = %meta.key.id, name = %meta.key.name, label, "adopted token key as version 1");
            Ok(meta.key.info())
        })
        .await
    }

    async fn describe_key(&self, key: &str) -> Result<KeyInfo> {
        let key = key.to_owned();
        self.run(move |session, shared| Ok(load_settled(session, shared, &key)?.meta.key.info()))
            .await
    }

    fn keeps_claims(&self, _key_id: &str) -> bool {
        true
    }

    async fn set_owner(&self, key_id: &str, owner: &str, claim: &Claim) -> Result<()> {
        let (key_id, owner, claim) = (key_id.to_owned(), owner.to_owned(), claim.clone());
        self.run(move |session, shared| {
            update(session, shared, &key_id, |_, meta| {
                meta.key.set_owner(&owner, Some(&claim));
                Ok(())
            })
        })
        .await
    }

    async fn rotate_key(&self, key_id: &str) -> Result<KeyInfo> {
        let key_id = key_id.to_owned();
        self.run(move |session, shared| {
            update(session, shared, &key_id, |session, meta| {
                meta.key.refuse_if_pending_deletion()?;
                let next = meta.key.next_version();
                token::generate_version(session, meta, next)?;
                meta.add_primary(next, now());
                Ok(())
            })?;
            let _reading = read(&shared.objects);
            Ok(load(session, &key_id)?.meta.key.info())
        })
        .await
    }

    async fn set_version_enabled(&self, key_id: &str, version: u32, enabled: bool) -> Result<()> {
        let key_id = key_id.to_owned();
        self.run(move |session, shared| {
            update(session, shared, &key_id, |_, meta| {
                Ok(meta.key.set_enabled(version, enabled)?)
            })
        })
        .await
    }

    async fn schedule_deletion(
        &self,
        key_id: &str,
        target: DeletionTarget,
        window: Duration,
    ) -> Result<SystemTime> {
        let key_id = key_id.to_owned();
        self.run(move |session, shared| {
            update(session, shared, &key_id, |_, meta| {
                Ok(meta.key.schedule_deletion(target, window, now())?)
            })
        })
        .await
    }

    async fn cancel_deletion(&self, key_id: &str, target: DeletionTarget) -> Result<()> {
        let key_id = key_id.to_owned();
        self.run(move |session, shared| {
            update(session, shared, &key_id, |_, meta| {
                Ok(meta.key.cancel_deletion(target)?)
            })
        })
        .await
    }

    async fn wrap_dek(&self, key_id: &str, dek: &Dek, context: &WrapContext) -> Result<WrappedDek> {
        let (key_id, dek, context) = (key_id.to_owned(), dek.clone(), context.clone());
        self.run(move |session, shared| {
            let meta = load_settled(session, shared, &key_id)?.meta;
            let _reading = read(&shared.objects);
            let version = meta.primary_for_wrap()?;
            let algorithm = meta.key.algorithm.wrapping(&meta.key.id)?;
            let blob = match algorithm {
                WrapAlgorithm::Symmetric => token::wrap_symmetric(
                    session,
                    &meta.key.id,
                    version,
                    &dek,
                    &context,
                    shared.token_generates_iv,
                )?,
                WrapAlgorithm::RsaOaepSha256 => {
                    token::wrap_rsa(session, &meta.key.id, version, &dek)?
                }
            };
            Ok(WrappedDek {
                key_id: meta.key.id.clone(),
                version,
                algorithm,
                blob,
            })
        })
        .await
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<Dek> {
        let (wrapped, context) = (wrapped.clone(), context.clone());
        self.run(move |session, shared| {
            let meta = load_settled(session, shared, &wrapped.key_id)?.meta;
            let _reading = read(&shared.objects);
            if Some(wrapped.algorithm) != meta.key.algorithm.wrap_algorithm() {
                return Err(wrong_type(
                    &meta,
                    match wrapped.algorithm {
                        WrapAlgorithm::Symmetric => "a symmetric key",
                        WrapAlgorithm::RsaOaepSha256 => "an RSA key",
                    },
                )
                .into());
            }
            let version = meta.version_for_unwrap(wrapped.version)?;
            match wrapped.algorithm {
                WrapAlgorithm::Symmetric => {
                    token::unwrap_symmetric(session, &meta.key.id, version, &wrapped.blob, &context)
                }
                WrapAlgorithm::RsaOaepSha256 => token::unwrap_rsa(
                    session,
                    &meta.key.id,
                    version,
                    &wrapped.blob,
                    modulus_len(meta.key.algorithm),
                    &shared.raw_rsa,
                ),
            }
        })
        .await
    }

    async fn public_key(&self, key_id: &str, version: Option<u32>) -> Result<PublicKeyInfo> {
        let key_id = key_id.to_owned();
        self.run(move |session, shared| {
            let meta = load_settled(session, shared, &key_id)?.meta;
            let _reading = read(&shared.objects);
            if !meta.key.algorithm.is_sealing() {
                return Err(wrong_type(&meta, "an asymmetric (RSA) key").into());
            }
            let number = meta
                .key
                .version(version.unwrap_or(meta.key.primary))?
                .version;
            Ok(PublicKeyInfo {
                key_id: meta.key.id.clone(),
                version: number,
                public_key: token::public_key(session, &meta.key.id, number)?,
            })
        })
        .await
    }

    async fn sign(&self, key_id: &str, version: Option<u32>, input: &ToSign) -> Result<Signature> {
        let (key_id, input) = (key_id.to_owned(), input.clone());
        self.run(move |session, shared| {
            let meta = load_settled(session, shared, &key_id)?.meta;
            let _reading = read(&shared.objects);
            let algorithm = signing_scheme(&meta)?;
            // Like wrapping: only an enabled version signs.
            let version = match version {
                Some(number) => meta.version_for_unwrap(number)?,
                None => meta.primary_for_wrap()?,
            };
            let bytes = signing::sign(session, &meta.key.id, version, algorithm, &input)?;
            Ok(Signature {
                key_id: meta.key.id.clone(),
                version,
                algorithm,
                bytes,
            })
        })
        .await
    }

    async fn verifying_key(&self, key_id: &str, version: Option<u32>) -> Result<VerifyingKey> {
        let key_id = key_id.to_owned();
        self.run(move |session, shared| {
            let meta = load_settled(session, shared, &key_id)?.meta;
            let _reading = read(&shared.objects);
            let algorithm = signing_scheme(&meta)?;
            let number = meta
                .key
                .version(version.unwrap_or(meta.key.primary))?
                .version;
            Ok(VerifyingKey {
                key_id: meta.key.id.clone(),
                version: number,
                algorithm,
                spki_der: signing::verifying_key_der(session, &meta.key.id, number, algorithm)?,
            })
        })
        .await
    }
}
