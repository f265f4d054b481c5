//! The keyring codec and its read-modify-write loop:
//! `"KWKR" | 0x01 | nonce[12] | AES-256-GCM(root, json) || tag`, kept by a
//! [`KeyringBackend`] (a file by default). A write that loses a race with
//! another writer is retried on the freshly loaded keyring.
//!
//! The store keeps the last keyring it decoded or wrote. Reads serve from
//! it while it is younger than the cache TTL ([`KeyringStore::set_cache_ttl`];
//! zero, the default, reads the backend every time) and reload once when a
//! lookup misses (unknown key or version: another process may just have
//! created it). Writes start from it whatever its age and rely on the
//! backend's compare-and-swap: a conflict reloads and re-applies the change.
//! The TTL bounds how long a reader can act on a version another process
//! just disabled (the same trade-off as the webhook's DEK cache TTL).
//!
//! Every write adds one to the keyring's generation (inside the encryption)
//! and then records it outside the keyring ([`KeyringBackend::generation_floor`]).
//! A keyring older than the highest generation this process saw or the
//! backend recorded is refused: writing back an old copy would bring back
//! versions since disabled or destroyed.

use super::backend::{KeyringBackend, Revision, WriteError};
use super::file_backend::FileBackend;
use super::keyring::{FORMAT, Keyring};
use super::root_key::RootKey;
use crate::crypto;
use crate::provider::{ProviderError, Result};
use crate::secret::to_json_wiped;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockWriteGuard};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub use super::file_backend::KEYRING_FILE;
pub const ROOT_KEY_FILE: &str = "root.key";
const MAGIC: &[u8; 4] = b"KWKR";
const FILE_VERSION: u8 = 1;
/// Attempts of one update before giving up on a busy keyring.
const MAX_ATTEMPTS: u32 = 16;
/// The cache TTL the operator and the webhook use on the in-cluster keyring.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);

pub struct KeyringStore {
    backend: Box<dyn KeyringBackend>,
    root: RootKey,
    /// The last keyring decoded or written. Its key material stays in the
    /// keyring's zeroizing types; nothing here has a `Debug`.
    cache: RwLock<Option<Cached>>,
    ttl_millis: AtomicU64,
    generations: AtomicU64,
    /// The highest keyring generation seen or written by this process, or
    /// recorded by the backend.
    floor: AtomicU64,
    /// Whether the backend's record was read into `floor` yet (once).
    floor_read: AtomicBool,
}

struct Cached {
    ring: Keyring,
    /// `None`: written through a backend that does not report revisions, so
    /// the next write reads first.
    revision: Option<Revision>,
    at: Instant,
    /// The earliest deletion that falls due (unix seconds): the copy is
    /// stale from then on, so a read never serves a version already destroyed.
    next_due: Option<u64>,
    /// Changes whenever the copy is replaced, so a reader that missed can
    /// tell whether someone else already reloaded.
    generation: u64,
}

impl Cached {
    fn fresh(&self, ttl: Duration, now: u64) -> bool {
        self.at.elapsed() < ttl && self.next_due.is_none_or(|at| now < at)
    }
}

/// A lookup that a newer keyring might answer.
pub(crate) fn is_miss(error: &ProviderError) -> bool {
    matches!(
        error,
        ProviderError::UnknownKey(_) | ProviderError::UnknownVersion { .. }
    )
}

impl KeyringStore {
    /// The keyring file `dir/keyring.kwk`.
    pub fn new(dir: &Path, root: RootKey) -> Self {
        Self::with_backend(Box::new(FileBackend::new(dir)), root)
    }

    /// A keyring kept anywhere (for example a Kubernetes Secret).
    pub fn with_backend(backend: Box<dyn KeyringBackend>, root: RootKey) -> Self {
        KeyringStore {
            backend,
            root,
            cache: RwLock::new(None),
            ttl_millis: AtomicU64::new(0),
            generations: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            floor_read: AtomicBool::new(false),
        }
    }

    /// How long reads may serve the cached keyring (zero: never).
    pub fn set_cache_ttl(&self, ttl: Duration) {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.ttl_millis.store(millis, Ordering::Relaxed);
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_millis.load(Ordering::Relaxed))
    }

    fn cache_mut(&self) -> RwLockWriteGuard<'_, Option<Cached>> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the cached copy with `ring` at `revision`.
    fn remember(&self, slot: &mut Option<Cached>, ring: Keyring, revision: Option<Revision>) {
        *slot = Some(Cached {
            next_due: ring.next_due(),
            ring,
            revision,
            at: Instant::now(),
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
        });
    }

    /// Loads the keyring into `slot` (due deletions already applied).
    fn reload(&self, slot: &mut Option<Cached>) -> Result<()> {
        *slot = None;
        let (mut ring, revision) = {
            let _lock = self.backend.lock(false)?;
            self.load()?
        };
        ring.purge_due(super::now());
        self.remember(slot, ring, Some(revision));
        Ok(())
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    pub fn exists(&self) -> bool {
        matches!(self.backend.load(), Ok(Some(_)))
    }

    fn storage(&self, error: impl std::fmt::Display) -> ProviderError {
        ProviderError::Storage(format!("{}: {error}", self.backend.location()))
    }

    /// Writes an empty keyring; refuses if one exists.
    pub fn initialise(&self) -> Result<()> {
        let _lock = self.backend.lock(true)?;
        let refuse = || {
            ProviderError::InvalidRequest(format!(
                "a keyring already exists at {}; refusing to replace it",
                self.backend.location()
            ))
        };
        if self.backend.load()?.is_some() {
            return Err(refuse());
        }
        let floor = self.floor()?;
        if floor > 0 {
            return Err(self.storage(format!(
                "the keyring is gone, but generation {floor} of it was written before; \
                 restore the newest backup of it rather than starting an empty one{}",
                self.accept_hint()
            )));
        }
        let mut ring = Keyring::new();
        ring.generation = 1;
        match self.backend.store(&self.encode(&ring)?, None) {
            Ok(()) => {
                self.record_written(ring.generation);
                Ok(())
            }
            Err(WriteError::Conflict) => Err(refuse()),
            Err(WriteError::Storage(e)) => Err(e),
        }
    }

    /// The highest generation known: seen here, or recorded by the backend
    /// (read on first use).
    fn floor(&self) -> Result<u64> {
        if !self.floor_read.load(Ordering::Acquire) {
            if let Some(recorded) = self.backend.generation_floor()? {
                self.floor.fetch_max(recorded, Ordering::AcqRel);
            }
            self.floor_read.store(true, Ordering::Release);
        }
        Ok(self.floor.load(Ordering::Acquire))
    }

    /// Refuses a keyring older than one already seen or written.
    fn refuse_rollback(&self, ring: &Keyring) -> Result<()> {
        let floor = self.floor()?;
        if ring.generation < floor {
            return Err(self.storage(format!(
                "this keyring is generation {}, but generation {floor} was already written: \
                 an older copy was written back, which would bring back key versions since \
                 disabled or destroyed. Restore the newest keyring{}",
                ring.generation,
                self.accept_hint()
            )));
        }
        self.floor.fetch_max(ring.generation, Ordering::AcqRel);
        Ok(())
    }

    fn accept_hint(&self) -> String {
        format!(
            ". Only to accept an older keyring on purpose: {}",
            self.backend.accept_older_hint()
        )
    }

    /// Raises the floor after `generation` was written. A failure to record
    /// it outside is not the write's failure (the keyring did change); the
    /// next write records its own, higher generation.
    fn record_written(&self, generation: u64) {
        self.floor.fetch_max(generation, Ordering::AcqRel);
        if let Err(error) = self.backend.raise_generation_floor(generation) {
            tracing::warn!(
                %error,
                generation,
                "could not record the keyring generation outside the keyring; \
                 a rollback to the previous keyring would go unnoticed until the next write"
            );
        }
    }

    /// The highest keyring generation known to this store.
    pub fn generation(&self) -> Result<u64> {
        self.floor()
    }

    /// Applies `change` to the current keyring and persists the result. If
    /// another writer got there first, `change` runs again on its keyring.
    ///
    /// It starts from the cached keyring when it has one (any age): the
    /// backend's compare-and-swap catches a stale copy. Readers wait while
    /// the write is in flight and never see a change that did not land.
    pub fn update<T>(&self, mut change: impl FnMut(&mut Keyring) -> Result<T>) -> Result<T> {
        for attempt in 1..=MAX_ATTEMPTS {
            let lock = self.backend.lock(true)?;
            let mut slot = self.cache_mut();
            let loaded = slot.as_ref().is_none_or(|c| c.revision.is_none());
            if loaded {
                let (ring, revision) = self.load()?;
                self.remember(&mut slot, ring, Some(revision));
            }
            match self.apply(&mut slot, &mut change, loaded) {
                Ok((result, None)) => return Ok(result),
                Ok((result, Some(Ok(revision)))) => {
                    if let Some(cached) = slot.as_mut() {
                        let ring = std::mem::take(&mut cached.ring);
                        self.record_written(ring.generation);
                        self.remember(&mut slot, ring, revision);
                    }
                    return Ok(result);
                }
                // A failed change may have half-applied: forget the copy.
                Err(e) | Ok((_, Some(Err(WriteError::Storage(e))))) => {
                    *slot = None;
                    return Err(e);
                }
                Ok((_, Some(Err(WriteError::Conflict)))) => {
                    *slot = None;
                    drop(slot);
                    drop(lock);
                    std::thread::sleep(backoff(attempt));
                }
            }
        }
        Err(self.storage(format!(
            "the keyring kept changing underneath {MAX_ATTEMPTS} attempts to update it; retry later"
        )))
    }

    /// Writes the keyring without the material of versions whose deletion
    /// fell due, so it leaves storage now rather than at the next change
    /// (reads already treat it as gone). Returns when the next deletion
    /// falls due, if one is scheduled.
    pub fn erase_due(&self) -> Result<Option<u64>> {
        // Start from the stored keyring: a no-op on a copy just loaded
        // writes nothing, so this writes only when something was due.
        *self.cache_mut() = None;
        self.update(|ring| Ok(ring.next_due()))
    }

    /// Runs `change` on the cached keyring and writes it; the inner result
    /// is the write's, `None` when there was nothing to write: the change
    /// left a fresh copy as it was (e.g. creating a key that exists). A
    /// copy `loaded` for this change is fresh whatever the TTL.
    #[allow(clippy::type_complexity)]
    fn apply<T>(
        &self,
        slot: &mut Option<Cached>,
        change: &mut impl FnMut(&mut Keyring) -> Result<T>,
        loaded: bool,
    ) -> Result<(T, Option<std::result::Result<Option<Revision>, WriteError>>)> {
        let cached = slot
            .as_mut()
            .ok_or_else(|| self.storage("the keyring was not loaded"))?;
        let now = super::now();
        let purged = cached.ring.purge_due(now);
        // A stale copy is written anyway: the compare-and-swap checks it.
        let before = match !purged && (loaded || cached.fresh(self.cache_ttl(), now)) {
            true => Some(self.json(&cached.ring)?),
            false => None,
        };
        let result = change(&mut cached.ring)?;
        if let Some(before) = before
            && *self.json(&cached.ring)? == *before
        {
            return Ok((result, None));
        }
        cached.ring.generation += 1;
        let bytes = self.encode(&cached.ring)?;
        let written = self
            .backend
            .store_revision(&bytes, cached.revision.as_ref());
        Ok((result, Some(written)))
    }

    fn json(&self, ring: &Keyring) -> Result<Zeroizing<Vec<u8>>> {
        to_json_wiped(ring).map_err(|e| self.storage(e))
    }

    /// Runs `view` on the current keyring. Versions whose deletion is due
    /// are already treated as destroyed. Served from the cached copy while
    /// it is younger than the cache TTL; a lookup that misses there (unknown
    /// key or version) reloads once and runs `view` again.
    pub fn read<T>(&self, view: impl FnMut(&Keyring) -> Result<T>) -> Result<T> {
        self.read_reloading_on(view, is_miss)
    }

    /// [`read`](Self::read), reloading also when `view`'s error is one
    /// `stale` says a fresher keyring may not give (a caller that knows the
    /// cluster's state, e.g. that a version is enabled again).
    pub fn read_reloading_on<T>(
        &self,
        mut view: impl FnMut(&Keyring) -> Result<T>,
        stale: impl Fn(&ProviderError) -> bool,
    ) -> Result<T> {
        let ttl = self.cache_ttl();
        if ttl.is_zero() {
            let _lock = self.backend.lock(false)?;
            let (mut ring, _) = self.load()?;
            ring.purge_due(super::now());
            return view(&ring);
        }
        let missed = {
            let slot = self.cache.read().unwrap_or_else(PoisonError::into_inner);
            match slot.as_ref().filter(|c| c.fresh(ttl, super::now())) {
                Some(cached) => match view(&cached.ring) {
                    Err(e) if stale(&e) => Some(cached.generation),
                    done => return done,
                },
                None => None,
            }
        };
        let mut slot = self.cache_mut();
        // Another reader may have reloaded while this one waited.
        let reloaded = slot.as_ref().is_some_and(|c| {
            c.fresh(ttl, super::now()) && missed.is_none_or(|seen| seen != c.generation)
        });
        if !reloaded {
            self.reload(&mut slot)?;
        }
        let cached = slot
            .as_ref()
            .ok_or_else(|| self.storage("the keyring was not loaded"))?;
        view(&cached.ring)
    }

    /// The stored keyring, refused if older than the generation floor. A
    /// keyring read just before another writer's write, checked against a
    /// floor read just after it, looks older without being a rollback: so
    /// a keyring below the floor is read once more, after the floor, and
    /// only refused if it is still below.
    fn load(&self) -> Result<(Keyring, Revision)> {
        let (ring, revision) = self.load_unchecked()?;
        if ring.generation >= self.floor()? {
            self.floor.fetch_max(ring.generation, Ordering::AcqRel);
            return Ok((ring, revision));
        }
        let (ring, revision) = self.load_unchecked()?;
        self.refuse_rollback(&ring)?;
        Ok((ring, revision))
    }

    fn load_unchecked(&self) -> Result<(Keyring, Revision)> {
        let stored = self.backend.load()?.ok_or_else(|| {
            ProviderError::Storage(format!(
                "no keyring at {}; {}",
                self.backend.location(),
                self.backend.missing_hint()
            ))
        })?;
        Ok((self.decode(&stored.bytes)?, stored.revision))
    }

    fn decode(&self, bytes: &[u8]) -> Result<Keyring> {
        let header = MAGIC.len() + 1;
        if bytes.len() < header + crypto::NONCE_LEN + crypto::TAG_LEN || &bytes[..4] != MAGIC {
            return Err(self.storage("not a Keyward keyring file"));
        }
        if bytes[4] != FILE_VERSION {
            return Err(self.storage(format!(
                "keyring format {} is newer than this Keyward",
                bytes[4]
            )));
        }
        let nonce: [u8; crypto::NONCE_LEN] =
            bytes[header..header + crypto::NONCE_LEN]
                .try_into()
                .map_err(|_| self.storage("not a Keyward keyring file"))?;
        let json = crypto::open(
            self.root.expose(),
            &nonce,
            &bytes[..header],
            &bytes[header + crypto::NONCE_LEN..],
        )
        .map_err(|_| {
            self.storage("cannot decrypt the keyring: wrong root key, or the file was modified")
        })?;
        let ring: Keyring = serde_json::from_slice(&json)
            .map_err(|e| self.storage(format!("corrupt keyring: {e}")))?;
        if ring.format != FORMAT {
            return Err(self.storage(format!(
                "keyring document format {} is not supported",
                ring.format
            )));
        }
        Ok(ring)
    }

    fn encode(&self, ring: &Keyring) -> Result<Vec<u8>> {
        let json = self.json(ring)?;
        let mut header = MAGIC.to_vec();
        header.push(FILE_VERSION);
        let nonce = crypto::random_nonce();
        let mut bytes = header.clone();
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&crypto::seal(self.root.expose(), &nonce, &header, &json));
        Ok(bytes)
    }
}

/// 5, 10, 20 ... ms, capped at 320 ms, plus up to 50% jitter so racing
/// writers spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 5u64 << attempt.min(6);
    let mut jitter = [0u8; 1];
    crypto::fill_random(&mut jitter);
    Duration::from_millis(base + base * u64::from(jitter[0]) / 512)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::backend::Stored;
    use crate::provider::{KeyAlgorithm, KeySpec};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    /// An optimistic in-memory backend whose next `conflicts` writes lose a
    /// race, the way a Kubernetes Secret update with a stale resourceVersion does.
    #[derive(Default)]
    struct Racy {
        data: Mutex<Option<(Vec<u8>, u64)>>,
        conflicts: AtomicU32,
        loads: AtomicU32,
    }

    impl KeyringBackend for Arc<Racy> {
        fn location(&self) -> String {
            "memory".into()
        }
        fn load(&self) -> Result<Option<Stored>> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(self.data.lock().unwrap().as_ref().map(|(b, r)| Stored {
                bytes: b.clone(),
                revision: Revision(r.to_string()),
            }))
        }
        fn store(&self, bytes: &[u8], expected: Option<&Revision>) -> Result<(), WriteError> {
            self.store_revision(bytes, expected).map(drop)
        }
        fn store_revision(
            &self,
            bytes: &[u8],
            expected: Option<&Revision>,
        ) -> Result<Option<Revision>, WriteError> {
            let mut data = self.data.lock().unwrap();
            let current = data.as_ref().map(|(_, r)| Revision(r.to_string()));
            if current.as_ref() != expected {
                return Err(WriteError::Conflict);
            }
            let next = data.as_ref().map_or(1, |(_, r)| r + 1);
            if self.conflicts.load(Ordering::SeqCst) > 0 {
                self.conflicts.fetch_sub(1, Ordering::SeqCst);
                // Another writer stored first: same bytes, newer revision.
                let old = data.take().map(|(b, _)| b).unwrap_or_default();
                *data = Some((old, next));
                return Err(WriteError::Conflict);
            }
            *data = Some((bytes.to_vec(), next));
            Ok(Some(Revision(next.to_string())))
        }
    }

    #[test]
    fn a_lost_race_reapplies_the_change_on_the_reloaded_keyring() {
        let racy = Arc::new(Racy::default());
        let store = KeyringStore::with_backend(Box::new(Arc::clone(&racy)), RootKey::generate());
        store.initialise().unwrap();
        assert!(store.initialise().is_err(), "initialise never replaces");
        racy.conflicts.store(2, Ordering::SeqCst);
        let spec = KeySpec {
            name: "a".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some("uid".into()),
            description: None,
        };
        let mut runs = 0;
        store
            .update(|ring| {
                runs += 1;
                ring.create(&spec, 0)
            })
            .unwrap();
        assert_eq!(runs, 3, "two conflicts, then the write lands");
        assert_eq!(store.read(|r| Ok(r.keys.len())).unwrap(), 1);
    }

    #[test]
    fn a_keyring_that_never_stops_changing_is_an_error_not_a_hang() {
        let racy = Arc::new(Racy::default());
        let store = KeyringStore::with_backend(Box::new(Arc::clone(&racy)), RootKey::generate());
        store.initialise().unwrap();
        racy.conflicts.store(u32::MAX, Ordering::SeqCst);
        let error = store.update(|ring| ring.create(&spec("a"), 0)).unwrap_err();
        assert!(error.to_string().contains("retry later"), "{error}");
    }

    fn spec(name: &str) -> KeySpec {
        KeySpec {
            name: name.into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: None,
            description: None,
        }
    }

    /// Two stores on one backend (two processes on one Secret), the first
    /// caching for `ttl`.
    fn cached_pair(ttl: Duration) -> (Arc<Racy>, KeyringStore, KeyringStore) {
        let racy = Arc::new(Racy::default());
        let root = RootKey::generate();
        let other_root = RootKey::from_bytes(root.expose()).unwrap();
        let store = KeyringStore::with_backend(Box::new(Arc::clone(&racy)), root);
        let other = KeyringStore::with_backend(Box::new(Arc::clone(&racy)), other_root);
        store.initialise().unwrap();
        store.set_cache_ttl(ttl);
        (racy, store, other)
    }

    fn loads(racy: &Racy) -> u32 {
        racy.loads.load(Ordering::SeqCst)
    }

    #[test]
    fn reads_within_the_ttl_load_the_keyring_once() {
        let (racy, store, _) = cached_pair(Duration::from_secs(60));
        let id = store
            .update(|ring| ring.create(&spec("a"), 0))
            .unwrap()
            .key_id;
        let before = loads(&racy);
        for _ in 0..50 {
            store.read(|ring| Ok(ring.find(&id)?.primary)).unwrap();
        }
        assert!(
            loads(&racy) - before <= 1,
            "{} loads",
            loads(&racy) - before
        );
        // The write itself refreshed the cache: no load at all.
        assert_eq!(loads(&racy), before);
    }

    #[test]
    fn a_miss_reloads_once_then_reports_the_error() {
        let (racy, store, other) = cached_pair(Duration::from_secs(60));
        store.read(|ring| Ok(ring.keys.len())).unwrap();
        let before = loads(&racy);
        // Another process creates a key: found after exactly one reload.
        let id = other
            .update(|ring| ring.create(&spec("b"), 0))
            .unwrap()
            .key_id;
        let after_write = loads(&racy);
        store.read(|ring| Ok(ring.find(&id)?.primary)).unwrap();
        assert_eq!(loads(&racy), after_write + 1);
        // A key nobody has: one reload, then the error.
        let error = store
            .read(|ring| Ok(ring.find("nope")?.primary))
            .unwrap_err();
        assert!(matches!(error, ProviderError::UnknownKey(_)), "{error}");
        assert_eq!(loads(&racy), after_write + 2);
        assert!(before <= after_write);
    }

    #[test]
    fn a_write_on_a_stale_copy_conflicts_and_sees_the_other_writer() {
        let (racy, store, other) = cached_pair(Duration::from_secs(60));
        store.update(|ring| ring.create(&spec("mine"), 0)).unwrap();
        let theirs = other
            .update(|ring| ring.create(&spec("theirs"), 0))
            .unwrap();
        let before = loads(&racy);
        let mut seen = Vec::new();
        store
            .update(|ring| {
                seen.push(ring.keys.len());
                ring.create(&spec("third"), 0)
            })
            .unwrap();
        assert_eq!(seen, [1, 2], "stale copy first, then the reloaded keyring");
        assert_eq!(loads(&racy), before + 1);
        // The cache holds what was written: both other keys are there.
        store
            .read(|ring| Ok(ring.find(&theirs.key_id)?.primary))
            .unwrap();
        assert_eq!(store.read(|ring| Ok(ring.keys.len())).unwrap(), 3);
        assert_eq!(loads(&racy), before + 1);
    }

    #[test]
    fn an_expired_cache_reloads() {
        let (racy, store, other) = cached_pair(Duration::from_millis(50));
        store.read(|ring| Ok(ring.keys.len())).unwrap();
        other.update(|ring| ring.create(&spec("x"), 0)).unwrap();
        // Within the TTL a whole-keyring view may be stale...
        let before = loads(&racy);
        assert_eq!(store.read(|ring| Ok(ring.keys.len())).unwrap(), 0);
        assert_eq!(loads(&racy), before);
        // ...and no longer once it has expired.
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(store.read(|ring| Ok(ring.keys.len())).unwrap(), 1);
        assert_eq!(loads(&racy), before + 1);
    }

    #[test]
    fn a_change_that_changes_nothing_writes_nothing_while_the_copy_is_fresh() {
        let (racy, store, _) = cached_pair(Duration::from_secs(60));
        let owned = KeySpec {
            owner: Some("uid-1".into()),
            ..spec("a")
        };
        let created = store.update(|ring| ring.create(&owned, 0)).unwrap();
        let revision = || racy.data.lock().unwrap().as_ref().unwrap().1;
        let written = revision();
        // The owner's key exists: found, not written again.
        let found = store.update(|ring| ring.create(&owned, 0)).unwrap();
        assert_eq!(found.key_id, created.key_id);
        assert_eq!(revision(), written);
        // Without a TTL the copy is never fresh: written (and checked) as before.
        store.set_cache_ttl(Duration::ZERO);
        store.update(|ring| ring.create(&owned, 0)).unwrap();
        assert_eq!(revision(), written + 1);
    }

    #[test]
    fn without_a_ttl_every_read_loads() {
        let (racy, store, _) = cached_pair(Duration::ZERO);
        let before = loads(&racy);
        for _ in 0..3 {
            store.read(|ring| Ok(ring.keys.len())).unwrap();
        }
        assert_eq!(loads(&racy), before + 3);
    }

    #[test]
    fn a_failed_change_leaves_no_trace_in_the_cache() {
        let (_, store, _) = cached_pair(Duration::from_secs(60));
        let error = store
            .update(|ring| {
                ring.create(&spec("half"), 0)?;
                Err::<(), _>(ProviderError::InvalidRequest("no".into()))
            })
            .unwrap_err();
        assert!(matches!(error, ProviderError::InvalidRequest(_)));
        assert_eq!(store.read(|ring| Ok(ring.keys.len())).unwrap(), 0);
    }
}
