//! Values of every shape survive seal -> unseal through the real binary.
mod common;

use common::Keyward;

fn round_trip(keyward: &Keyward, value: &[u8]) {
    let input = keyward.write("value.bin", value);
    let sealed = keyward.seal_file("shop", "db", "blob", &input);
    let opened = keyward
        .run(&["unseal", "-f", sealed.to_str().unwrap(), "--item", "blob"])
        .ok();
    assert_eq!(opened.stdout.len(), value.len());
    assert!(
        opened.stdout == value,
        "value of {} bytes changed in the round trip",
        value.len()
    );
}

#[test]
fn empty_one_byte_binary_and_ten_mib_values_round_trip() {
    let keyward = Keyward::new();
    round_trip(&keyward, b"");
    round_trip(&keyward, b"x");
    let binary: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    assert!(std::str::from_utf8(&binary).is_err());
    round_trip(&keyward, &binary);
    let large: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    round_trip(&keyward, &large);
}

#[test]
fn a_secret_manifest_on_stdin_becomes_a_sealed_secret_and_back() {
    let keyward = Keyward::new();
    let secret = b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\n  namespace: shop\ndata:\n  token: aHVudGVyMg==\nstringData:\n  user: admin\n";
    let sealed = keyward
        .run_with_stdin(&["seal", "--key", "app"], Some(secret))
        .ok();
    let text = sealed.stdout_text();
    assert!(
        text.contains("kind: SealedSecret") && text.contains("namespace: shop"),
        "{text}"
    );
    assert!(
        !text.contains("hunter2") && !text.contains("admin"),
        "plaintext leaked: {text}"
    );
    let path = keyward.write("api.yaml", &sealed.stdout);
    let opened = keyward
        .run(&["unseal", "-f", path.to_str().unwrap()])
        .ok()
        .stdout_text();
    assert!(opened.contains("token: aHVudGVyMg=="), "{opened}");
    assert!(opened.contains("user: YWRtaW4="), "{opened}");
}

#[test]
fn offline_sealing_with_a_public_key_file_opens_with_the_keyring() {
    let keyward = Keyward::new();
    keyward
        .run(&["local", "create-key", "seal", "--algorithm", "RSA3072"])
        .ok();
    let public = keyward.run(&["local", "public-key", "seal"]).ok();
    let cert = keyward.write("seal.pub", &public.stdout);
    let sealed = keyward
        .run(&[
            "seal",
            "-n",
            "shop",
            "--name",
            "db",
            "--cert",
            cert.to_str().unwrap(),
            "--from-literal",
            "pw=offline",
        ])
        .ok();
    let path = keyward.write("db.yaml", &sealed.stdout);
    let facts = keyward
        .run(&["inspect", "-f", path.to_str().unwrap()])
        .ok()
        .stdout_text();
    assert!(
        facts.contains("rsa-oaep-sha256") && facts.contains("shop/seal"),
        "{facts}"
    );
    let opened = keyward
        .run(&["unseal", "-f", path.to_str().unwrap(), "--item", "pw"])
        .ok();
    assert_eq!(opened.stdout, b"offline");
}

#[test]
fn secrets_sealed_before_a_rotation_still_open_and_new_ones_use_the_new_version() {
    let keyward = Keyward::new();
    let before = keyward.seal_file("shop", "db", "pw", &keyward.write("v", b"one"));
    keyward.run(&["local", "rotate", "app"]).ok();
    let after = keyward.seal_file("shop", "db2", "pw", &keyward.write("v", b"two"));
    let version = |path: &std::path::Path| {
        let json = keyward
            .run(&["inspect", "--json", "-f", path.to_str().unwrap()])
            .ok()
            .stdout_text();
        serde_json::from_str::<serde_json::Value>(&json).unwrap()[0]["keyVersion"]
            .as_u64()
            .unwrap()
    };
    assert_eq!((version(&before), version(&after)), (1, 2));
    let opened = keyward
        .run(&["unseal", "-f", before.to_str().unwrap(), "--item", "pw"])
        .ok();
    assert_eq!(opened.stdout, b"one");
}
