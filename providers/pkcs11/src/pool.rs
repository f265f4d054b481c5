//! One logged-in token and a bounded pool of its sessions.
//!
//! PKCS#11 login state belongs to the application, not to a session: the
//! first session logs in and every later one shares it, until the last
//! session closes. The pool therefore keeps its sessions open and reuses
//! them. A `Session` is `Send` but not `Sync`, so each one is used by one
//! blocking thread at a time: taken from the idle list, used inside
//! `spawn_blocking`, and put back (or dropped if the token broke it).

use crate::config::{Pkcs11Config, read_pin};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use keyward_core::provider::{ProviderError, Result};
use secrecy::SecretString;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use tokio::sync::Semaphore;

/// A failure inside a token call: either straight from the module, or one
/// Keyward decided on (disabled version, unknown key...).
#[derive(Debug)]
pub enum OpError {
    Token(CkError),
    Provider(ProviderError),
}

impl From<CkError> for OpError {
    fn from(error: CkError) -> Self {
        OpError::Token(error)
    }
}

impl From<ProviderError> for OpError {
    fn from(error: ProviderError) -> Self {
        OpError::Provider(error)
    }
}

pub type OpResult<T> = std::result::Result<T, OpError>;

/// A module is loaded and `C_Initialize`d once per process: a second
/// `C_Initialize` fails, and `C_Finalize` would log out every other user.
fn module(path: &Path) -> Result<Pkcs11> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = lock(MODULES.get_or_init(Default::default));
    if let Some(loaded) = modules.get(path) {
        return Ok(loaded.clone());
    }
    if !path.exists() {
        return Err(ProviderError::Unavailable(format!(
            "PKCS#11 module {} does not exist; set `module` to the vendor's library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)",
            path.display()
        )));
    }
    let pkcs11 = Pkcs11::new(path).map_err(|e| {
        ProviderError::Unavailable(format!(
            "cannot load PKCS#11 module {}: {e}; check that it is the vendor's PKCS#11 library for this architecture",
            path.display()
        ))
    })?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(ProviderError::Unavailable(format!(
                "PKCS#11 module {} failed to initialise: {e}",
                path.display()
            )));
        }
    }
    modules.insert(path.to_owned(), pkcs11.clone());
    Ok(pkcs11)
}

/// One reader/writer lock per token in this process, shared by every
/// provider instance on it: object creation and destruction take it
/// exclusively, everything else shared. SoftHSM2's file store answers
/// CKR_GENERAL_ERROR when a thread creates token objects while another
/// thread of the same process reads them (its file locks are per process),
/// and metadata updates must not interleave anyway.
fn token_lock(module: &Path, slot: Slot) -> Arc<RwLock<()>> {
    type Locks = Mutex<HashMap<(PathBuf, u64), Arc<RwLock<()>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    let mut locks = lock(LOCKS.get_or_init(Default::default));
    Arc::clone(locks.entry((module.to_owned(), slot.id())).or_default())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct Token {
    pkcs11: Pkcs11,
    slot: Slot,
    pin: SecretString,
    pin_file: PathBuf,
    /// "token `keyward` (slot 3)", for error messages.
    name: String,
    idle: Mutex<Vec<Session>>,
    permits: Arc<Semaphore>,
    opened: AtomicUsize,
    objects: Arc<RwLock<()>>,
}

impl Token {
    /// Loads the module, finds the token and logs in once. Blocking.
    pub fn open(config: &Pkcs11Config) -> Result<Token> {
        let pin = read_pin(&config.pin_file)?;
        let pkcs11 = module(&config.module)?;
        let slot = find_slot(&pkcs11, config)?;
        let token = Token {
            pkcs11,
            slot,
            pin,
            pin_file: config.pin_file.clone(),
            name: format!("token `{}` (slot {})", config.token_label, slot.id()),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(config.max_sessions.max(1))),
            opened: AtomicUsize::new(0),
            objects: token_lock(&config.module, slot),
        };
        let session = token.open_session()?;
        lock(&token.idle).push(session);
        Ok(token)
    }

    /// Held exclusively while creating or destroying objects on the token.
    pub fn objects_lock(&self) -> Arc<RwLock<()>> {
        Arc::clone(&self.objects)
    }

    /// How many sessions this pool has opened in its life (reuse shows as a
    /// number that stays at or below `max_sessions`).
    pub fn sessions_opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    fn open_session(&self) -> Result<Session> {
        let session = self
            .pkcs11
            .open_rw_session(self.slot)
            .map_err(|e| self.error(e))?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(
                RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
                _,
            )) => {
                return Err(ProviderError::InvalidRequest(format!(
                    "{} rejected the user PIN; check the PIN file {} (one line, the CKU_USER PIN, not the SO PIN)",
                    self.name,
                    self.pin_file.display()
                )));
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(ProviderError::InvalidRequest(format!(
                    "the user PIN of {} is locked after too many wrong attempts; the security officer must reset it, then check the PIN file {}",
                    self.name,
                    self.pin_file.display()
                )));
            }
            Err(e) => return Err(self.error(e)),
        }
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(session)
    }

    /// Runs `work` with a pooled session on a blocking thread. At most
    /// `max_sessions` calls run at once; the rest wait for a permit.
    pub async fn run<T, F>(self: &Arc<Self>, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Session) -> OpResult<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| ProviderError::Unavailable(format!("{} is shutting down", self.name)))?;
        let token = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            token.with_session(work)
        })
        .await
        .map_err(|e| ProviderError::Storage(format!("PKCS#11 task failed: {e}")))?
    }

    fn with_session<T>(&self, work: impl FnOnce(&Session) -> OpResult<T>) -> Result<T> {
        let pooled = lock(&self.idle).pop();
        let session = match pooled {
            Some(session) => session,
            None => self.open_session()?,
        };
        let result = work(&session);
        match &result {
            Err(OpError::Token(CkError::Pkcs11(RvError::UserNotLoggedIn, _))) => {
                // The token forgot the login (restart, last session closed
                // elsewhere): start over so the next session logs in again.
                lock(&self.idle).clear();
            }
            Err(OpError::Token(CkError::Pkcs11(rv, _))) if breaks_session(*rv) => {}
            _ => lock(&self.idle).push(session),
        }
        result.map_err(|e| match e {
            OpError::Token(e) => self.error(e),
            OpError::Provider(e) => e,
        })
    }

    /// Maps a module error to what the caller can act on.
    pub fn error(&self, error: CkError) -> ProviderError {
        match error {
            CkError::Pkcs11(rv, function)
                if breaks_session(rv) || rv == RvError::UserNotLoggedIn =>
            {
                ProviderError::Unavailable(format!(
                    "{} is not reachable ({function} returned {rv:?}); check that the HSM is up and the token present",
                    self.name
                ))
            }
            CkError::Pkcs11(rv, function) => {
                ProviderError::Storage(format!("{}: PKCS#11 {function} returned {rv:?}", self.name))
            }
            CkError::LibraryLoading(e) => {
                ProviderError::Unavailable(format!("PKCS#11 module could not be used: {e}"))
            }
            other => ProviderError::Storage(format!("{}: {other}", self.name)),
        }
    }
}

/// Errors after which the session is useless and must not go back to the pool.
fn breaks_session(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::CryptokiNotInitialized
    )
}

fn find_slot(pkcs11: &Pkcs11, config: &Pkcs11Config) -> Result<Slot> {
    let unavailable = |e: CkError| {
        ProviderError::Unavailable(format!(
            "PKCS#11 module {} cannot list its slots: {e}",
            config.module.display()
        ))
    };
    let mut seen = Vec::new();
    let mut found = Vec::new();
    for slot in pkcs11.get_slots_with_token().map_err(unavailable)? {
        if config.slot.is_some_and(|wanted| wanted != slot.id()) {
            continue;
        }
        let info = pkcs11.get_token_info(slot).map_err(unavailable)?;
        let label = info.label().trim_end().to_owned();
        if label == config.token_label {
            found.push(slot);
        }
        seen.push(format!("`{label}` (slot {})", slot.id()));
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(ProviderError::Unavailable(format!(
            "no token labelled `{}`{} in PKCS#11 module {}; tokens seen: {}",
            config.token_label,
            config
                .slot
                .map(|s| format!(" in slot {s}"))
                .unwrap_or_default(),
            config.module.display(),
            if seen.is_empty() {
                "none".to_owned()
            } else {
                seen.join(", ")
            }
        ))),
        several => Err(ProviderError::InvalidRequest(format!(
            "{} tokens are labelled `{}`; set `slot` to one of {}",
            several.len(),
            config.token_label,
            several
                .iter()
                .map(|s| s.id().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
