//! Hash-chained audit log: one JSON record per line, each carrying the
//! SHA-256 of the one before, so removing, reordering or editing any record
//! is detected by [`verify`]. Records name keys, versions and secrets, never
//! values.
//!
//! The log is a series of segments: the active file (`audit.log`) and,
//! once it passes [`Options::max_bytes`], numbered rotated segments
//! (`audit.log.000001`, `audit.log.000002`, ... oldest first). The first
//! record of each segment chains to the last of the one before, so the chain
//! runs across files. Appending costs the same at any log size: the chain
//! head is kept in memory and recovered from the tail of a segment only.
//!
//! Each record is at most [`MAX_RECORD_BYTES`] (see [`bound`]). A segment
//! whose last line is not a valid record (a torn write, a truncation,
//! garbage) is closed as-is, kept as evidence, and the next segment starts
//! with an `audit.break` record naming the file, line and byte offset and
//! chaining to the last good record; [`verify`] accepts such a recorded
//! break and reports it.

pub mod bound;
pub mod checkpoints;
mod log;
mod scan;
mod segments;
mod verify;

pub use bound::{MAX_DETAIL_ENTRIES, MAX_FIELD_BYTES, MAX_RECORD_BYTES};
pub use checkpoints::Checkpoint;
pub use log::{AuditLog, Options};
pub use verify::{Problem, Summary, verify, verify_with_checkpoints};

use crate::crypto::sha256;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The hash the first record chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The action of the record that starts a segment after a broken one.
pub const BREAK_ACTION: &str = "audit.break";

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

/// Where the chain continues: the next sequence number and the hash the
/// next record carries as `prev`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    next_seq: u64,
    prev: String,
}

impl Head {
    fn genesis() -> Self {
        Head {
            next_seq: 0,
            prev: GENESIS.to_owned(),
        }
    }

    fn after(record: &Record) -> Self {
        Head {
            next_seq: record.body.seq + 1,
            prev: record.hash.clone(),
        }
    }
}

/// Where a segment stops holding valid records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The segment file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the start of that line.
    pub offset: u64,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {} of {} (byte {})",
            self.line,
            self.file.display(),
            self.offset
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The chain has problems no `audit.break` record accounts for: an
    /// edit, a deletion, a reordering, or a broken tail not yet recorded.
    #[error("{}", broken_message(.0))]
    Broken(Box<Summary>),
}

fn broken_message(summary: &Summary) -> String {
    let Some(first) = summary.problems.first() else {
        return "audit log is broken".into();
    };
    let mut message = format!("audit log is broken at {}: {}", first.at, first.reason);
    if summary.problems.len() > 1 {
        message.push_str(&format!(
            " (and {} more problems)",
            summary.problems.len() - 1
        ));
    }
    message
}

fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |error| AuditError::Io {
        path: path.to_owned(),
        error,
    }
}

#[cfg(test)]
mod tests;
