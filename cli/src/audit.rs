//! The local keyring's audit log (`<keyring>/audit.log`): every key operation
//! and unseal made through this CLI, hash-chained.

use crate::args::AuditArgs;
use crate::keyring;
use anyhow::{Context, Result};
use keyward_core::audit::{self, AuditLog, Event};
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

pub fn run(args: AuditArgs) -> Result<()> {
    let path = match args.file {
        Some(path) => path,
        None => keyring::keyring_dir(args.keyring.keyring.as_deref())?.join(FILE),
    };
    let summary = audit::verify(&path)?;
    println!(
        "{}: {} records, chain intact, head {}",
        path.display(),
        summary.records,
        summary.head
    );
    Ok(())
}
