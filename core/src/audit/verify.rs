//! Checking a whole log: every segment, oldest first, every link.

use super::checkpoints::Checkpoint;
use super::log::ACTOR;
use super::scan::{self, parse};
use super::{AuditError, BREAK_ACTION, GENESIS, Head, Location, Record, io_error, segments};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A place where the chain does not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Location,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The files read, oldest first (rotated segments, then the active one).
    pub segments: Vec<PathBuf>,
    /// Valid records read.
    pub records: u64,
    /// Sequence number of the first record kept: above 0 when the oldest
    /// segments were pruned.
    pub first_seq: Option<u64>,
    /// Hash of the last record ([`GENESIS`] for an empty log).
    pub head: String,
    /// Broken stretches an `audit.break` record accounts for: the chain
    /// continues across them, but the bytes there are not records.
    pub breaks: Vec<Problem>,
    /// Everything else: edits, deletions, reordering, breaks not recorded.
    pub problems: Vec<Problem>,
}

/// Checks every link of the chain whose active segment is `path`, across
/// its rotated segments. `Ok` when the only problems are recorded breaks
/// (listed in [`Summary::breaks`]); [`AuditError::Broken`] with every
/// problem otherwise.
pub fn verify(path: &Path) -> Result<Summary, AuditError> {
    verify_with_checkpoints(path, &[])
}

/// [`verify`], and every checkpoint kept outside the log must be in it:
/// the record of that sequence number with that hash. One whose record has
/// another hash means the log was rewritten; one past the log's last
/// record means records were cut off its end. Checkpoints older than the
/// oldest kept segment are not judged (pruned).
pub fn verify_with_checkpoints(
    path: &Path,
    checkpoints: &[Checkpoint],
) -> Result<Summary, AuditError> {
    let rotated = segments::rotated(path)?;
    // The first segment ever written must start at the genesis hash; a
    // later one may be the oldest kept after pruning.
    let may_start_mid_chain = rotated.first().is_some_and(|s| s.number > 1);
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|s| s.path).collect();
    if files.is_empty() || path.exists() {
        files.push(path.to_owned());
    }
    let mut walk = Walk {
        summary: Summary {
            head: GENESIS.to_owned(),
            ..Summary::default()
        },
        expected: None,
        pending: None,
        may_start_mid_chain,
        wanted: checkpoints
            .iter()
            .map(|c| (c.seq, c.hash.to_ascii_lowercase()))
            .collect(),
        end: None,
    };
    for file in files {
        let is_active = file.as_path() == path;
        let opened = match File::open(&file) {
            Ok(opened) => opened,
            // Pruned by a writer since the listing: as if before it.
            Err(error)
                if error.kind() == std::io::ErrorKind::NotFound
                    && !is_active
                    && walk.expected.is_none() =>
            {
                walk.may_start_mid_chain = true;
                continue;
            }
            Err(error) => return Err(io_error(&file)(error)),
        };
        let reader: Box<dyn Read> = if is_active {
            let len = settled_len(&opened).map_err(io_error(&file))?;
            Box::new(opened.take(len))
        } else {
            Box::new(opened)
        };
        scan::lines(reader, |line, offset, bytes, terminated| {
            let at = Location {
                file: file.clone(),
                line,
                offset,
            };
            walk.line(at, parse(bytes, terminated));
        })
        .map_err(io_error(&file))?;
        walk.summary.segments.push(file);
    }
    walk.unmatched_checkpoints(path);
    if let Some(mut pending) = walk.pending.take() {
        pending
            .reason
            .push_str("; no audit.break record accounts for it yet (the next append writes one)");
        walk.summary.problems.push(pending);
    }
    if walk.summary.problems.is_empty() {
        Ok(walk.summary)
    } else {
        Err(AuditError::Broken(Box::new(walk.summary)))
    }
}

/// The active file's length between two appends: a writer holds the
/// exclusive lock while it writes, so a line being written is not read as
/// torn. Rotated segments are never written again.
fn settled_len(file: &File) -> std::io::Result<u64> {
    file.lock_shared()?;
    let len = file.metadata().map(|m| m.len());
    let _ = file.unlock();
    len
}

struct Walk {
    summary: Summary,
    /// Where the next record must continue (`None` before the first).
    expected: Option<Head>,
    /// The first bad line since the last valid record.
    pending: Option<Problem>,
    may_start_mid_chain: bool,
    /// Checkpoints not met yet: sequence -> hash.
    wanted: BTreeMap<u64, String>,
    /// Where the last valid record is.
    end: Option<Location>,
}

impl Walk {
    /// Checkpoints past the end of the log (each record read dropped the
    /// ones up to it): its newest records were cut.
    fn unmatched_checkpoints(&mut self, path: &Path) {
        let last = self.expected.as_ref().map(|h| h.next_seq);
        let Some((&newest, _)) = self.wanted.last_key_value() else {
            return;
        };
        let at = self.end.clone().unwrap_or(Location {
            file: path.to_owned(),
            line: 1,
            offset: 0,
        });
        let reason = match last {
            Some(next) => format!(
                "the log ends at sequence {} but a checkpoint kept outside it reaches sequence {newest}: records {next} to {newest} were cut off",
                next - 1
            ),
            None => format!(
                "the log holds no record but a checkpoint kept outside it reaches sequence {newest}: it was emptied"
            ),
        };
        self.summary.problems.push(Problem { at, reason });
    }

    fn line(&mut self, at: Location, parsed: Result<Record, String>) {
        let record = match parsed {
            Ok(record) => record,
            Err(reason) => {
                self.pending.get_or_insert(Problem { at, reason });
                return;
            }
        };
        let event = &record.body.event;
        let is_break = event.action == BREAK_ACTION && event.actor == ACTOR;
        let mut check_links = true;
        match self.pending.take() {
            Some(bad) if is_break && names(&record, &bad.at) => self.summary.breaks.push(bad),
            Some(bad) => {
                // Reported once; continue from this record.
                self.summary.problems.push(bad);
                check_links = false;
            }
            // A break with no bad line before it: the writer saw records
            // vanish (a file cut at a line boundary).
            None if is_break => self.summary.breaks.push(Problem {
                at: Location {
                    file: at
                        .file
                        .with_file_name(detail(&record, "file").unwrap_or_default()),
                    line: detail(&record, "line")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(at.line),
                    offset: detail(&record, "offset")
                        .and_then(|o| o.parse().ok())
                        .unwrap_or(at.offset),
                },
                reason: detail(&record, "reason").unwrap_or_default(),
            }),
            None => {}
        }
        let problem = match &self.expected {
            _ if !check_links => None,
            None => {
                self.summary.first_seq = Some(record.body.seq);
                if record.body.seq == 0 && record.body.prev != GENESIS {
                    Some("the first record does not chain to the genesis hash".to_owned())
                } else if record.body.seq > 0 && !self.may_start_mid_chain {
                    Some(format!(
                        "the log starts at sequence {} but no older segment was pruned (records 0 to {} are missing)",
                        record.body.seq,
                        record.body.seq - 1
                    ))
                } else {
                    None
                }
            }
            Some(expected) if record.body.seq != expected.next_seq => Some(format!(
                "sequence {} where {} was expected (a record is missing or reordered)",
                record.body.seq, expected.next_seq
            )),
            Some(expected) if record.body.prev != expected.prev => {
                Some("does not chain to the previous record".to_owned())
            }
            Some(_) => None,
        };
        if let Some(hash) = self.wanted.remove(&record.body.seq)
            && hash != record.hash
        {
            self.summary.problems.push(Problem {
                at: at.clone(),
                reason: format!(
                    "record {} has hash {} but a checkpoint kept outside the log says {hash}: the log was rewritten",
                    record.body.seq, record.hash
                ),
            });
        }
        // Records newer than a checkpoint mean it is matched or judged above.
        self.wanted.retain(|seq, _| *seq > record.body.seq);
        self.end = Some(at.clone());
        if let Some(reason) = problem {
            self.summary.problems.push(Problem { at, reason });
        }
        if self.summary.first_seq.is_none() {
            self.summary.first_seq = Some(record.body.seq);
        }
        self.summary.records += 1;
        self.summary.head = record.hash.clone();
        self.expected = Some(Head::after(&record));
    }
}

fn detail(record: &Record, key: &str) -> Option<String> {
    record.body.event.detail.get(key).cloned()
}

/// Whether the break record names the place `at`.
fn names(record: &Record, at: &Location) -> bool {
    let file = at
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    file == detail(record, "file")
        && detail(record, "line") == Some(at.line.to_string())
        && detail(record, "offset") == Some(at.offset.to_string())
}
