//! Everything a user can get wrong fails with one clear line, and tampered
//! or moved ciphertext never opens.
mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::Keyward;
use keyward_core::envelope::Envelope;

#[test]
fn a_value_sealed_for_one_namespace_does_not_open_in_another() {
    let keyward = Keyward::new();
    let sealed = keyward.seal_file("team-a", "db", "pw", &keyward.write("v", b"secret"));
    let text = std::fs::read_to_string(&sealed).unwrap();
    let moved = keyward.write(
        "moved.yaml",
        text.replace("namespace: team-a", "namespace: team-b")
            .as_bytes(),
    );
    let error = keyward
        .run(&["unseal", "-f", moved.to_str().unwrap()])
        .user_error();
    assert!(error.contains("sealed for namespace `team-a`"), "{error}");
    assert!(error.contains("opened as namespace `team-b`"), "{error}");

    let renamed = keyward.write(
        "renamed.yaml",
        text.replace("name: db", "name: other").as_bytes(),
    );
    let error = keyward
        .run(&["unseal", "-f", renamed.to_str().unwrap()])
        .user_error();
    assert!(error.contains("secret name `db`"), "{error}");

    let inspected = keyward.run(&["inspect", "-f", moved.to_str().unwrap()]);
    assert_eq!(inspected.status, 1, "inspect must flag the moved item");
}

/// Flips every byte of a sealed value in turn. Bytes of the nonce, the
/// ciphertext, the tag and the wrapped DEK must fail authentication; header
/// bytes may instead fail as malformed, truncated or moved; none may open or panic.
#[test]
fn flipping_any_byte_of_a_sealed_value_is_rejected() {
    let keyward = Keyward::new();
    let sealed = keyward.seal_file("shop", "db", "pw", &keyward.write("v", b"hunter2"));
    let manifest = std::fs::read_to_string(&sealed).unwrap();
    let encoded = manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("pw: "))
        .unwrap()
        .to_owned();
    let envelope = Envelope::decode(&encoded).unwrap();
    let bytes = STANDARD.decode(&encoded).unwrap();
    let body_start = bytes.len() - envelope.ciphertext.len() - 4 - 12;
    let wrapped_start = body_start - envelope.wrapped_dek.len();

    let mut authentication_failures = 0;
    for index in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[index] ^= 0x01;
        let path = keyward.write(
            "tampered.yaml",
            manifest
                .replace(&encoded, &STANDARD.encode(&tampered))
                .as_bytes(),
        );
        let error = keyward
            .run(&["unseal", "-f", path.to_str().unwrap()])
            .user_error();
        assert!(!error.contains("hunter2"));
        let in_length_field = (body_start + 12..body_start + 16).contains(&index);
        if index >= wrapped_start && !in_length_field {
            assert!(
                error.contains("authentication failed"),
                "byte {index}: {error}"
            );
            authentication_failures += 1;
        }
    }
    assert!(
        authentication_failures >= 7 + 16 + 12 + 61,
        "{authentication_failures}"
    );
}

#[test]
fn user_errors_say_what_to_do() {
    let keyward = Keyward::new();
    type Case<'a> = (Vec<&'a str>, Option<&'a [u8]>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["unseal", "-f", "/no/such/file.yaml"],
            None,
            "cannot read /no/such/file.yaml",
        ),
        (
            vec!["seal", "--key", "app"],
            Some(b"kind: Secret\n  bad: [indent"),
            "not valid YAML",
        ),
        (
            vec!["seal", "--key", "app"],
            Some(b"apiVersion: v1\nkind: ConfigMap\n"),
            "not a Kubernetes Secret",
        ),
        (
            vec!["seal", "--key", "app"],
            Some(b"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: {k: dg==}\n"),
            "pass -n/--namespace",
        ),
        (
            vec![
                "seal",
                "-n",
                "x",
                "--name",
                "y",
                "--key",
                "nope",
                "--from-literal",
                "a=b",
            ],
            None,
            "keyward local list",
        ),
        (
            vec![
                "seal",
                "-n",
                "x",
                "--name",
                "y",
                "--key",
                "app",
                "--from-literal",
                "novalue",
            ],
            None,
            "not KEY=VALUE",
        ),
        (
            vec![
                "seal",
                "-n",
                "x",
                "--name",
                "y",
                "--key",
                "app",
                "--from-literal",
                "bad/name=v",
            ],
            None,
            "not a valid Secret key",
        ),
        (
            vec!["unseal", "-f", "-"],
            Some(b"apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\n"),
            "Bitnami",
        ),
        (vec!["local", "init"], None, "already exists"),
    ];
    for (args, stdin, expected) in cases {
        let error = keyward.run_with_stdin(&args, stdin).user_error();
        assert!(
            error.contains(expected),
            "{args:?}: expected `{expected}` in: {error}"
        );
    }
}

#[test]
fn a_secret_with_a_malformed_value_is_reported_without_quoting_it() {
    let keyward = Keyward::new();
    let secret = b"apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\ndata:\n  pw: not-base64-hunter2!\n";
    let error = keyward
        .run_with_stdin(&["seal", "--key", "app"], Some(secret))
        .user_error();
    assert!(error.contains("line"), "{error}");
    assert!(
        !error.contains("hunter2"),
        "the value leaked into the error: {error}"
    );
}

#[test]
fn a_missing_keyring_tells_how_to_create_one() {
    let keyward = Keyward::new();
    let error = keyward
        .run(&["local", "--keyring", "/nonexistent/kr", "list"])
        .user_error();
    assert!(error.contains("keyward local init"), "{error}");
}
