//! Reading one ManagedKey from the API server with the kubeconfig's
//! credentials, and turning the API server's refusals into advice.

use crate::https::{self, Endpoint};
use crate::kubeconfig::{Connection, Credentials};
use anyhow::{Context, Result, bail};
use keyward_crds::ManagedKey;
use serde::Deserialize;

/// The parts of a `metav1.Status` worth showing.
#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Option<StatusDetails>,
}

#[derive(Deserialize)]
struct StatusDetails {
    #[serde(default)]
    name: Option<String>,
}

/// One request to the API server with the kubeconfig's credentials.
pub async fn request(
    connection: &Connection,
    method: hyper::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<https::Reply> {
    let (bearer, identity) = match &connection.credentials {
        Credentials::Bearer(token) => (Some(token.as_str()), None),
        Credentials::ClientCertificate { cert_pem, key_pem } => {
            (None, Some((cert_pem.as_slice(), key_pem.as_slice())))
        }
    };
    let endpoint = Endpoint {
        base: &connection.server,
        ca_pem: &connection.ca_pem,
        server_name: connection.tls_server_name.as_deref(),
        client_identity: identity,
        peer: "the API server",
        ca_hint: "check the cluster's certificate-authority in the kubeconfig",
    };
    https::send(&endpoint, method, path, bearer, body).await
}

/// The message of an API server refusal, or the start of its body.
pub fn refusal(reply: &https::Reply) -> String {
    let status: Status = serde_json::from_slice(&reply.body).unwrap_or_default();
    if status.message.is_empty() {
        String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)]).into_owned()
    } else {
        status.message.trim().to_owned()
    }
}

pub async fn managed_key(
    connection: &Connection,
    namespace: &str,
    name: &str,
) -> Result<ManagedKey> {
    let path = format!("/apis/keyward.io/v1alpha1/namespaces/{namespace}/managedkeys/{name}");
    let reply = request(connection, hyper::Method::GET, &path, None).await?;
    let reference = format!("{namespace}/{name}");
    let status: Status = serde_json::from_slice(&reply.body).unwrap_or_default();
    match reply.status {
        200 => serde_json::from_slice(&reply.body)
            .with_context(|| format!("the API server's ManagedKey {reference} does not parse")),
        404 if status.details.and_then(|d| d.name).is_some() => bail!(
            "ManagedKey {reference} does not exist; list the keys with `kubectl get managedkeys -A`"
        ),
        404 => bail!(
            "the API server knows no ManagedKeys (keyward.io/v1alpha1); is Keyward installed \
             in this cluster (`kubectl get crd managedkeys.keyward.io`)?"
        ),
        401 => bail!(
            "the API server did not accept the kubeconfig's credentials (expired token or \
             certificate?); log in again, or give --token-file"
        ),
        403 => bail!(
            "no permission to read ManagedKey {reference}: {}; ask for `get` on \
             managedkeys.keyward.io in `{namespace}`",
            status.message.trim()
        ),
        code => bail!(
            "the API server answered HTTP {code} for ManagedKey {reference}: {}; retry, or \
             check the cluster",
            if status.message.is_empty() {
                String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)]).into_owned()
            } else {
                status.message
            }
        ),
    }
}
