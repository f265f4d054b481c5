//! What a cloud's workload identity federation needs from the cluster:
//! ServiceAccount tokens for an audience, their claims, and the issuer's
//! signing keys (`/openid/v1/jwks`), which the cloud fetches through the
//! issuer's discovery document.

use anyhow::{Context as _, Result};
use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::Value;

/// A token of ServiceAccount `account` for `audience`, bound to nothing,
/// as the kubelet projects one into a pod.
pub async fn service_account_token(
    client: &Client,
    ns: &str,
    account: &str,
    audience: &str,
) -> Result<String> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.to_owned()],
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    let made = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(account, &PostParams::default(), &request)
        .await?;
    made.status
        .map(|s| s.token)
        .context("TokenRequest returned no token")
}

/// A string claim of a JWT's payload (read, not verified).
pub fn claim(jwt: &str, name: &str) -> Result<String> {
    let payload = jwt.split('.').nth(1).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    let claims: Value = serde_json::from_slice(&bytes)?;
    claims[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the token has no {name}"))
}

/// The issuer the API server writes into ServiceAccount tokens.
pub async fn issuer(client: &Client, ns: &str) -> Result<String> {
    let token = service_account_token(client, ns, "default", "keyward-e2e").await?;
    claim(&token, "iss")
}

/// The cluster's ServiceAccount signing keys (JWK Set).
pub async fn cluster_jwks(client: &Client) -> Result<Value> {
    let request = http::Request::get("/openid/v1/jwks").body(Vec::new())?;
    let text = client
        .request_text(request)
        .await
        .context("GET /openid/v1/jwks (ServiceAccountIssuerDiscovery)")?;
    Ok(serde_json::from_str(&text)?)
}
