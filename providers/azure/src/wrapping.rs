//! Wrapping on Key Vault: RSA-OAEP-256 by the service's wrapKey on the
//! primary version, unwrapKey on the version an envelope names. RSA-OAEP
//! has no associated data, so the wrap context is bound by the envelope.

use crate::errors::{At, from_azure};
use crate::provider::{AzureKeyVaultProvider, conversion, usable};
use azure_security_keyvault_keys::models::{
    EncryptionAlgorithm, KeyClientWrapKeyOptions, KeyOperationParameters,
};
use keyward_core::provider::{ProviderError, Result, WrapAlgorithm, WrapContext, WrappedDek};
use keyward_core::secret::Dek;

impl AzureKeyVaultProvider {
    pub(crate) async fn wrap(
        &self,
        key_id: &str,
        dek: &Dek,
        _context: &WrapContext,
    ) -> Result<WrappedDek> {
        let name = self.key_name(key_id)?;
        let versions = match self.versions(&name).await {
            Ok(versions) => versions,
            Err(error) => return Err(self.explain_missing(&name, 0, error).await),
        };
        versions.algorithm()?.wrapping(&name)?;
        let version = usable(&versions, None)?;
        let at = At::version(&name, version.number);
        let options = KeyClientWrapKeyOptions {
            key_version: Some(version.id.clone()),
            ..Default::default()
        };
        // RSA-OAEP has no context (AAD); the envelope binds it.
        let content = oaep(dek.expose())
            .try_into()
            .map_err(|e| conversion("wrapKey", e))?;
        let result = self
            .client()
            .wrap_key(&name, content, Some(options))
            .await
            .map_err(|e| from_azure(&e, at))?
            .into_model()
            .map_err(|e| from_azure(&e, at))?;
        let blob = result.result.ok_or_else(|| {
            ProviderError::Unavailable(format!(
                "Key Vault wrapKey returned no value for version {} of `{name}`",
                version.number
            ))
        })?;
        Ok(WrappedDek {
            key_id: self.key_id_of(&name),
            version: version.number,
            algorithm: WrapAlgorithm::RsaOaepSha256,
            blob,
        })
    }

    pub(crate) async fn unwrap(&self, wrapped: &WrappedDek, _context: &WrapContext) -> Result<Dek> {
        let name = self.key_name(&wrapped.key_id)?;
        if wrapped.algorithm != WrapAlgorithm::RsaOaepSha256 {
            return Err(ProviderError::UnwrapFailed);
        }
        let number = wrapped.version;
        let at = At::version(&name, number).unwrapping();
        let id = match self.version_id(&name, number).await {
            Ok(id) => id,
            Err(error) => return Err(self.explain_missing(&name, number, error).await),
        };
        let content = oaep(&wrapped.blob)
            .try_into()
            .map_err(|e| conversion("unwrapKey", e))?;
        let answer = self.client().unwrap_key(&name, &id, content, None).await;
        let result = match answer {
            Ok(response) => response.into_model().map_err(|e| from_azure(&e, at))?,
            Err(e) => {
                let error = from_azure(&e, at);
                return Err(match error {
                    // Disabled by Keyward for a scheduled destruction?
                    ProviderError::VersionDisabled { .. } => match self.versions(&name).await {
                        Ok(versions) => match usable(&versions, Some(number)) {
                            Err(precise) => precise,
                            Ok(_) => error,
                        },
                        Err(_) => error,
                    },
                    other => self.explain_missing(&name, number, other).await,
                });
            }
        };
        let plaintext = zeroize::Zeroizing::new(result.result.unwrap_or_default());
        Dek::from_slice(&plaintext).ok_or(ProviderError::UnwrapFailed)
    }
}

fn oaep(value: &[u8]) -> KeyOperationParameters {
    KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(value.to_vec()),
        ..Default::default()
    }
}
