//! Hash-chained audit log: one JSON record per line, each carrying the
//! SHA-256 of the one before, so removing, reordering or editing any record
//! is detected by [`verify`]. Records name keys, versions and secrets, never
//! values.

use crate::crypto::sha256;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The hash the first record chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Who acted: a user, a ServiceAccount, a pod.
    pub actor: String,
    /// What was done: `key.create`, `key.rotate`, `secret.unseal`, ...
    pub action: String,
    /// What it was done to: a key reference or `namespace/secret`.
    pub subject: String,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    seq: u64,
    time: u64,
    prev: String,
    #[serde(flatten)]
    event: Event,
}

#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    body: Body,
    hash: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_of(body: &Body) -> String {
    hex(&sha256(
        &serde_json::to_vec(body).expect("audit record serialises"),
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("audit log is broken at line {line}: {reason}")]
    Broken { line: usize, reason: String },
}

/// Appends to a log file, under an exclusive lock so that several processes
/// can share one chain.
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(path: &Path) -> Self {
        AuditLog {
            path: path.to_owned(),
        }
    }

    pub fn append(&self, event: Event) -> Result<(), AuditError> {
        let io = |error| AuditError::Io {
            path: self.path.clone(),
            error,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        let (seq, prev) = last_link(&file, &self.path)?;
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = Body {
            seq,
            time,
            prev,
            event,
        };
        let hash = hash_of(&body);
        let mut line = serde_json::to_vec(&Record { body, hash }).expect("audit record serialises");
        line.push(b'\n');
        file.write_all(&line).map_err(io)?;
        file.sync_data().map_err(io)
    }
}

/// The next sequence number and the hash to chain to, checking the chain.
fn last_link(file: &File, path: &Path) -> Result<(u64, String), AuditError> {
    let summary = verify_reader(BufReader::new(file), path)?;
    Ok((summary.records, summary.head))
}

#[derive(Debug)]
pub struct Summary {
    pub records: u64,
    /// Hash of the last record ([`GENESIS`] for an empty log).
    pub head: String,
}

/// Checks every link of the chain in `path`.
pub fn verify(path: &Path) -> Result<Summary, AuditError> {
    let file = File::open(path).map_err(|error| AuditError::Io {
        path: path.to_owned(),
        error,
    })?;
    verify_reader(BufReader::new(file), path)
}

fn verify_reader(reader: impl BufRead, path: &Path) -> Result<Summary, AuditError> {
    let mut head = GENESIS.to_owned();
    let mut records = 0u64;
    for (index, line) in reader.lines().enumerate() {
        let line_no = index + 1;
        let broken = |reason: String| AuditError::Broken {
            line: line_no,
            reason,
        };
        let line = line.map_err(|error| AuditError::Io {
            path: path.to_owned(),
            error,
        })?;
        let record: Record = serde_json::from_str(&line)
            .map_err(|e| broken(format!("not an audit record ({e})")))?;
        if record.body.seq != records {
            return Err(broken(format!(
                "sequence {} where {records} was expected (a record is missing or reordered)",
                record.body.seq
            )));
        }
        if record.body.prev != head {
            return Err(broken("does not chain to the previous record".into()));
        }
        if hash_of(&record.body) != record.hash {
            return Err(broken(
                "its content does not match its hash (edited)".into(),
            ));
        }
        head = record.hash;
        records += 1;
    }
    Ok(Summary { records, head })
}

#[cfg(test)]
mod tests {
    use super::*;

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

        std::fs::write(&path, format!("{}\n", lines[1])).unwrap();
        assert!(verify(&path).is_err());
    }

    #[test]
    fn appending_to_a_broken_chain_is_refused() {
        let (_dir, path) = log_with_three();
        let edited = std::fs::read_to_string(&path)
            .unwrap()
            .replace("key.rotate", "key.rotatE");
        std::fs::write(&path, edited).unwrap();
        assert!(AuditLog::new(&path).append(event("x")).is_err());
    }
}
