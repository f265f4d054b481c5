//! Caps on what one record may hold, so a caller-chosen string (a request
//! body may be megabytes) costs the log a small constant. Every cut is
//! visible: the kept prefix ends with `...[N bytes cut]`.
//!
//! Bounds: each of actor, action, subject, outcome and every detail value
//! is at most [`MAX_FIELD_BYTES`] bytes before the marker, detail keys at
//! most [`MAX_KEY_BYTES`], at most [`MAX_DETAIL_ENTRIES`] detail entries,
//! and the whole line (JSON, seq, time, hashes, newline) at most
//! [`MAX_RECORD_BYTES`]; when escaping would pass that, the field caps are
//! halved until it fits.

use super::Event;
use std::collections::BTreeMap;

/// Longest kept prefix of a string field (bytes, before the cut marker).
pub const MAX_FIELD_BYTES: usize = 512;
/// Longest kept prefix of a detail key.
pub const MAX_KEY_BYTES: usize = 64;
/// Detail entries kept; the rest are replaced by one `...` entry.
pub const MAX_DETAIL_ENTRIES: usize = 16;
/// Longest line a record takes in a segment, newline included.
pub const MAX_RECORD_BYTES: usize = 4096;

/// What seq, time, prev, hash and the JSON around them add to an event:
/// `{"seq":<=20 digits,"time":<=20 digits,"prev":"<64>",` and
/// `,"hash":"<64>"}\n` come to 208 bytes; the rest is headroom.
const RECORD_OVERHEAD: usize = 256;

/// `event` with every field within the bounds above.
pub fn event(event: Event) -> Event {
    let mut limit = MAX_FIELD_BYTES;
    loop {
        let capped = capped(&event, limit);
        let fits = serde_json::to_vec(&capped)
            .is_ok_and(|json| json.len() + RECORD_OVERHEAD <= MAX_RECORD_BYTES);
        if fits || limit == 0 {
            return capped;
        }
        limit /= 2;
    }
}

fn capped(event: &Event, limit: usize) -> Event {
    let mut detail = BTreeMap::new();
    for (key, value) in event.detail.iter().take(MAX_DETAIL_ENTRIES - 1) {
        detail.insert(cut(key, limit.min(MAX_KEY_BYTES)), cut(value, limit));
    }
    if event.detail.len() >= MAX_DETAIL_ENTRIES {
        let rest = event.detail.len() - (MAX_DETAIL_ENTRIES - 1);
        if rest == 1 {
            let (key, value) = event.detail.iter().next_back().expect("one left");
            detail.insert(cut(key, limit.min(MAX_KEY_BYTES)), cut(value, limit));
        } else {
            detail.insert("...".into(), format!("{rest} more entries cut"));
        }
    }
    Event {
        actor: cut(&event.actor, limit),
        action: cut(&event.action, limit),
        subject: cut(&event.subject, limit),
        outcome: cut(&event.outcome, limit),
        detail,
    }
}

/// `text` itself when it fits in `max` bytes, else its longest prefix on a
/// character boundary followed by `...[N bytes cut]`.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...[{} bytes cut]", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn huge(text: String) -> Event {
        Event {
            actor: text.clone(),
            action: "secret.unseal".into(),
            subject: text.clone(),
            outcome: "denied".into(),
            detail: (0..40)
                .map(|i| (format!("{i:02}{text}"), text.clone()))
                .collect(),
        }
    }

    #[test]
    fn short_events_are_unchanged() {
        let event = Event {
            actor: "alice".into(),
            action: "key.create".into(),
            subject: "shop/payments".into(),
            outcome: "ok".into(),
            detail: [("version".to_owned(), "1".to_owned())].into(),
        };
        assert_eq!(super::event(event.clone()), event);
    }

    #[test]
    fn cuts_are_visible_and_on_character_boundaries() {
        assert_eq!(cut("abcdef", 3), "abc...[3 bytes cut]");
        // 'é' is two bytes: a cut inside it keeps the character whole or not at all.
        assert_eq!(cut("aéé", 2), "a...[4 bytes cut]");
    }

    #[test]
    fn escaping_heavy_strings_still_fit_the_record_bound() {
        // Control characters escape to six bytes each in JSON.
        let bounded = event(huge("\u{1}".repeat(1 << 20)));
        let json = serde_json::to_vec(&bounded).unwrap();
        assert!(
            json.len() + RECORD_OVERHEAD <= MAX_RECORD_BYTES,
            "{}",
            json.len()
        );
        assert_eq!(bounded.detail.len(), MAX_DETAIL_ENTRIES);
        assert_eq!(bounded.detail["..."], "25 more entries cut");
        assert!(bounded.actor.ends_with("bytes cut]"));
    }
}
