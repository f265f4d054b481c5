//! `keyward rewrap` leaves the file as it was whenever it cannot finish.
//! The full flow (a real webhook, a rotated key) is in e2e/tests/webhook.rs.

mod common;

use common::Keyward;

const SEALED: &str = "apiVersion: keyward.io/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: team\nspec:\n  keyRef:\n    name: db\n  encryptedData:\n    password: AAAA\n";

fn ca() -> String {
    format!("{}/tests/fixtures/test-ca.pem", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn unreachable_webhook_leaves_the_file_unchanged() {
    let kw = Keyward::new();
    let file = kw.write("db.yaml", SEALED.as_bytes());
    let token = kw.write("token", b"t0k3n\n");
    let (file_arg, token_arg) = (file.display().to_string(), token.display().to_string());
    let error = kw
        .run(&[
            "rewrap",
            "-f",
            &file_arg,
            "--server",
            "https://127.0.0.1:1",
            "--ca-file",
            &ca(),
            "--token-file",
            &token_arg,
        ])
        .user_error();
    assert!(
        error.contains("unchanged") && error.contains("cannot connect"),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), SEALED);
    let left: Vec<_> = std::fs::read_dir(kw.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("keyward-rewrap"))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}

#[test]
fn a_kubeconfig_user_without_a_token_is_told_to_use_token_file() {
    let kw = Keyward::new();
    let file = kw.write("db.yaml", SEALED.as_bytes());
    let config = kw.write(
        "kubeconfig",
        b"current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nusers:\n- name: u\n  user: {client-certificate-data: AAAA}\n",
    );
    let (file_arg, config_arg) = (file.display().to_string(), config.display().to_string());
    let error = kw
        .run(&[
            "rewrap",
            "-f",
            &file_arg,
            "--server",
            "https://127.0.0.1:1",
            "--ca-file",
            &ca(),
            "--kubeconfig",
            &config_arg,
        ])
        .user_error();
    assert!(error.contains("--token-file"), "{error}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), SEALED);
}
