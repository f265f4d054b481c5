//! How a Keyward provider (or a test) points the official Azure SDK at
//! the double: a fixed-token credential, a reqwest client that trusts the
//! double's CA as the SDK's transport, and the challenge resource check
//! off (the double's host is 127.0.0.1, not `*.vault.azure.net`).

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_core::time::{Duration, OffsetDateTime};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use keyward_azure_double::Double;
use std::sync::Arc;

/// A credential that always returns one token: no Entra ID involved.
#[derive(Debug)]
pub struct FixedToken(pub String);

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        // The scope comes from the double's challenge (`resource=`).
        assert_eq!(scopes, ["https://vault.azure.net/.default"]);
        Ok(AccessToken::new(
            self.0.clone(),
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}

/// A reqwest client that trusts only the double's CA.
pub fn http_client(double: &Double) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(double.ca_pem().as_bytes()).expect("CA PEM");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        // As the SDK's own client: Key Vault never redirects.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

pub fn options(http: reqwest::Client, retry: RetryOptions) -> KeyClientOptions {
    KeyClientOptions {
        client_options: ClientOptions {
            // `impl HttpClient for reqwest::Client` is in typespec_client_core.
            transport: Some(Transport::new(Arc::new(http))),
            retry,
            ..Default::default()
        },
        verify_challenge_resource: Some(false),
        ..Default::default()
    }
}

pub fn client_with(double: &Double, token: &str, options: KeyClientOptions) -> KeyClient {
    KeyClient::new(
        &double.vault_url(),
        Arc::new(FixedToken(token.to_owned())),
        Some(options),
    )
    .expect("key client")
}

/// A client with the double's token, CA and the SDK's default retries.
pub fn client(double: &Double) -> KeyClient {
    client_with(
        double,
        &double.token(),
        options(http_client(double), RetryOptions::default()),
    )
}

/// A client that does not retry (to see 429/503 answers themselves).
pub fn client_no_retry(double: &Double) -> KeyClient {
    client_with(
        double,
        &double.token(),
        options(http_client(double), RetryOptions::none()),
    )
}

/// The HTTP status and Key Vault error code of a failed call.
pub fn status(error: &azure_core::Error) -> (u16, String) {
    match error.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => (u16::from(*status), error_code.clone().unwrap_or_default()),
        other => panic!("not an HTTP error: {other:?} ({error})"),
    }
}

/// The JSON error body of a failed call (for `innererror`).
pub fn body(error: &azure_core::Error) -> serde_json::Value {
    match error.kind() {
        ErrorKind::HttpResponse {
            raw_response: Some(raw),
            ..
        } => raw.body().json().expect("a JSON error body"),
        other => panic!("not an HTTP error with a body: {other:?}"),
    }
}
