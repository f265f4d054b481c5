//! The local keyring's audit log (`<keyring>/audit.log`): every key operation
//! and unseal made through this CLI, hash-chained.

use crate::args::AuditArgs;
use crate::keyring;
use anyhow::{Context, Result};
use keyward_core::audit::{self, AuditError, AuditLog, Event};
use std::collections::BTreeMap;
use std::path::Path;

pub const FILE: &str = "audit.log";

fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Appends one record next to the keyring in `keyring_dir`.
pub fn record(
    keyring_dir: &Path,
    action: &str,
    subject: &str,
    outcome: &str,
    detail: BTreeMap<String, String>,
) -> Result<()> {
    let event = Event {
        actor: actor(),
        action: action.into(),
        subject: subject.into(),
        outcome: outcome.into(),
        detail,
    };
    AuditLog::new(&keyring_dir.join(FILE))
        .append(event)
        .context("cannot write the audit log (run `keyward audit verify`)")
}

/// The chain verifies, but `audit.break` records say some bytes in it
/// are not records (a torn write, a cut file): records may have been lost.
/// Its own exit code ([`BREAK_EXIT_CODE`]) tells scripts this apart from
/// tampering.
#[derive(Debug)]
pub struct RecordedBreaks {
    count: usize,
    first: String,
}

impl std::fmt::Display for RecordedBreaks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} recorded break(s) in the audit chain, first at {}: records there were lost or damaged (the records around them verify)",
            self.count, self.first
        )
    }
}

impl std::error::Error for RecordedBreaks {}

/// Exit code of `keyward audit verify` for a chain with recorded breaks.
pub const BREAK_EXIT_CODE: u8 = 3;

/// Checks the chain across every segment. The report goes to stdout (the
/// segments, where the kept chain starts, every break and problem with its
/// file, line and byte offset); a broken chain or a recorded break also
/// ends in one error line.
pub fn run(args: AuditArgs) -> Result<()> {
    let path = match args.file {
        Some(path) => path,
        None => keyring::keyring_dir(args.keyring.keyring.as_deref())?.join(FILE),
    };
    let checkpoints = match &args.checkpoints {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read checkpoints from {}", file.display()))?;
            let read = audit::checkpoints::parse(&text);
            if read.is_empty() {
                anyhow::bail!(
                    "{} holds no checkpoint (JSON lines with `seq` and a 64-hex-digit `hash`); export the component's audit lines from your log collector",
                    file.display()
                );
            }
            println!("checkpoints kept outside the log: {}", read.len());
            read
        }
        None => Vec::new(),
    };
    let (summary, broken) = match audit::verify_with_checkpoints(&path, &checkpoints) {
        Ok(summary) => (summary, false),
        Err(AuditError::Broken(summary)) => (*summary, true),
        Err(error) => return Err(error.into()),
    };
    let state = if broken {
        "chain BROKEN"
    } else {
        "chain intact"
    };
    println!(
        "{}: {} records, {state}, head {}",
        path.display(),
        summary.records,
        summary.head
    );
    println!("segments (oldest first): {}", summary.segments.len());
    for segment in &summary.segments {
        println!("  {}", segment.display());
    }
    if let Some(first) = summary.first_seq.filter(|&seq| seq > 0) {
        println!("starts at sequence {first}: older segments were pruned");
    }
    for gap in &summary.breaks {
        println!("recorded break at {}: {}", gap.at, gap.reason);
    }
    for problem in &summary.problems {
        println!("broken at {}: {}", problem.at, problem.reason);
    }
    if broken {
        return Err(AuditError::Broken(Box::new(summary)).into());
    }
    if let Some(first) = summary.breaks.first() {
        return Err(RecordedBreaks {
            count: summary.breaks.len(),
            first: first.at.to_string(),
        }
        .into());
    }
    Ok(())
}
