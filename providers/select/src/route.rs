//! Which provider a key id belongs to. Every provider mints ids of its own
//! shape, and envelopes carry only the id, so the id is what routes an
//! unwrap in the webhook and every call on an existing key in the operator.

/// The five providers, by the name `spec.provider` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Local,
    Aws,
    Gcp,
    Azure,
    Pkcs11,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Local => "local",
            Kind::Aws => "aws",
            Kind::Gcp => "gcp",
            Kind::Azure => "azure",
            Kind::Pkcs11 => "pkcs11",
        }
    }

    /// What to start the binary with to serve this provider.
    pub fn how_to_enable(self) -> &'static str {
        match self {
            Kind::Local => "the local keyring Secrets (--keyring-secret, --root-key-secret)",
            Kind::Aws => "--aws-region (KEYWARD_AWS_REGION; chart: providers.aws)",
            Kind::Gcp => "--gcp-key-ring (KEYWARD_GCP_KEY_RING; chart: providers.gcp)",
            Kind::Azure => "--azure-vault-url (KEYWARD_AZURE_VAULT_URL; chart: providers.azure)",
            Kind::Pkcs11 => {
                "--pkcs11-module, --pkcs11-token-label and --pkcs11-pin-file (KEYWARD_PKCS11_*; chart: providers.pkcs11)"
            }
        }
    }

    pub(crate) fn product(self) -> &'static str {
        match self {
            Kind::Local => "the local provider",
            Kind::Aws => "AWS KMS",
            Kind::Gcp => "Cloud KMS",
            Kind::Azure => "Azure Key Vault",
            Kind::Pkcs11 => "PKCS#11",
        }
    }
}

/// The provider that minted `key_id`: `local-…` (local keyring), `p11k-…`
/// (PKCS#11), `projects/…` (Cloud KMS), `alias/…` or `arn:aws:kms:…` (AWS),
/// `https://VAULT/keys/NAME` (Azure Key Vault).
pub fn kind_of_key_id(key_id: &str) -> Option<Kind> {
    if key_id.starts_with("local-") {
        Some(Kind::Local)
    } else if key_id.starts_with("p11k-") {
        Some(Kind::Pkcs11)
    } else if key_id.starts_with("projects/") {
        Some(Kind::Gcp)
    } else if key_id.starts_with("alias/") || key_id.starts_with("arn:aws:kms:") {
        Some(Kind::Aws)
    } else if key_id.starts_with("https://") && key_id.contains("/keys/") {
        Some(Kind::Azure)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_id_shape_routes() {
        for (id, kind) in [
            ("local-0011223344556677", Kind::Local),
            ("p11k-00112233aabbccdd", Kind::Pkcs11),
            ("projects/p/locations/l/keyRings/r/cryptoKeys/k", Kind::Gcp),
            ("alias/keyward/db", Kind::Aws),
            ("https://acme.vault.azure.net/keys/db", Kind::Azure),
            (
                "arn:aws:kms:eu-west-1:111122223333:alias/keyward/db",
                Kind::Aws,
            ),
        ] {
            assert_eq!(kind_of_key_id(id), Some(kind), "{id}");
        }
        assert_eq!(kind_of_key_id("db"), None);
        assert_eq!(
            kind_of_key_id("https://acme.vault.azure.net/secrets/db"),
            None
        );
        assert_eq!(kind_of_key_id(""), None);
    }
}
