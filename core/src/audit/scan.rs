//! Reading segments line by line: what counts as a valid record, the tail
//! check an append makes, and the forward scan of a broken segment.

use super::{Head, Record, hash_of};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

/// How much of a segment's end the tail check reads at first: the last
/// record and the newline before it. Longer lines (logs written before
/// records were bounded) widen it.
const TAIL_WINDOW: u64 = 2 * super::MAX_RECORD_BYTES as u64;

pub(super) const TORN: &str = "torn: the line ends without a newline (an interrupted write)";

/// One line of a segment: a record whose hash matches its content, or why not.
pub(super) fn parse(line: &[u8], terminated: bool) -> Result<Record, String> {
    if !terminated {
        return Err(TORN.into());
    }
    let record: Record =
        serde_json::from_slice(line).map_err(|e| format!("not an audit record ({e})"))?;
    if hash_of(&record.body) != record.hash {
        return Err("its content does not match its hash (edited)".into());
    }
    Ok(record)
}

/// Calls `each(line_no, offset, bytes, terminated)` for every line, the
/// newline stripped; a last line without one is passed as not terminated.
pub(super) fn lines(
    file: impl Read,
    mut each: impl FnMut(u64, u64, &[u8], bool),
) -> std::io::Result<()> {
    let mut reader = BufReader::new(file);
    let mut buffer = Vec::new();
    let (mut line_no, mut offset) = (0u64, 0u64);
    loop {
        buffer.clear();
        let read = reader.read_until(b'\n', &mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        line_no += 1;
        let terminated = buffer.last() == Some(&b'\n');
        let content = if terminated {
            &buffer[..buffer.len() - 1]
        } else {
            &buffer[..]
        };
        each(line_no, offset, content, terminated);
        offset += read as u64;
    }
}

/// What the end of a segment says about the chain.
pub(super) enum Tail {
    Empty,
    /// The last line is a valid record; the chain continues after it.
    Good(Head),
    /// The last line is torn or not a valid record.
    Bad,
}

/// Reads only the end of `file` (of length `len`).
pub(super) fn tail(file: &mut File, len: u64) -> std::io::Result<Tail> {
    if len == 0 {
        return Ok(Tail::Empty);
    }
    let mut window = TAIL_WINDOW.min(len);
    loop {
        let start = len - window;
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = vec![0; window as usize];
        file.read_exact(&mut bytes)?;
        let Some((&last, body)) = bytes.split_last() else {
            return Ok(Tail::Empty);
        };
        if last != b'\n' {
            return Ok(Tail::Bad);
        }
        match body.iter().rposition(|&b| b == b'\n') {
            Some(newline) => return Ok(judge(&body[newline + 1..])),
            None if start == 0 => return Ok(judge(body)),
            None => window = (window * 4).min(len),
        }
    }
}

fn judge(line: &[u8]) -> Tail {
    match parse(line, true) {
        Ok(record) => Tail::Good(Head::after(&record)),
        Err(_) => Tail::Bad,
    }
}

/// A broken segment read from the start: the last valid record, and the
/// first line after it that is not one.
pub(super) struct Scan {
    pub last_good: Option<Head>,
    pub first_bad: Option<(u64, u64, String)>,
    pub lines: u64,
}

/// Reads `file` from its start, wherever its cursor is.
pub(super) fn scan(mut file: File) -> std::io::Result<Scan> {
    file.seek(SeekFrom::Start(0))?;
    let mut scan = Scan {
        last_good: None,
        first_bad: None,
        lines: 0,
    };
    lines(file, |line_no, offset, bytes, terminated| {
        scan.lines = line_no;
        match parse(bytes, terminated) {
            Ok(record) => {
                scan.last_good = Some(Head::after(&record));
                scan.first_bad = None;
            }
            Err(reason) => {
                scan.first_bad.get_or_insert((line_no, offset, reason));
            }
        }
    })?;
    Ok(scan)
}
