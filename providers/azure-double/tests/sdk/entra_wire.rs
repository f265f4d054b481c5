//! The Entra token endpoint's HTTP shapes, seen without the SDK: the
//! success JSON `azure_identity` parses, Entra's error JSON, and the
//! request checks the credential never trips.

use crate::assertion::{CLIENT_ID, Issuer, claims};
use crate::client;
use keyward_azure_double::{Double, Options};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// POSTs `body` as a form to the double's token endpoint for `tenant`.
async fn post(double: &Double, tenant: &str, body: String) -> (u16, serde_json::Value) {
    let response = client::http_client(double)
        .post(format!(
            "{}/{tenant}/oauth2/v2.0/token",
            double.authority_host()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    let json = serde_json::from_slice(&response.bytes().await.unwrap()).expect("JSON");
    (status, json)
}

#[tokio::test]
async fn success_and_error_bodies_have_entras_shape() {
    let issuer = Issuer::new("k");
    let double = Double::start_with(Options {
        federation: Some(issuer.federation()),
        ..Options::default()
    })
    .await;
    let assertion = issuer.sign(&claims());
    let mut pairs = vec![
        ("client_assertion", assertion.as_str()),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_id", CLIENT_ID),
        ("grant_type", "client_credentials"),
        ("scope", "https://vault.azure.net/.default"),
    ];
    let (status, json) = post(&double, double.tenant(), form(&pairs)).await;
    assert_eq!(status, 200);
    assert_eq!(
        json,
        serde_json::json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": double.token(),
        })
    );

    pairs[4].1 = "https://vault.azure.net/keys.read";
    let (status, json) = post(&double, double.tenant(), form(&pairs)).await;
    assert_eq!(status, 400);
    assert_eq!(json["error"], "invalid_scope");
    assert_eq!(json["error_codes"], serde_json::json!([1002012]));
    let description = json["error_description"].as_str().unwrap();
    assert!(description.starts_with("AADSTS1002012: "), "{description}");
    assert_eq!(
        json["error_uri"],
        "https://login.microsoftonline.com/error?code=1002012"
    );

    pairs[4].1 = "https://vault.azure.net/.default";
    pairs[1].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer";
    let (status, json) = post(&double, double.tenant(), form(&pairs)).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        json["error_description"]
            .as_str()
            .unwrap()
            .contains("client_assertion_type")
    );

    pairs[1].1 = ASSERTION_TYPE;
    pairs[3].1 = "authorization_code";
    let (status, json) = post(&double, double.tenant(), form(&pairs)).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    let (status, json) = post(&double, double.tenant(), form(&pairs[..3])).await;
    assert_eq!(status, 400);
    assert_eq!(
        json["error_description"],
        "AADSTS900144: The request body must contain the following parameter: 'grant_type'. (Keyward test double)"
    );
    assert_eq!(double.tokens_issued(), 1);
}

#[tokio::test]
async fn the_endpoint_takes_no_bearer_token_and_only_post() {
    let double = Double::start().await;
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        double.authority_host(),
        double.tenant()
    );
    let response = client::http_client(&double).get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    // Not the Key Vault challenge: no bearer token is asked for.
    assert!(response.headers().get("www-authenticate").is_none());
    assert_eq!(double.calls("Challenge"), 0);
    // The vault being down is not Entra being down.
    double.set_down(true);
    let (status, json) = post(&double, double.tenant(), String::new()).await;
    assert_eq!(
        (status, json["error_codes"][0].as_u64()),
        (400, Some(900144))
    );
}
