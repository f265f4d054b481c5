//! The stored keyring's custody: an older copy written back is refused (by
//! the running process and by a fresh one), and destroyed material leaves
//! the stored keyring when it falls due, not at the next change.

use super::*;
use crate::crypto;
use crate::provider::KeyAlgorithm;

fn spec(name: &str) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm: KeyAlgorithm::Aes256,
        owner: None,
        description: None,
    }
}

/// A keyring in `dir` and a way to open it again as another process would.
fn keyring(dir: &Path) -> (LocalProvider, impl Fn() -> LocalProvider) {
    let root = RootKey::generate();
    let again = root.clone();
    let dir_again = dir.to_owned();
    let local = LocalProvider::open_or_initialise(KeyringStore::new(dir, root)).unwrap();
    (local, move || {
        LocalProvider::new(KeyringStore::new(&dir_again, again.clone()))
    })
}

/// The decrypted keyring document exactly as stored, with nothing purged.
fn stored_document(dir: &Path, root: &RootKey) -> serde_json::Value {
    let bytes = std::fs::read(dir.join(KEYRING_FILE)).unwrap();
    let nonce: [u8; crypto::NONCE_LEN] = bytes[5..5 + crypto::NONCE_LEN].try_into().unwrap();
    let json = crypto::open(
        root.expose(),
        &nonce,
        &bytes[..5],
        &bytes[5 + crypto::NONCE_LEN..],
    )
    .unwrap();
    serde_json::from_slice(&json).unwrap()
}

#[tokio::test]
async fn an_older_keyring_written_back_is_refused_until_accepted_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let (local, reopen) = keyring(dir.path());
    let key = local.create_key(&spec("app")).await.unwrap();
    let path = dir.path().join(KEYRING_FILE);
    let old_copy = std::fs::read(&path).unwrap();
    local.rotate_key("app").await.unwrap();
    local
        .schedule_deletion(&key.key_id, DeletionTarget::Version(1), Duration::ZERO)
        .await
        .unwrap();
    let written = local.store().generation().unwrap();
    assert_eq!(written, 4, "initialised, created, rotated, scheduled");

    std::fs::write(&path, &old_copy).unwrap();
    for (who, provider) in [
        ("the running process", &local),
        ("a fresh process", &reopen()),
    ] {
        let error = provider.describe_key("app").await.unwrap_err().to_string();
        assert!(
            error.contains("generation 2, but generation 4 was already written"),
            "{who}: {error}"
        );
        assert!(
            error.contains(GENERATION_FILE),
            "{who} says how to accept it: {error}"
        );
        let refused = provider.rotate_key("app").await.unwrap_err();
        assert!(
            refused.to_string().contains("older copy"),
            "{who}: {refused}"
        );
    }

    // A deliberate restore: the recorded generation is removed first.
    std::fs::remove_file(dir.path().join(GENERATION_FILE)).unwrap();
    let restored = reopen();
    assert_eq!(
        restored.describe_key("app").await.unwrap().versions.len(),
        1
    );
    restored.rotate_key("app").await.unwrap();
    assert_eq!(restored.store().generation().unwrap(), 3);
}

#[tokio::test]
async fn a_deleted_keyring_is_not_silently_replaced_by_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let (local, reopen) = keyring(dir.path());
    local.create_key(&spec("app")).await.unwrap();
    std::fs::remove_file(dir.path().join(KEYRING_FILE)).unwrap();
    let error = reopen().store().initialise().unwrap_err().to_string();
    assert!(
        error.contains("the keyring is gone, but generation 2"),
        "{error}"
    );
    assert!(error.contains("restore the newest backup"), "{error}");
}

#[tokio::test]
async fn destroyed_material_leaves_the_stored_keyring_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let root = RootKey::generate();
    let store = KeyringStore::new(dir.path(), root.clone());
    let local = LocalProvider::open_or_initialise(store).unwrap();
    let key = local.create_key(&spec("app")).await.unwrap();
    local.rotate_key("app").await.unwrap();
    let material = |document: &serde_json::Value, version: usize| {
        document["keys"][0]["versions"][version - 1]["material"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(!material(&stored_document(dir.path(), &root), 1).is_empty());

    // Nothing due: nothing is written.
    let before = std::fs::read(dir.path().join(KEYRING_FILE)).unwrap();
    assert_eq!(local.erase_due().await.unwrap(), None);
    assert_eq!(
        std::fs::read(dir.path().join(KEYRING_FILE)).unwrap(),
        before
    );

    local
        .schedule_deletion(&key.key_id, DeletionTarget::Version(1), Duration::ZERO)
        .await
        .unwrap();
    local
        .schedule_deletion(
            &key.key_id,
            DeletionTarget::Version(2),
            Duration::from_secs(3600),
        )
        .await
        .unwrap_err();
    // Scheduled and due, but still stored until something writes.
    assert!(!material(&stored_document(dir.path(), &root), 1).is_empty());

    let next = local.erase_due().await.unwrap();
    assert_eq!(
        next, None,
        "the primary cannot be scheduled, so nothing else is due"
    );
    let document = stored_document(dir.path(), &root);
    assert_eq!(material(&document, 1), "", "erased from storage");
    assert_eq!(document["keys"][0]["versions"][0]["state"], "destroyed");
    assert!(!material(&document, 2).is_empty(), "the primary is kept");
}

/// Hands out keyring bytes in order and reports a fixed recorded floor.
struct Scripted {
    loads: std::sync::Mutex<std::collections::VecDeque<Vec<u8>>>,
    floor: u64,
}

impl KeyringBackend for Scripted {
    fn location(&self) -> String {
        "scripted".into()
    }
    fn load(&self) -> Result<Option<Stored>> {
        let bytes = self
            .loads
            .lock()
            .unwrap()
            .pop_front()
            .expect("a load was scripted");
        Ok(Some(Stored {
            bytes,
            revision: Revision("r".into()),
        }))
    }
    fn store(&self, _: &[u8], _: Option<&Revision>) -> std::result::Result<(), WriteError> {
        Err(WriteError::Conflict)
    }
    fn generation_floor(&self) -> Result<Option<u64>> {
        Ok(Some(self.floor))
    }
}

/// Another writer's write landing between reading the keyring and reading
/// the floor is not a rollback: the keyring is read again, after the floor.
#[tokio::test]
async fn a_keyring_read_just_before_another_write_is_read_again_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = RootKey::generate();
    let local =
        LocalProvider::open_or_initialise(KeyringStore::new(dir.path(), root.clone())).unwrap();
    local.create_key(&spec("app")).await.unwrap();
    let older = std::fs::read(dir.path().join(KEYRING_FILE)).unwrap();
    local.rotate_key("app").await.unwrap();
    let newer = std::fs::read(dir.path().join(KEYRING_FILE)).unwrap();
    let scripted = |loads: Vec<Vec<u8>>| {
        let backend = Scripted {
            loads: std::sync::Mutex::new(loads.into()),
            floor: 3,
        };
        LocalProvider::new(KeyringStore::with_backend(Box::new(backend), root.clone()))
    };
    let raced = scripted(vec![older.clone(), newer]);
    assert_eq!(raced.describe_key("app").await.unwrap().primary_version, 2);
    let rolled_back = scripted(vec![older.clone(), older]);
    let error = rolled_back
        .describe_key("app")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("generation 2, but generation 3"), "{error}");
}
