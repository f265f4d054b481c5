//! `keyward rewrap` leaves the file as it was whenever it cannot finish,
//! and `keyward validate` says what is wrong before asking anyone. The full
//! flows (a real API server and webhook, a rotated key) are in
//! e2e/tests/webhook.rs.

mod common;

use common::Keyward;

const SEALED: &str = "apiVersion: keyward.io/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: team\nspec:\n  keyRef:\n    name: db\n  encryptedData:\n    password: AAAA\n";

/// A kubeconfig for an API server nobody listens on.
fn unreachable_kubeconfig(kw: &Keyward) -> String {
    kw.write(
        "kubeconfig",
        b"apiVersion: v1\nkind: Config\ncurrent-context: c\n\
          clusters:\n- name: k\n  cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}\n\
          contexts:\n- name: c\n  context: {cluster: k, user: u}\n\
          users:\n- name: u\n  user: {token: t0k3n}\n",
    )
    .display()
    .to_string()
}

#[test]
fn an_unreachable_cluster_leaves_the_file_unchanged() {
    let kw = Keyward::new();
    let file = kw.write("db.yaml", SEALED.as_bytes());
    let file_arg = file.display().to_string();
    let config = unreachable_kubeconfig(&kw);
    let error = kw
        .run(&["rewrap", "-f", &file_arg, "--kubeconfig", &config])
        .user_error();
    assert!(error.contains("unchanged"), "{error}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), SEALED);
    let left: Vec<_> = std::fs::read_dir(kw.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("keyward-rewrap"))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}

#[test]
fn a_file_without_a_namespace_needs_one_and_a_conflicting_one_is_refused() {
    let kw = Keyward::new();
    let config = unreachable_kubeconfig(&kw);
    let bare = kw.write(
        "bare.yaml",
        SEALED.replace("  namespace: team\n", "").as_bytes(),
    );
    let bare_arg = bare.display().to_string();
    for verb in ["rewrap", "validate"] {
        let error = kw
            .run(&[verb, "-f", &bare_arg, "--kubeconfig", &config])
            .user_error();
        assert!(error.contains("add it or pass -n"), "{verb}: {error}");
    }
    let file = kw.write("db.yaml", SEALED.as_bytes());
    let file_arg = file.display().to_string();
    let error = kw
        .run(&[
            "validate",
            "-f",
            &file_arg,
            "-n",
            "other",
            "--kubeconfig",
            &config,
        ])
        .user_error();
    assert!(
        error.contains("for namespace `team`, not `other`"),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), SEALED);
}

/// Online sealing is the default: with no cluster to reach, the one line
/// says how to seal without one.
#[test]
fn an_online_seal_without_a_cluster_says_how_to_seal_offline() {
    let kw = Keyward::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["seal", "-n", "team", "--name", "db", "--key", "app"])
        .args(["--from-literal", "password=x"])
        .env("KUBECONFIG", kw.dir.path().join("no-such-kubeconfig"))
        .env_remove("KEYWARD_KEYRING")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--keyring DIR") && stderr.contains("--cert FILE"),
        "{stderr}"
    );
    assert!(!stderr.contains("password=x") && !stderr.contains(": x"));
}
