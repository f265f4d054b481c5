//! `spec.tags` as each provider will take them: AWS KMS tags, Cloud KMS
//! labels, Key Vault tags. The local keyring and PKCS#11 keep none, so tags there are
//! refused rather than accepted and dropped.

use crate::provider::ProviderKind;
use crate::validation::Collector;
use std::collections::BTreeMap;

/// Tags a user may set: the providers' limits (50 tags per AWS KMS key,
/// 64 labels per CryptoKey) less what Keyward keeps there itself.
pub const MAX_TAGS: usize = 40;

/// Key Vault takes 15 tags per key version; Keyward keeps up to 6 there
/// (`keyward-version`, `-algorithm`, `-owner`, `-cluster`, `-claimed-at`,
/// `-destroy-at`).
pub const MAX_AZURE_TAGS: usize = 9;

pub(crate) fn check(
    provider: Option<ProviderKind<'_>>,
    tags: &BTreeMap<String, String>,
    errors: &mut Collector,
) {
    if tags.is_empty() {
        return;
    }
    if tags.len() > MAX_TAGS {
        errors.push(
            "spec.tags",
            format!(
                "{} tags; at most {MAX_TAGS} (the provider's limit less Keyward's own)",
                tags.len()
            ),
        );
    }
    if matches!(provider, Some(ProviderKind::Azure(_))) && tags.len() > MAX_AZURE_TAGS {
        errors.push(
            "spec.tags",
            format!(
                "{} tags; Key Vault takes 15 per key version and Keyward keeps 6 of its own, so at most {MAX_AZURE_TAGS}",
                tags.len()
            ),
        );
    }
    for (name, value) in tags {
        let field = format!("spec.tags[{name}]");
        let problem = match provider {
            Some(ProviderKind::Aws(_)) => aws_tag(name, value),
            Some(ProviderKind::Gcp(_)) => gcp_label(name, value),
            Some(ProviderKind::Azure(_)) => azure_tag(name, value),
            Some(ProviderKind::Local(_) | ProviderKind::Pkcs11(_)) => {
                let kind = provider.map(|p| p.name()).unwrap_or_default();
                errors.push(
                    "spec.tags",
                    format!("the {kind} provider keeps no tags; remove spec.tags (they reach AWS KMS and Key Vault as tags, Cloud KMS as labels)"),
                );
                return;
            }
            None => None,
        };
        if let Some(problem) = problem {
            errors.push(field, problem);
        }
    }
}

/// AWS: keys of 1-128 and values of 0-256 characters from letters, digits,
/// spaces and `_.:/=+-@`; `aws:` is AWS's, `keyward.io/` Keyward's.
fn aws_tag(name: &str, value: &str) -> Option<String> {
    let allowed = |c: char| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c);
    if name.is_empty() || name.chars().count() > 128 || !name.chars().all(allowed) {
        return Some("an AWS tag key has 1 to 128 letters, digits, spaces or _.:/=+-@".into());
    }
    if name.to_ascii_lowercase().starts_with("aws:") || name.starts_with("keyward.io/") {
        return Some("tag keys starting aws: or keyward.io/ are reserved".into());
    }
    if value.chars().count() > 256 || !value.chars().all(allowed) {
        return Some("an AWS tag value has at most 256 letters, digits, spaces or _.:/=+-@".into());
    }
    None
}

/// Cloud KMS labels: keys start with a lowercase letter, keys and values
/// hold at most 63 lowercase letters, digits, `_` or `-`; `keyward-` is
/// Keyward's.
fn gcp_label(name: &str, value: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if !name.starts_with(|c: char| c.is_ascii_lowercase())
        || name.len() > 63
        || !name.chars().all(allowed)
    {
        return Some("a Cloud KMS label key starts with a lowercase letter and has at most 63 lowercase letters, digits, _ or -".into());
    }
    if name.starts_with("keyward-") {
        return Some("label keys starting keyward- are reserved".into());
    }
    if value.len() > 63 || !value.chars().all(allowed) {
        return Some(
            "a Cloud KMS label value has at most 63 lowercase letters, digits, _ or -".into(),
        );
    }
    None
}

/// Key Vault tags: names of 1-512 and values of at most 256 characters;
/// `keyward-` is Keyward's.
fn azure_tag(name: &str, value: &str) -> Option<String> {
    if name.is_empty() || name.chars().count() > 512 {
        return Some("a Key Vault tag name has 1 to 512 characters".into());
    }
    if name.starts_with("keyward-") {
        return Some("tag names starting keyward- are reserved".into());
    }
    if value.chars().count() > 256 {
        return Some("a Key Vault tag value has at most 256 characters".into());
    }
    None
}
