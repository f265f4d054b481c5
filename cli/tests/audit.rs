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

fn padded(i: usize) -> keyward_core::audit::Event {
    keyward_core::audit::Event {
        actor: "cli:test".into(),
        action: "secret.unseal".into(),
        subject: format!("shop/{i}-{}", "x".repeat(400)),
        outcome: "ok".into(),
        detail: Default::default(),
    }
}

#[test]
fn verify_walks_rotated_pruned_and_broken_segments() {
    use keyward_core::audit::{AuditLog, Options};
    let keyward = Keyward::new();
    let path = keyward.path("rotated.log");
    let file = path.to_str().unwrap();
    let log = AuditLog::with_options(
        &path,
        Options {
            // The smallest segments, three kept: the oldest get pruned.
            max_bytes: 0,
            keep_segments: Some(3),
            fsync: false,
            mirror_stdout: false,
        },
    );
    for i in 0..60 {
        log.append(padded(i)).unwrap();
    }
    let out = keyward
        .run(&["audit", "verify", "-f", file])
        .ok()
        .stdout_text();
    assert!(out.contains("records, chain intact"), "{out}");
    assert!(out.contains("segments (oldest first): 4"), "{out}");
    assert!(out.contains("rotated.log.0000"), "{out}");
    assert!(out.contains("older segments were pruned"), "{out}");

    // A torn last line: the next append records the break; verify names the
    // place and exits with its own code.
    let len = std::fs::metadata(&path).unwrap().len();
    let torn = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    torn.set_len(len - 30).unwrap();
    drop(torn);
    log.append(padded(60)).unwrap();
    let run = keyward.run(&["audit", "verify", "-f", file]);
    assert_eq!(run.status, 3, "{}", run.stderr);
    let out = run.stdout_text();
    assert!(out.contains("chain intact"), "{out}");
    assert!(out.contains("recorded break at line"), "{out}");
    assert!(out.contains("(byte "), "{out}");
    assert!(out.contains("torn"), "{out}");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("1 recorded break(s)"), "{}", run.stderr);

    // An edit in a rotated segment is tampering: exit 1, where it is.
    let oldest = out
        .lines()
        .map(str::trim)
        .find(|line| line.contains("rotated.log.0"))
        .unwrap()
        .to_owned();
    let text = std::fs::read_to_string(&oldest).unwrap();
    std::fs::write(&oldest, text.replacen("cli:test", "cli:evil", 1)).unwrap();
    let error = keyward.run(&["audit", "verify", "-f", file]).user_error();
    assert!(error.contains("broken at line 1 of"), "{error}");
    assert!(error.contains("edited"), "{error}");
}

#[test]
fn a_cut_tail_and_a_recomputed_chain_fail_against_checkpoints() {
    use keyward_core::audit::AuditLog;
    let keyward = Keyward::new();
    let path = keyward.path("webhook-audit.log");
    let file = path.to_str().unwrap();
    let log = AuditLog::new(&path);
    for i in 0..4 {
        log.append(padded(i)).unwrap();
    }
    // The collector's copy of the component's stdout, other lines mixed in.
    let mirrored = std::fs::read_to_string(&path).unwrap();
    let collected = keyward.write(
        "collected.log",
        format!("webhook listening on :8443\n{mirrored}").as_bytes(),
    );
    let checkpoints = collected.to_str().unwrap();
    let ok = keyward
        .run(&["audit", "verify", "-f", file, "--checkpoints", checkpoints])
        .ok()
        .stdout_text();
    assert!(ok.contains("checkpoints kept outside the log: 4"), "{ok}");

    // The newest record cut off: the chain alone still verifies.
    let kept: Vec<&str> = mirrored.lines().take(3).collect();
    std::fs::write(&path, format!("{}\n", kept.join("\n"))).unwrap();
    keyward.run(&["audit", "verify", "-f", file]).ok();
    let error = keyward
        .run(&["audit", "verify", "-f", file, "--checkpoints", checkpoints])
        .user_error();
    assert!(error.contains("records 3 to 3 were cut off"), "{error}");

    // A file with no checkpoint in it says so.
    let empty = keyward.write("empty.log", b"nothing here\n");
    let error = keyward
        .run(&[
            "audit",
            "verify",
            "-f",
            file,
            "--checkpoints",
            empty.to_str().unwrap(),
        ])
        .user_error();
    assert!(error.contains("holds no checkpoint"), "{error}");
}
