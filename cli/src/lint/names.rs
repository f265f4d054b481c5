//! What a key or variable name says: that its value is a secret
//! (`password`, `apiKey`, ...), or that it only names where one is kept
//! (`existingSecret`, `secretName`, `passwordFile`).

use super::entropy::{is_placeholder, is_sealed, looks_random};

/// Names that say a value is a secret.
const SECRET_WORDS: [&str; 9] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "credential",
    "accesskey",
    "clientsecret",
];

fn secret_name(name: &str) -> bool {
    let squashed: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| squashed.contains(w))
}

/// Keys that name where a secret is (a Secret's name, a file, a
/// reference), not the secret itself.
fn names_a_reference(key: &str, value: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "secret"
        || key.starts_with("existing")
        || ["name", "ref", "file", "path"]
            .iter()
            .any(|end| key.ends_with(end))
        // `keyringSecret: app-keyring` names a Secret; `clientSecret` holds one.
        || (key.ends_with("secret") && !SECRET_HOLDERS.contains(&key.as_str()) && is_object_name(value))
}

/// Keys ending in `secret` that hold the secret itself, whatever it looks like.
const SECRET_HOLDERS: [&str; 8] = [
    "clientsecret",
    "sharedsecret",
    "appsecret",
    "webhooksecret",
    "jwtsecret",
    "hmacsecret",
    "cookiesecret",
    "sessionsecret",
];

/// A Kubernetes object name (DNS-1123 subdomain).
fn is_object_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Why a literal is a secret, if it is one.
#[derive(Clone, Copy)]
pub enum Why {
    /// Its name (or key) says so.
    Named,
    /// It looks generated: long and random.
    Generated,
}

impl Why {
    /// `noun` is what the place calls its names: "name" or "key".
    pub fn says(self, noun: &str) -> String {
        match self {
            Why::Named => format!("its {noun} says it is a secret"),
            Why::Generated => "it looks generated (long and random)".into(),
        }
    }
}

/// Whether `value`, written literally under `name`, is a secret. Sealed
/// values and placeholders never are; with `references`, names that only
/// say where a secret is kept (`existingSecret`) do not count.
pub fn why_secret(name: &str, value: &str, references: bool) -> Option<Why> {
    if is_placeholder(value) || is_sealed(value) {
        None
    } else if secret_name(name) && !(references && names_a_reference(name, value)) {
        Some(Why::Named)
    } else if looks_random(value) {
        Some(Why::Generated)
    } else {
        None
    }
}
