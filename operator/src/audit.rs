//! Every key operation as a hash-chained record (keyward_core::audit), written
//! off the async threads. Records name keys and versions, never material.

use crate::error::{Error, Result};
use keyward_core::audit::{AuditLog, Event, Options};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub const ACTOR: &str = "keyward-operator";

#[derive(Clone)]
pub struct Audit {
    log: Arc<AuditLog>,
    path: PathBuf,
}

impl Audit {
    pub fn new(path: PathBuf) -> Self {
        Self::with_options(path, Options::default())
    }

    pub fn with_options(path: PathBuf, options: Options) -> Self {
        Audit {
            log: Arc::new(AuditLog::with_options(&path, options)),
            path,
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends `action` on `subject` (`namespace/name`) with its details.
    pub async fn record(
        &self,
        action: &str,
        subject: &str,
        outcome: &str,
        detail: BTreeMap<String, String>,
    ) -> Result<()> {
        let log = Arc::clone(&self.log);
        let event = Event {
            actor: ACTOR.into(),
            action: action.into(),
            subject: subject.into(),
            outcome: outcome.into(),
            detail,
        };
        tokio::task::spawn_blocking(move || log.append(event))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(Error::from)
    }
}
