//! Key operations and unseals through the CLI land in a verifiable chain.
mod common;

use common::Keyward;

#[test]
fn operations_are_audited_without_values_and_edits_are_detected() {
    let keyward = Keyward::new();
    let sealed = keyward.seal_file("shop", "db", "pw", &keyward.write("v", b"hunter2"));
    keyward
        .run(&["unseal", "-f", sealed.to_str().unwrap()])
        .ok();
    let text = std::fs::read_to_string(&sealed).unwrap();
    let moved = keyward.write(
        "moved.yaml",
        text.replace("namespace: shop", "namespace: dev").as_bytes(),
    );
    keyward
        .run(&["unseal", "-f", moved.to_str().unwrap()])
        .user_error();
    keyward.run(&["local", "rotate", "app"]).ok();

    let verified = keyward.run(&["audit", "verify"]).ok().stdout_text();
    assert!(verified.contains("5 records, chain intact"), "{verified}");

    let log_path = keyward.path("keyring").join("audit.log");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let actions: Vec<&str> = ["key.create", "secret.seal", "secret.unseal", "key.rotate"]
        .into_iter()
        .filter(|action| log.contains(action))
        .collect();
    assert_eq!(actions.len(), 4, "{log}");
    assert!(
        log.contains("\"outcome\":\"failed\""),
        "the refused unseal is recorded: {log}"
    );
    assert!(!log.contains("hunter2"), "a value reached the audit log");

    std::fs::write(&log_path, log.replacen("shop/db", "shop/xx", 1)).unwrap();
    let error = keyward.run(&["audit", "verify"]).user_error();
    assert!(error.contains("broken at line 2"), "{error}");
}
