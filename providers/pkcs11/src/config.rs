//! Where the token is and how to log in. The PIN is only ever read from a
//! file (a mounted Kubernetes Secret in a cluster), never from a flag, so it
//! does not show up in `ps` or in a pod spec.

use keyward_core::ProviderError;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Sessions opened per token when the configuration does not say.
pub const DEFAULT_MAX_SESSIONS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pkcs11Config {
    /// The vendor's PKCS#11 library, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label (CKA_LABEL of the token, as `softhsm2-util --show-slots` prints it).
    pub token_label: String,
    /// Pins the slot when several tokens carry the same label.
    #[serde(default)]
    pub slot: Option<u64>,
    /// File holding the user (CKU_USER) PIN; one trailing newline is ignored.
    pub pin_file: PathBuf,
    /// Upper bound on open sessions; each one serves one call at a time.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Let the token choose the AES-GCM IV (required by some HSMs in FIPS
    /// mode, e.g. Thales Luna and AWS CloudHSM). By default Keyward draws a
    /// random 96-bit IV itself and passes it in.
    #[serde(default)]
    pub token_generates_iv: bool,
}

fn default_max_sessions() -> usize {
    DEFAULT_MAX_SESSIONS
}

impl Pkcs11Config {
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        pin_file: impl Into<PathBuf>,
    ) -> Self {
        Pkcs11Config {
            module: module.into(),
            token_label: token_label.into(),
            slot: None,
            pin_file: pin_file.into(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            token_generates_iv: false,
        }
    }
}

/// Reads the PIN, dropping one trailing `\n` or `\r\n` (what `echo` and
/// editors add). The buffer is zeroized; the PIN lives on in a `SecretString`,
/// which zeroizes itself on drop.
pub fn read_pin(path: &Path) -> Result<SecretString, ProviderError> {
    let raw = Zeroizing::new(std::fs::read(path).map_err(|e| {
        ProviderError::InvalidRequest(format!(
            "cannot read the PKCS#11 PIN file {}: {e}; point pinFile at a readable file holding the user PIN",
            path.display()
        ))
    })?);
    let mut end = raw.len();
    if raw[..end].ends_with(b"\n") {
        end -= 1;
        if raw[..end].ends_with(b"\r") {
            end -= 1;
        }
    }
    let pin = std::str::from_utf8(&raw[..end]).map_err(|_| {
        ProviderError::InvalidRequest(format!(
            "the PKCS#11 PIN file {} is not UTF-8 text",
            path.display()
        ))
    })?;
    if pin.is_empty() {
        return Err(ProviderError::InvalidRequest(format!(
            "the PKCS#11 PIN file {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(pin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn pin_file_loses_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        for (content, expected) in [
            ("1234\n", "1234"),
            ("1234\r\n", "1234"),
            ("1234", "1234"),
            (" 12 34 \n", " 12 34 "),
        ] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(read_pin(&path).unwrap().expose_secret(), expected);
        }
        std::fs::write(&path, "\n").unwrap();
        assert!(read_pin(&path).unwrap_err().to_string().contains("empty"));
        let missing = read_pin(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("PIN file"), "{missing}");
    }

    #[test]
    fn config_reads_from_json_with_defaults() {
        let config: Pkcs11Config = serde_json::from_str(
            r#"{"module":"/m.so","tokenLabel":"keyward","pinFile":"/run/pin"}"#,
        )
        .unwrap();
        assert_eq!(config, Pkcs11Config::new("/m.so", "keyward", "/run/pin"));
    }
}
