//! A test double of the Azure Key Vault keys REST API, written from
//! Microsoft's public REST reference and checked against the official
//! Azure SDK for Rust (`azure_security_keyvault_keys`) in this crate's
//! tests. It serves HTTPS on a loopback port with challenge-based bearer
//! authentication, and implements only the calls a Keyward provider
//! makes, with real cryptography (RSA-OAEP-256 wrap/unwrap, PS256 and
//! ES256 signatures, all via `keyward_core::crypto`), per-version
//! attributes and tags, rotation and rotation policies, and soft delete
//! with retention and purge protection. It is **not** Microsoft's
//! service: RBAC, quotas, latency, Managed HSM (`oct-HSM`), key release,
//! import/backup and exact error texts differ or are missing.
//!
//! Test-support code: a dev-dependency of a provider's tests, never of a
//! shipped crate. Point the SDK at [`Double::vault_url`], trust
//! [`Double::ca_pem`], present [`Double::token`] (see `tests/sdk/client.rs` for
//! the `KeyClientOptions` this takes).
//!
//! A Microsoft Entra ID token endpoint on the same port
//! (`/{tenant}/oauth2/v2.0/token`, see [`Federation`]) gives a
//! `WorkloadIdentityCredential` the accepted token for a Kubernetes
//! service-account JWT, when the double is its authority host.
//!
//! Test hooks: answer `429 Throttled` N times ([`Double::throttle`]),
//! answer `503` to every Key Vault call ([`Double::set_down`]), count calls
//! ([`Double::calls`]), look at a key ([`Double::key`]), purge a deleted
//! key as its schedule would ([`Double::fire_scheduled_purge`]) and run a
//! rotation policy's rotation now ([`Double::fire_policy_rotation`]).
#![forbid(unsafe_code)]

mod entra;
mod jwk;
mod jwt;
mod material;
mod ops;
mod policy;
mod render;
mod snapshot;
mod tls;
mod vault;
mod wire;

use keyward_double_kit::{Faults, Reply, Server};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub use entra::Federation;
pub use jwk::ecdsa_raw_to_der;
pub use snapshot::{DeletedSnapshot, KeySnapshot, VersionSnapshot};
pub use wire::API_VERSIONS;

/// How the vault the double plays is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Entra tenant named in the authentication challenge.
    pub tenant: String,
    /// The only bearer token accepted (a test credential returns it).
    pub token: String,
    /// Soft-delete retention, 7 to 90 days (Key Vault's range).
    pub retention_days: u32,
    /// Refuse purges of deleted keys (they go only when their time comes,
    /// see [`Double::fire_scheduled_purge`]).
    pub purge_protection: bool,
    /// Versions per page of `GET /keys/NAME/versions` when the client
    /// does not say (`maxresults`); small, so paging is exercised.
    pub page_size: usize,
    /// The federated identity credential the Entra token endpoint checks
    /// a workload's assertion against; `None` refuses every request.
    pub federation: Option<Federation>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tenant: "00000000-0000-0000-0000-00000000c0de".to_owned(),
            token: "keyward-test-token".to_owned(),
            retention_days: 90,
            purge_protection: false,
            page_size: 2,
            federation: None,
        }
    }
}

struct Shared {
    vault: vault::Shared,
    /// Throttled calls answer 429; down answers 503 (see [`handle`]).
    faults: Faults,
    tenant: String,
    token: Mutex<String>,
    entra: entra::State,
}

/// A running double on a loopback port; stops on drop.
pub struct Double {
    pub addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    server: Server,
}

impl Double {
    pub async fn start() -> Double {
        Double::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Double {
        assert!(
            (7..=90).contains(&options.retention_days),
            "Key Vault retains deleted keys 7 to 90 days"
        );
        assert!(options.page_size > 0, "a page holds at least one version");
        let (listener, addr) = keyward_double_kit::bind_loopback("Key Vault double").await;
        let tls = tls::generate();
        let settings = vault::Settings {
            url: format!("https://{addr}"),
            retention_days: options.retention_days,
            purge_protection: options.purge_protection,
            page_size: options.page_size,
        };
        let shared = Arc::new(Shared {
            vault: Arc::new(Mutex::new(vault::Vault {
                settings,
                keys: HashMap::new(),
            })),
            faults: Faults::default(),
            tenant: options.tenant,
            token: Mutex::new(options.token),
            entra: entra::State {
                federations: Mutex::new(options.federation.into_iter().collect()),
                ..Default::default()
            },
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
        // Down is a 503 from the handler, not a dropped connection: the
        // Entra endpoint on this port stays up.
        let server = Server::start(
            listener,
            None,
            move |stream| {
                // A failed handshake (a client that does not trust the
                // CA) just ends the connection.
                let handshake = acceptor.accept(stream);
                async move { handshake.await.ok() }
            },
            {
                let shared = shared.clone();
                move |request| handle(shared.clone(), request)
            },
        );
        Double {
            addr,
            ca_pem: tls.ca_pem,
            shared,
            server,
        }
    }

    /// `https://127.0.0.1:PORT`, the vault URL to give the client.
    pub fn vault_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The PEM of this start's CA, which signed the serving certificate
    /// (for `localhost` and `127.0.0.1`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The Entra tenant of the challenge and of the token endpoint.
    pub fn tenant(&self) -> &str {
        &self.shared.tenant
    }

    /// The authority host to give an Entra credential
    /// (`AZURE_AUTHORITY_HOST`): the same `https://127.0.0.1:PORT`.
    pub fn authority_host(&self) -> String {
        self.vault_url()
    }

    /// Replaces the federated identity credential the token endpoint
    /// checks assertions against (e.g. a rotated issuer JWKS).
    pub fn set_federation(&self, federation: Option<Federation>) {
        *self.shared.entra.federations.lock().unwrap() = federation.into_iter().collect();
    }

    /// Registers one more application's federated credential (another
    /// client id, e.g. the webhook's next to the operator's).
    pub fn add_federation(&self, federation: Federation) {
        let mut federations = self.shared.entra.federations.lock().unwrap();
        federations.retain(|f| f.client_id != federation.client_id);
        federations.push(federation);
    }

    /// How many tokens the Entra endpoint has issued.
    pub fn tokens_issued(&self) -> u32 {
        self.shared.entra.issued.load(Ordering::SeqCst)
    }

    /// The `error_description` of the Entra endpoint's last refusal.
    pub fn last_refusal(&self) -> Option<String> {
        self.shared.entra.last_refusal.lock().unwrap().clone()
    }

    /// The bearer token the double accepts.
    pub fn token(&self) -> String {
        self.shared.token.lock().unwrap().clone()
    }

    /// Accept `token` from now on (and only it): a test of token refresh
    /// or of a revoked token.
    pub fn set_token(&self, token: &str) {
        *self.shared.token.lock().unwrap() = token.to_owned();
    }

    /// Answers the next `times` authenticated requests (to `only`, if
    /// given, e.g. `"UnwrapKey"`) with `429 Throttled` and `Retry-After: 1`.
    pub fn throttle(&self, times: u32, only: Option<&'static str>) {
        self.shared.faults.throttle(times, only);
    }

    /// Answers every Key Vault request with `503 ServiceUnavailable` while
    /// `down` (the Entra token endpoint, another service, still answers).
    pub fn set_down(&self, down: bool) {
        self.shared.faults.set_down(down);
    }

    /// How many authenticated requests reached an operation (`CreateKey`,
    /// `WrapKey`, `UnwrapKey`, `ListKeyVersions`...), throttled ones
    /// included; `"Challenge"` counts the 401s sent to requests without
    /// a valid token.
    pub fn calls(&self, rpc: &str) -> u32 {
        self.shared.faults.calls(rpc)
    }

    pub fn reset_calls(&self) {
        self.shared.faults.reset_calls();
    }

    /// What the double holds for key `name` (deleted keys included).
    pub fn key(&self, name: &str) -> Option<KeySnapshot> {
        snapshot::of(&self.shared.vault.lock().unwrap(), name)
    }

    /// Purges deleted key `name` as its `scheduledPurgeDate` would (purge
    /// protection does not stop this). False if no such deleted key.
    pub fn fire_scheduled_purge(&self, name: &str) -> bool {
        let mut vault = self.shared.vault.lock().unwrap();
        let deleted = vault.keys.get(name).is_some_and(|k| k.deleted.is_some());
        if deleted {
            vault.keys.remove(name);
        }
        deleted
    }

    /// Runs key `name`'s rotation policy now, as Key Vault does when its
    /// `Rotate` trigger is reached: a new version, with `exp` from the
    /// policy's `expiryTime`. Refused if the policy has no `Rotate` action.
    /// Returns the new version id.
    pub async fn fire_policy_rotation(&self, name: &str) -> Result<String, String> {
        let rotates = {
            let vault = self.shared.vault.lock().unwrap();
            let key = vault.live(name).map_err(|f| f.message)?;
            key.policy.as_ref().is_some_and(|p| p.rotates())
        };
        if !rotates {
            return Err(format!(
                "key {name} has no rotation policy with a Rotate action"
            ));
        }
        let bundle = vault::rotate(&self.shared.vault, name)
            .await
            .map_err(|f| f.message)?;
        let kid = bundle["key"]["kid"].as_str().unwrap_or_default();
        Ok(kid.rsplit('/').next().unwrap_or_default().to_owned())
    }

    /// Makes a version of key `name` from a create request's JSON `body`
    /// (`kty`, `key_size`, `key_ops`, `attributes`, `tags`) without a
    /// request, as Terraform or `az keyvault key create` would make it.
    /// Returns the new version id.
    pub async fn create_key(&self, name: &str, body: serde_json::Value) -> Result<String, String> {
        let bundle = vault::create(&self.shared.vault, name, &body)
            .await
            .map_err(|f| f.message)?;
        let kid = bundle["key"]["kid"].as_str().unwrap_or_default();
        Ok(kid.rsplit('/').next().unwrap_or_default().to_owned())
    }

    /// Stops listening and closes every connection.
    pub fn stop(&self) {
        self.server.stop();
    }
}

/// The token of an `Authorization: Bearer ...` header, if it is the one
/// the double accepts (compared in constant time; never logged).
fn authorized(shared: &Shared, headers: &hyper::HeaderMap) -> bool {
    let Some(presented) = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let expected = shared.token.lock().unwrap();
    keyward_core::crypto::constant_time_eq(presented.as_bytes(), expected.as_bytes())
}

async fn handle(shared: Arc<Shared>, request: hyper::Request<hyper::body::Incoming>) -> Reply {
    let request = keyward_double_kit::read_request(request).await?;
    if entra::token_path(&request.path).is_some() {
        // Entra's, not Key Vault's: no bearer token, no faults.
        let token = shared.token.lock().unwrap().clone();
        return Ok(entra::serve(
            &shared.entra,
            &shared.tenant,
            &token,
            &request,
        ));
    }
    if shared.faults.is_down() {
        return Ok(wire::error(&wire::fault(
            503,
            "ServiceUnavailable",
            "The service is unavailable (test double is down).",
        )));
    }
    if !authorized(&shared, &request.headers) {
        shared.faults.count("Challenge");
        let message = if request.headers.contains_key(hyper::header::AUTHORIZATION) {
            "AKV10032: Invalid issuer or token (test double)."
        } else {
            "AKV10000: Request is missing a Bearer or PoP token."
        };
        return Ok(wire::challenge(&shared.tenant, message));
    }
    let route = wire::route(&request.method, &request.path);
    let rpc = route.as_ref().map(|r| r.rpc).unwrap_or("Unknown");
    if shared.faults.count_and_throttle(rpc) {
        return Ok(wire::error(&wire::fault(
            429,
            "Throttled",
            "Request was not processed because too many requests were received (test double).",
        )));
    }
    let api_version = request
        .query
        .get("api-version")
        .map(String::as_str)
        .unwrap_or("");
    if !wire::API_VERSIONS.contains(&api_version) {
        return Ok(wire::error(&wire::bad_parameter(format!(
            "The specified version ({api_version}) is not recognized. Consider using the latest supported version ({}).",
            wire::API_VERSIONS[wire::API_VERSIONS.len() - 1]
        ))));
    }
    let Some(route) = route else {
        return Ok(wire::error(&wire::fault(
            404,
            "NotFound",
            format!(
                "The Key Vault double does not serve {} {}",
                request.method, request.path
            ),
        )));
    };
    let json = match request.json() {
        Ok(value) => value,
        Err(e) => {
            return Ok(wire::error(&wire::bad_parameter(format!(
                "The request body is not valid JSON: {e}"
            ))));
        }
    };
    Ok(
        match vault::dispatch(&shared.vault, &route, &request.query, &json).await {
            Ok(serde_json::Value::Null) => wire::ok(204, None),
            Ok(value) => wire::ok(200, Some(&value)),
            Err(fault) => wire::error(&fault),
        },
    )
}
