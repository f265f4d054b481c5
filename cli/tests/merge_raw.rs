//! kubeseal's `--merge-into` and `--raw`, through the real binary.
mod common;

use common::Keyward;
use keyward_crds::SealedSecret;

fn sealed(text: &[u8]) -> SealedSecret {
    serde_yaml_ng::from_slice(text).unwrap()
}

fn opened(keyward: &Keyward, file: &str, item: &str) -> String {
    keyward
        .run(&["unseal", "-f", file, "--item", item])
        .ok()
        .stdout_text()
}

#[test]
fn merge_into_adds_and_replaces_items_and_leaves_the_others_byte_identical() {
    let keyward = Keyward::new();
    let first = keyward
        .run(&[
            "seal",
            "-n",
            "shop",
            "--name",
            "db",
            "--key",
            "app",
            "--from-literal",
            "user=app",
            "--from-literal",
            "password=old",
        ])
        .ok();
    let path = keyward.write("db.yaml", &first.stdout);
    let file = path.to_str().unwrap();
    let before = sealed(&first.stdout);

    let merged = keyward
        .run(&[
            "seal",
            "--merge-into",
            file,
            "--from-literal",
            "password=new",
            "--from-literal",
            "port=5432",
        ])
        .ok();
    assert!(merged.stdout.is_empty(), "nothing on stdout");
    assert!(
        merged.stderr.contains("replaced: password"),
        "{}",
        merged.stderr
    );
    let after = sealed(&std::fs::read(&path).unwrap());
    assert_eq!(
        after.spec.encrypted_data["user"], before.spec.encrypted_data["user"],
        "an item not named was rewritten"
    );
    assert_ne!(
        after.spec.encrypted_data["password"],
        before.spec.encrypted_data["password"]
    );
    assert_eq!(after.metadata.name.as_deref(), Some("db"));
    assert_eq!(opened(&keyward, file, "user"), "app");
    assert_eq!(opened(&keyward, file, "password"), "new");
    assert_eq!(opened(&keyward, file, "port"), "5432");

    // Flags that would bind a value elsewhere are refused, file untouched.
    let untouched = std::fs::read(&path).unwrap();
    for (flag, value) in [("-n", "other"), ("--name", "api"), ("--key", "other")] {
        let error = keyward
            .run(&[
                "seal",
                "--merge-into",
                file,
                flag,
                value,
                "--from-literal",
                "x=1",
            ])
            .user_error();
        assert!(error.contains("differs from"), "{flag}: {error}");
    }
    let error = keyward
        .run(&[
            "seal",
            "--merge-into",
            file,
            "--service-account",
            "web",
            "--from-literal",
            "x=1",
        ])
        .user_error();
    assert!(error.contains("reseal all items"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), untouched);
}

#[test]
fn a_raw_value_pastes_into_a_sealed_secret_that_opens() {
    let keyward = Keyward::new();
    let raw = keyward
        .run(&[
            "seal",
            "-n",
            "shop",
            "--name",
            "db",
            "--key",
            "app",
            "--raw",
            "--from-literal",
            "token=t0ps3cret",
        ])
        .ok();
    let value = String::from_utf8(raw.stdout.clone()).unwrap();
    assert!(
        !value.contains('\n') && !value.contains("t0ps3cret"),
        "{value}"
    );
    let manifest = format!(
        "apiVersion: keyward.io/v1alpha1\nkind: SealedSecret\nmetadata: {{name: db, namespace: shop}}\n\
         spec:\n  keyRef: {{name: app}}\n  encryptedData:\n    token: {value}\n"
    );
    let path = keyward.write("pasted.yaml", manifest.as_bytes());
    assert_eq!(
        opened(&keyward, path.to_str().unwrap(), "token"),
        "t0ps3cret"
    );

    // Pasted under another name it does not open: the item name is bound.
    let moved = manifest.replace("name: db,", "name: api,");
    let path = keyward.write("moved.yaml", moved.as_bytes());
    let error = keyward
        .run(&["unseal", "-f", path.to_str().unwrap(), "--item", "token"])
        .user_error();
    assert!(error.contains("sealed for secret name `db`"), "{error}");

    let error = keyward
        .run(&[
            "seal",
            "-n",
            "shop",
            "--name",
            "db",
            "--key",
            "app",
            "--raw",
            "--from-literal",
            "a=1",
            "--from-literal",
            "b=2",
        ])
        .user_error();
    assert!(error.contains("--raw prints one value"), "{error}");
}
