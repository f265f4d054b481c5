//! Checkpoints: (sequence, hash) pairs of the chain kept outside the log,
//! so that cutting records off its end, or rewriting it with a freshly
//! computed chain, is detected. A hash chain on its own cannot see either:
//! whoever can write the file can also recompute every hash after an edit,
//! or drop the newest records and leave a shorter, valid chain.
//!
//! Every record the components write is also mirrored, as written, to
//! their stdout (`--audit-stdout`), so the cluster's log collector already
//! holds a checkpoint for every record. `keyward audit verify --checkpoints
//! FILE` takes those lines (or `{"seq": N, "hash": "..."}` lines noted
//! elsewhere, e.g. in a ticket) and fails when the log lacks one of them.

use serde::Deserialize;

/// One record of the chain as seen outside the log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
}

/// Reads checkpoints, one JSON object per line with at least `seq` and
/// `hash` (audit records as mirrored to stdout qualify). Lines that are not
/// JSON objects, or that lack those fields, are skipped, so a collector's
/// export with other log lines mixed in works.
pub fn parse(text: &str) -> Vec<Checkpoint> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            // A collector may prefix a timestamp or stream name.
            let json = &line[line.find('{')?..];
            serde_json::from_str::<Checkpoint>(json).ok()
        })
        .filter(|c| c.hash.len() == 64 && c.hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_records_and_bare_pairs_are_checkpoints_other_lines_are_not() {
        let hash = "ab".repeat(32);
        let text = format!(
            "{{\"seq\":3,\"time\":1,\"prev\":\"00\",\"actor\":\"a\",\"action\":\"x\",\"subject\":\"s\",\"outcome\":\"ok\",\"hash\":\"{hash}\"}}\n\
             2026-12-06T10:00:00Z stdout F {{\"seq\": 7, \"hash\": \"{hash}\"}}\n\
             starting webhook on :8443\n\
             {{\"seq\": 9, \"hash\": \"not-a-hash\"}}\n"
        );
        let read = parse(&text);
        assert_eq!(
            read,
            [
                Checkpoint {
                    seq: 3,
                    hash: hash.clone()
                },
                Checkpoint { seq: 7, hash },
            ]
        );
    }
}
