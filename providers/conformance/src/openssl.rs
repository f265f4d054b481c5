//! What a user does with a Keyward signature: check it over the file with
//! plain OpenSSL and the PEM public key. Shared by every provider's tests.

use keyward_core::crypto::pem::spki_to_pem;
use keyward_core::crypto::signing::SigningAlgorithm;
use std::path::Path;
use std::process::Command;

/// The OpenSSL command that checks `signature` over `file` (docs/signing.md).
pub fn verify_command(
    scheme: SigningAlgorithm,
    pem: &Path,
    file: &Path,
    signature: &Path,
) -> Command {
    let mut command = Command::new("openssl");
    match scheme {
        SigningAlgorithm::Ed25519 => {
            command.args(["pkeyutl", "-verify", "-pubin", "-inkey"]);
            command.arg(pem).args(["-rawin", "-in"]).arg(file);
            command.arg("-sigfile").arg(signature);
        }
        SigningAlgorithm::EcdsaP256Sha256 => {
            command.args(["dgst", "-sha256", "-verify"]).arg(pem);
            command.arg("-signature").arg(signature).arg(file);
        }
        SigningAlgorithm::RsaPss3072Sha256 | SigningAlgorithm::RsaPss4096Sha256 => {
            command.args(["dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss"]);
            command
                .args(["-sigopt", "rsa_pss_saltlen:32", "-verify"])
                .arg(pem);
            command.arg("-signature").arg(signature).arg(file);
        }
    }
    command
}

/// Whether `openssl` accepts `signature` over `data` with the public key
/// `spki_der`; its complaint is printed when it does not. Panics when the
/// `openssl` binary (Debian package `openssl`) cannot run.
pub fn openssl_accepts(
    scheme: SigningAlgorithm,
    spki_der: &[u8],
    data: &[u8],
    signature: &[u8],
) -> bool {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let (pem, file, sig) = (
        dir.path().join("key.pem"),
        dir.path().join("artefact"),
        dir.path().join("artefact.sig"),
    );
    std::fs::write(&pem, spki_to_pem(spki_der)).expect("write the PEM");
    std::fs::write(&file, data).expect("write the artefact");
    std::fs::write(&sig, signature).expect("write the signature");
    let output = verify_command(scheme, &pem, &file, &sig)
        .output()
        .expect("openssl must be installed (Debian package `openssl`)");
    if !output.status.success() {
        eprintln!(
            "{scheme:?}: openssl refused: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.status.success()
}
