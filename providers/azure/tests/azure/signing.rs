//! Signatures made through Key Vault verify with the `openssl` binary
//! and the public key the provider hands out (ES256 converted from raw
//! r||s to DER).

use crate::common::{provider, spec};
use keyward_azure_double::Double;
use keyward_core::crypto::pem::spki_to_pem;
use keyward_core::crypto::signing::{SigningAlgorithm, ToSign};
use keyward_core::provider::{KeyAlgorithm, KeyProvider};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory of its own under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let mut random = [0u8; 8];
        keyward_core::crypto::fill_random(&mut random);
        let unique = u64::from_le_bytes(random);
        let dir = std::env::temp_dir().join(format!("keyward-azure-{tag}-{unique:016x}"));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The OpenSSL command a user runs to check a signature of `file`.
fn openssl_verify(scheme: SigningAlgorithm, pem: &Path, file: &Path, signature: &Path) -> Command {
    let mut command = Command::new("openssl");
    match scheme {
        SigningAlgorithm::EcdsaP256Sha256 => {
            command.args(["dgst", "-sha256", "-verify"]).arg(pem);
        }
        _ => {
            command.args(["dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss"]);
            command
                .args(["-sigopt", "rsa_pss_saltlen:32", "-verify"])
                .arg(pem);
        }
    }
    command.arg("-signature").arg(signature).arg(file);
    command
}

fn openssl_accepts(
    scheme: SigningAlgorithm,
    spki_der: &[u8],
    data: &[u8],
    signature: &[u8],
) -> bool {
    let scratch = Scratch::new("openssl");
    let pem = scratch.write("key.pem", spki_to_pem(spki_der).as_bytes());
    let file = scratch.write("artefact", data);
    let sig = scratch.write("artefact.sig", signature);
    let output = openssl_verify(scheme, &pem, &file, &sig)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_from_key_vault_verify_with_openssl() {
    let double = Double::start().await;
    let provider = provider(&double);
    for algorithm in [KeyAlgorithm::EcP256, KeyAlgorithm::RsaPss3072] {
        let scheme = algorithm.signing().unwrap();
        let key = provider
            .create_key(&spec(
                &format!("signer-{algorithm}").replace('_', "-"),
                algorithm,
            ))
            .await
            .unwrap()
            .key_id;
        let data = b"keyward release 1.2.3";
        for input in [
            ToSign::Message(data.to_vec()),
            ToSign::Sha256(ToSign::Message(data.to_vec()).sha256()),
        ] {
            let signed = provider.sign(&key, None, &input).await.unwrap();
            assert_eq!(signed.algorithm, scheme);
            let public = provider
                .verifying_key(&key, Some(signed.version))
                .await
                .unwrap();
            assert!(
                openssl_accepts(scheme, &public.spki_der, data, &signed.bytes),
                "{algorithm}: openssl refused a Key Vault signature"
            );
            assert!(
                !openssl_accepts(scheme, &public.spki_der, b"another file", &signed.bytes),
                "{algorithm}: openssl accepted a signature over other data"
            );
        }
    }
}
