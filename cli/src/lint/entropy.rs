//! Whether a literal looks like generated key material or a token rather
//! than a word, a name, a URL or a digest.

use keyward_core::envelope::Envelope;

/// Shannon entropy per character of random base64 or mixed-case
/// alphanumerics is 4.5-6; English, names and hex digests stay below 4.
const MIN_BITS_PER_CHAR: f64 = 4.2;
const MIN_LEN: usize = 20;

pub fn bits_per_char(text: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in text.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let len = text.chars().count() as f64;
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / len;
            -p * p.log2()
        })
        .sum()
}

/// A long, random-looking literal: letters and digits mixed, no spaces, no
/// URL, and not a value Keyward already sealed.
pub fn looks_random(value: &str) -> bool {
    let value = value.trim();
    value.chars().count() >= MIN_LEN
        && !value.contains(char::is_whitespace)
        && !value.contains("://")
        && value.chars().any(|c| c.is_ascii_digit())
        && value.chars().any(|c| c.is_ascii_alphabetic())
        && bits_per_char(value) >= MIN_BITS_PER_CHAR
        && !is_sealed(value)
}

/// A Keyward envelope (`keyward seal --raw`): safe in Git by design.
pub fn is_sealed(value: &str) -> bool {
    Envelope::decode(value).is_ok()
}

/// A value that stands for something filled in later, not a secret.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    v.is_empty()
        || v.contains("{{")
        || v.contains("${")
        || v.contains("$(")
        || (v.starts_with('<') && v.ends_with('>'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_words_digests_and_urls_are_not() {
        assert!(looks_random("Zx9qL2vT8mN4pR7sK1wE5yU3iO6aB0cD"));
        assert!(!looks_random("info"));
        assert!(!looks_random(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        ));
        assert!(!looks_random("https://api.example.com/v1/items?page=2"));
        assert!(!looks_random(
            "postgres-primary-0.postgres.svc.cluster.local"
        ));
    }
}
