//! Kubernetes workload identity against the double's Entra token
//! endpoint, driven by the official `azure_identity`
//! `WorkloadIdentityCredential`: the token it gets is the one the Key
//! Vault side accepts, and each federation mismatch is refused with an
//! AADSTS description the caller sees.

use crate::assertion::{self, CLIENT_ID, Issuer, claims, now, token_file};
use crate::client;
use azure_core::cloud::CustomConfiguration;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use azure_security_keyvault_keys::KeyClient;
use keyward_azure_double::{Double, Federation, Options};
use std::path::Path;
use std::sync::Arc;

const SCOPES: &[&str] = &["https://vault.azure.net/.default"];

async fn start(federation: Option<Federation>) -> Double {
    Double::start_with(Options {
        federation,
        ..Options::default()
    })
    .await
}

/// The credential as a pod runs it, but with the double as its authority
/// host (the explicit cloud, not `AZURE_AUTHORITY_HOST`: tests share the
/// environment) and the double's CA as its only trust anchor.
fn credential(
    double: &Double,
    token: &Path,
    client_id: &str,
    tenant: &str,
) -> Arc<WorkloadIdentityCredential> {
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = double.authority_host();
    WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(client::http_client(double)))),
                cloud: Some(Arc::new(cloud.into())),
                retry: RetryOptions::none(),
                ..Default::default()
            },
        },
        client_id: Some(client_id.to_owned()),
        tenant_id: Some(tenant.to_owned()),
        token_file_path: Some(token.to_path_buf()),
    }))
    .expect("workload identity credential")
}

fn key_client(double: &Double, credential: Arc<WorkloadIdentityCredential>) -> KeyClient {
    let options = client::options(client::http_client(double), RetryOptions::none());
    KeyClient::new(&double.vault_url(), credential, Some(options)).expect("key client")
}

#[tokio::test]
async fn a_projected_token_gets_the_vault_token_and_the_key_client_uses_it() {
    let issuer = Issuer::new("sa-key-1");
    let double = start(Some(issuer.federation())).await;
    let file = token_file(&issuer.sign(&claims()));
    let credential = credential(&double, file.path(), CLIENT_ID, double.tenant());
    let keys = key_client(&double, credential.clone());
    crate::create_rsa(&keys, "federated", &[]).await;
    keys.get_key("federated", None).await.unwrap();
    assert_eq!(double.tokens_issued(), 1, "one exchange, then cached");
    assert_eq!(double.calls("CreateKey"), 1);
    let token = credential.get_token(SCOPES, None).await.unwrap();
    assert_eq!(token.token.secret(), double.token());
    assert_eq!(double.tokens_issued(), 1);
    assert_eq!(double.last_refusal(), None);
}

#[tokio::test]
async fn without_jwks_the_signature_is_not_checked() {
    let issuer = Issuer::new("sa-key-1");
    let double = start(Some(Federation::new(
        CLIENT_ID,
        assertion::ISSUER,
        assertion::SUBJECT,
    )))
    .await;
    let signed = issuer.sign(&claims());
    let forged = format!("{}.c2lnbmF0dXJl", signed.rsplit_once('.').unwrap().0);
    let file = token_file(&forged);
    let credential = credential(&double, file.path(), CLIENT_ID, double.tenant());
    let token = credential.get_token(SCOPES, None).await.unwrap();
    assert_eq!(token.token.secret(), double.token());
    assert_eq!(double.tokens_issued(), 1);
}

struct Case {
    name: &'static str,
    token: String,
    client_id: &'static str,
    tenant: Option<&'static str>,
    federation: bool,
    status: u16,
    code: &'static str,
    says: &'static str,
}

fn case(
    name: &'static str,
    token: String,
    status: u16,
    code: &'static str,
    says: &'static str,
) -> Case {
    Case {
        name,
        token,
        client_id: CLIENT_ID,
        tenant: None,
        federation: true,
        status,
        code,
        says,
    }
}

fn with(change: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let mut claims = claims();
    change(&mut claims);
    claims
}

#[tokio::test]
async fn each_federation_mismatch_is_refused_with_its_aadsts_description() {
    let issuer = Issuer::new("sa-key-1");
    let good = issuer.sign(&claims());
    let cases = [
        case(
            "wrong subject",
            issuer.sign(&with(|c| {
                c["sub"] = "system:serviceaccount:default:other".into()
            })),
            401,
            "700213",
            "assertion subject 'system:serviceaccount:default:other'",
        ),
        case(
            "wrong audience",
            issuer.sign(&with(|c| {
                c["aud"] = serde_json::json!(["https://kubernetes.default.svc"])
            })),
            401,
            "700212",
            "assertion audience 'https://kubernetes.default.svc'",
        ),
        case(
            "wrong issuer",
            issuer.sign(&with(|c| c["iss"] = "https://other.example".into())),
            401,
            "700211",
            "assertion issuer 'https://other.example'",
        ),
        case(
            "expired",
            issuer.sign(&with(|c| {
                c["exp"] = (now() - 600).into();
                c["nbf"] = (now() - 4200).into();
            })),
            401,
            "700024",
            "not within its valid time range",
        ),
        case(
            "not yet valid",
            issuer.sign(&with(|c| c["nbf"] = (now() + 600).into())),
            401,
            "700024",
            "not valid for",
        ),
        case(
            "signed by another key under the same kid",
            Issuer::new("sa-key-1").sign(&claims()),
            401,
            "700027",
            "signature does not verify",
        ),
        case(
            "signed by an unknown kid",
            Issuer::new("sa-key-2").sign(&claims()),
            401,
            "700027",
            "no RSA key with kid 'sa-key-2'",
        ),
        case(
            "not a JWT",
            "not-a-jwt".to_owned(),
            401,
            "50027",
            "JWT token is invalid or malformed",
        ),
        Case {
            client_id: "99999999-2222-3333-4444-555555555555",
            ..case(
                "wrong client id",
                good.clone(),
                400,
                "700016",
                "'99999999-2222-3333-4444-555555555555' was not found",
            )
        },
        Case {
            tenant: Some("00000000-0000-0000-0000-0000000000aa"),
            ..case(
                "wrong tenant",
                good.clone(),
                400,
                "90002",
                "Tenant '00000000-0000-0000-0000-0000000000aa' not found",
            )
        },
        Case {
            federation: false,
            ..case(
                "no federation",
                good.clone(),
                400,
                "70021",
                "No federated identity credential",
            )
        },
    ];
    for case in cases {
        let double = start(case.federation.then(|| issuer.federation())).await;
        let file = token_file(&case.token);
        let tenant = case.tenant.unwrap_or(double.tenant());
        let credential = credential(&double, file.path(), case.client_id, tenant);
        let error = credential.get_token(SCOPES, None).await.unwrap_err();
        let name = case.name;
        let text = error.to_string();
        assert!(
            matches!(error.kind(), ErrorKind::Credential),
            "{name}: {error:?}"
        );
        assert!(
            text.starts_with(&format!(
                "WorkloadIdentityCredential authentication failed. AADSTS{}: ",
                case.code
            )),
            "{name}: {text}"
        );
        assert!(text.contains(case.says), "{name}: {text}");
        assert!(
            !text.contains(&case.token),
            "{name}: the assertion is echoed"
        );
        match error.downcast_ref::<azure_core::Error>().map(|e| e.kind()) {
            Some(ErrorKind::HttpResponse {
                status, error_code, ..
            }) => {
                assert_eq!(u16::from(*status), case.status, "{name}");
                assert_eq!(error_code.as_deref(), Some(case.code), "{name}");
            }
            other => panic!("{name}: not an HTTP error: {other:?}"),
        }
        assert_eq!(double.tokens_issued(), 0, "{name}");
        let refusal = double.last_refusal().expect("a refusal");
        assert!(text.contains(&refusal), "{name}: {refusal}");
    }
}

#[tokio::test]
async fn a_refused_assertion_fails_the_key_client_call_with_the_description() {
    let issuer = Issuer::new("sa-key-1");
    let double = start(Some(issuer.federation())).await;
    let claims = with(|c| c["sub"] = "system:serviceaccount:default:default".into());
    let file = token_file(&issuer.sign(&claims));
    let keys = key_client(
        &double,
        credential(&double, file.path(), CLIENT_ID, double.tenant()),
    );
    let error = keys.get_key("any", None).await.unwrap_err();
    assert!(error.to_string().contains("AADSTS700213"), "{error}");
    assert_eq!(double.calls("Challenge"), 1, "only the bare request");
    assert_eq!(double.calls("GetKey"), 0);
}

#[tokio::test]
async fn a_rotated_issuer_key_is_trusted_once_the_federation_has_it() {
    let old = Issuer::new("sa-key-1");
    let double = start(Some(old.federation())).await;
    let rotated = Issuer::new("sa-key-2");
    let file = token_file(&rotated.sign(&claims()));
    let credential = credential(&double, file.path(), CLIENT_ID, double.tenant());
    let error = credential.get_token(SCOPES, None).await.unwrap_err();
    assert!(error.to_string().contains("AADSTS700027"), "{error}");
    double.set_federation(Some(rotated.federation()));
    let token = credential.get_token(SCOPES, None).await.unwrap();
    assert_eq!(token.token.secret(), double.token());
    assert_eq!(double.tokens_issued(), 1);
}
