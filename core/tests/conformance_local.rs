//! The shared provider conformance suite against the embedded `local` provider.

use keyward_conformance::{Capabilities, run};
use keyward_core::local::{KeyringStore, LocalProvider, ROOT_KEY_FILE, RootKey};

#[tokio::test]
async fn local_provider_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let root = RootKey::generate();
    root.save_new(&dir.path().join(ROOT_KEY_FILE)).unwrap();
    let store = KeyringStore::new(dir.path(), root);
    store.initialise().unwrap();
    let provider = LocalProvider::new(store);

    let ran = run(&provider, &Capabilities::default()).await;
    assert_eq!(
        ran.len(),
        10,
        "every check must run against the local provider: {ran:?}"
    );
}
