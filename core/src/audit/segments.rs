//! Segment files: the active file `<name>` and the rotated `<name>.NNNNNN`,
//! numbered upwards (oldest first) so a rotation is one rename and never
//! renumbers older files.

use super::{AuditError, io_error};
use std::path::{Path, PathBuf};

/// A rotated segment's number and path.
pub(super) struct Rotated {
    pub number: u64,
    pub path: PathBuf,
}

/// The rotated segments of the log whose active file is `active`, oldest first.
pub(super) fn rotated(active: &Path) -> Result<Vec<Rotated>, AuditError> {
    let dir = directory(active);
    let Some(name) = active.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error(&dir)(error)),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(&dir))?;
        let file_name = entry.file_name();
        let Some(number) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push(Rotated {
            number,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.number);
    Ok(segments)
}

fn directory(active: &Path) -> PathBuf {
    match active.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Renames the active file to the next rotated segment and deletes the
/// oldest beyond `keep`. The caller holds the active file's lock.
pub(super) fn rotate(active: &Path, keep: Option<usize>) -> Result<PathBuf, AuditError> {
    let existing = rotated(active)?;
    let number = existing.last().map_or(1, |s| s.number + 1);
    let mut target = active.as_os_str().to_owned();
    target.push(format!(".{number:06}"));
    let target = PathBuf::from(target);
    std::fs::rename(active, &target).map_err(io_error(active))?;
    if let Some(keep) = keep {
        // `existing` plus the one just made. Best effort: another process
        // may be pruning the same files, and a file left over costs disk,
        // not integrity, so it must not refuse the append.
        let excess = (existing.len() + 1).saturating_sub(keep.max(1));
        for old in existing.iter().take(excess) {
            let _ = std::fs::remove_file(&old.path);
        }
    }
    Ok(target)
}
