use super::*;
use std::path::PathBuf;

fn event(action: &str) -> Event {
    Event {
        actor: "alice".into(),
        action: action.into(),
        subject: "shop/payments".into(),
        outcome: "ok".into(),
        detail: [("version".to_owned(), "2".to_owned())].into(),
    }
}

fn log_with_three() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::new(&path);
    for action in ["key.create", "key.rotate", "secret.unseal"] {
        log.append(event(action)).unwrap();
    }
    (dir, path)
}

#[test]
fn an_intact_chain_verifies() {
    let (_dir, path) = log_with_three();
    let summary = verify(&path).unwrap();
    assert_eq!(summary.records, 3);
    assert_eq!(summary.first_seq, Some(0));
    assert_ne!(summary.head, GENESIS);
}

#[test]
fn edits_deletions_and_reordering_are_detected() {
    let (_dir, path) = log_with_three();
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();

    let edited = original.replace("alice", "mallory");
    std::fs::write(&path, edited).unwrap();
    assert!(verify(&path).unwrap_err().to_string().contains("line 1"));

    std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
    assert!(
        verify(&path)
            .unwrap_err()
            .to_string()
            .contains("missing or reordered")
    );

    std::fs::write(&path, format!("{}\n{}\n", lines[1], lines[0])).unwrap();
    assert!(verify(&path).is_err());

    std::fs::write(&path, format!("{}\n", lines[1])).unwrap();
    assert!(verify(&path).is_err());
}
