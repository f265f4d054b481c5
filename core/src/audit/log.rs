//! Appending: the chain head lives in memory, so an append is one write
//! (and one fsync) whatever the log's size. An exclusive lock on the active
//! file lets several processes share one chain: under it, a file whose
//! length is not what this process last saw (another process appended, or
//! the file was cut) has only its tail read again.

use super::scan::{self, Tail};
use super::{
    AuditError, BREAK_ACTION, Body, Event, Head, Record, bound, hash_of, io_error, segments,
};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The actor of the records the log writes about itself.
pub const ACTOR: &str = "keyward-audit";

/// How a log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The active segment is rotated before a record would take it past
    /// this many bytes (at least twice [`super::MAX_RECORD_BYTES`]).
    pub max_bytes: u64,
    /// Rotated segments kept, oldest deleted first (at least 1); `None`
    /// keeps every one. Disk use is at most `(keep + 1) * max_bytes`.
    pub keep_segments: Option<usize>,
    /// `fdatasync` after every record, so an acknowledged record survives
    /// a crash.
    pub fsync: bool,
    /// Also print every record, as written, on stdout (one JSON line, for
    /// log collectors).
    pub mirror_stdout: bool,
}

/// Segment size of [`Options::default`].
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

impl Default for Options {
    fn default() -> Self {
        Options {
            max_bytes: DEFAULT_MAX_BYTES,
            keep_segments: None,
            fsync: true,
            mirror_stdout: false,
        }
    }
}

/// Appends to a log, under an exclusive lock so that several processes
/// can share one chain.
pub struct AuditLog {
    path: PathBuf,
    options: Options,
    active: Mutex<Option<Active>>,
}

/// The open active segment and what this process knows of it.
struct Active {
    file: File,
    /// The length after this process's last write (`None`: not read yet).
    len: Option<u64>,
    head: Option<Head>,
}

enum Step {
    Written,
    /// The active file was renamed away; start again on the new one.
    Rotated,
}

/// Rotations or re-opens one append may go through before giving up.
const ATTEMPTS: usize = 8;

impl AuditLog {
    /// A log at `path` with [`Options::default`].
    pub fn new(path: &Path) -> Self {
        Self::with_options(path, Options::default())
    }

    pub fn with_options(path: &Path, mut options: Options) -> Self {
        options.max_bytes = options.max_bytes.max(2 * super::MAX_RECORD_BYTES as u64);
        options.keep_segments = options.keep_segments.map(|keep| keep.max(1));
        AuditLog {
            path: path.to_owned(),
            options,
            active: Mutex::new(None),
        }
    }

    /// The active segment.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Appends `event`, cut to the bounds of [`bound`]. On error nothing is
    /// acknowledged and the next append reads the file again.
    pub fn append(&self, event: Event) -> Result<(), AuditError> {
        let event = bound::event(event);
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..ATTEMPTS {
            let mut current = self.open_locked(active.take())?;
            let step = self.step(&mut current, &event);
            let _ = current.file.unlock();
            match step? {
                Step::Written => {
                    *active = Some(current);
                    return Ok(());
                }
                Step::Rotated => continue,
            }
        }
        Err(io_error(&self.path)(std::io::Error::other(
            "the active audit segment kept being replaced while appending",
        )))
    }

    /// The active file, locked, and still the one at `path` (another
    /// process may have rotated it while this one waited for the lock).
    fn open_locked(&self, mut cached: Option<Active>) -> Result<Active, AuditError> {
        let io = io_error(&self.path);
        for _ in 0..ATTEMPTS {
            let active = match cached.take() {
                Some(active) => active,
                None => Active {
                    file: OpenOptions::new()
                        .create(true)
                        .read(true)
                        .append(true)
                        .open(&self.path)
                        .map_err(io_error(&self.path))?,
                    len: None,
                    head: None,
                },
            };
            active.file.lock().map_err(io_error(&self.path))?;
            if is_at(&active.file, &self.path).map_err(io_error(&self.path))? {
                return Ok(active);
            }
            let _ = active.file.unlock();
        }
        Err(io(std::io::Error::other(
            "the active audit segment kept being replaced while opening it",
        )))
    }

    /// Under the lock: recover the head if the file changed, rotate if
    /// full or broken, else write the record.
    fn step(&self, active: &mut Active, event: &Event) -> Result<Step, AuditError> {
        let io = io_error(&self.path);
        let len = active.file.metadata().map_err(io_error(&self.path))?.len();
        if active.len != Some(len) || active.head.is_none() {
            let known = active.head.take();
            match scan::tail(&mut active.file, len).map_err(io_error(&self.path))? {
                Tail::Good(head) => {
                    active.len = Some(len);
                    match known {
                        // Same file, fewer records than this process wrote:
                        // it was cut at a line boundary. Say so in the chain.
                        Some(known) if head.next_seq < known.next_seq => {
                            let gone = Event {
                                actor: ACTOR.into(),
                                action: BREAK_ACTION.into(),
                                subject: file_name(&self.path),
                                outcome: "failed".into(),
                                detail: [
                                    ("file".to_owned(), file_name(&self.path)),
                                    ("offset".to_owned(), len.to_string()),
                                    (
                                        "reason".to_owned(),
                                        format!(
                                            "records {} to {} are gone: the file was cut to {len} bytes",
                                            head.next_seq,
                                            known.next_seq - 1
                                        ),
                                    ),
                                ]
                                .into(),
                            };
                            active.head = Some(self.write(active, &head, gone)?);
                        }
                        _ => active.head = Some(head),
                    }
                }
                Tail::Empty => {
                    active.len = Some(0);
                    let head = self.head_from_rotated(active)?;
                    active.head = Some(head);
                }
                Tail::Bad => {
                    // Keep the broken bytes as evidence; the next segment
                    // starts with a record of where they are.
                    segments::rotate(&self.path, self.options.keep_segments)?;
                    return Ok(Step::Rotated);
                }
            }
        }
        let head = active
            .head
            .clone()
            .ok_or_else(|| io(std::io::Error::other("audit chain head unknown")))?;
        let len = active.len.unwrap_or(0);
        if len > 0 && len + super::MAX_RECORD_BYTES as u64 > self.options.max_bytes {
            segments::rotate(&self.path, self.options.keep_segments)?;
            return Ok(Step::Rotated);
        }
        active.head = Some(self.write(active, &head, event.clone())?);
        Ok(Step::Written)
    }

    /// The head for an empty active file: where the newest rotated segment
    /// ends. If that one ends broken, this writes the `audit.break` record
    /// that starts the new segment.
    fn head_from_rotated(&self, active: &mut Active) -> Result<Head, AuditError> {
        let rotated = segments::rotated(&self.path)?;
        let Some(newest) = rotated.last() else {
            return Ok(Head::genesis());
        };
        let path = &newest.path;
        let mut file = File::open(path).map_err(io_error(path))?;
        let len = file.metadata().map_err(io_error(path))?.len();
        match scan::tail(&mut file, len).map_err(io_error(path))? {
            Tail::Good(head) => Ok(head),
            Tail::Empty => {
                Ok(ends_of(&rotated[..rotated.len() - 1])?.unwrap_or_else(Head::genesis))
            }
            Tail::Bad => {
                let scan = scan::scan(file).map_err(io_error(path))?;
                let base = match scan.last_good {
                    Some(head) => head,
                    None => ends_of(&rotated[..rotated.len() - 1])?.unwrap_or_else(Head::genesis),
                };
                let (line, offset, reason) =
                    scan.first_bad
                        .unwrap_or((scan.lines + 1, len, "unreadable".into()));
                let detail = [
                    ("file".to_owned(), file_name(path)),
                    ("line".to_owned(), line.to_string()),
                    ("offset".to_owned(), offset.to_string()),
                    ("reason".to_owned(), reason),
                    (
                        "chains_from_seq".to_owned(),
                        base.next_seq
                            .checked_sub(1)
                            .map_or("none".into(), |s| s.to_string()),
                    ),
                ]
                .into();
                let event = Event {
                    actor: ACTOR.into(),
                    action: BREAK_ACTION.into(),
                    subject: file_name(path),
                    outcome: "failed".into(),
                    detail,
                };
                self.write(active, &base, event)
            }
        }
    }

    /// Writes one record after `head`; returns the new head.
    fn write(&self, active: &mut Active, head: &Head, event: Event) -> Result<Head, AuditError> {
        let io = io_error(&self.path);
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = Body {
            seq: head.next_seq,
            time,
            prev: head.prev.clone(),
            event,
        };
        let hash = hash_of(&body);
        let record = Record { body, hash };
        let mut line = serde_json::to_vec(&record).expect("audit record serialises");
        line.push(b'\n');
        // Whatever happens next, the length this process knows is stale
        // until the write is complete.
        let before = active.len.take();
        active.file.write_all(&line).map_err(io_error(&self.path))?;
        if self.options.fsync {
            active.file.sync_data().map_err(io)?;
        }
        active.len = before.map(|len| len + line.len() as u64);
        if self.options.mirror_stdout {
            // The file is the record of authority; a closed stdout must not
            // refuse the request.
            let _ = std::io::stdout().lock().write_all(&line);
        }
        Ok(Head::after(&record))
    }
}

/// Where the last segment among `segments` with a valid record ends.
fn ends_of(segments: &[segments::Rotated]) -> Result<Option<Head>, AuditError> {
    for segment in segments.iter().rev() {
        let file = File::open(&segment.path).map_err(io_error(&segment.path))?;
        if let Some(head) = scan::scan(file).map_err(io_error(&segment.path))?.last_good {
            return Ok(Some(head));
        }
    }
    Ok(None)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether `file` is the file now at `path`.
#[cfg(unix)]
fn is_at(file: &File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(at) => Ok(open.dev() == at.dev() && open.ino() == at.ino()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(not(unix))]
fn is_at(_file: &File, path: &Path) -> std::io::Result<bool> {
    Ok(path.exists())
}
