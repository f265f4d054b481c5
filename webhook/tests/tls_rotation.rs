//! The self-bootstrapped certificate is renewed on a live server: with a
//! 3 s serving lifetime, a handshake a few seconds apart sees a new serial
//! and a later notAfter, still chaining to the same CA (the client trusts
//! only the original CA), without a restart.

use keyward_webhook::metrics::metrics;
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::server::ServerLimits;
use keyward_webhook::tls::der::facts;
use keyward_webhook::tls::probe::serving_certificate;
use keyward_webhook::tls::resolver::SwappableCert;
use keyward_webhook::tls::rotation::Renewal;
use keyward_webhook::tls::{Lifetimes, bootstrap_with};
use keyward_webhook::{AppState, admission_router, server};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn serving_certificate_is_renewed_under_a_running_listener() {
    let lifetimes = Lifetimes {
        ca: Duration::from_secs(3600),
        leaf: Duration::from_secs(3),
    };
    let sans = vec!["127.0.0.1".to_owned()];
    let made = bootstrap_with(&sans, &lifetimes).unwrap();
    let ca_pem = made.ca_pem.clone();
    let cert = SwappableCert::new(&made.cert_pem, &made.key_pem).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let state = AppState {
        injector: Arc::new(InjectorConfig {
            image: "i".into(),
            image_pull_policy: None,
            unseal_url: "https://127.0.0.1:1/v1/unseal".into(),
            ca_pem: None,
            default_delivery: Default::default(),
        }),
        unsealer: None,
    };
    let serving = tokio::spawn(server::serve_tls(
        listener,
        cert.server_config().unwrap(),
        admission_router(state),
        ServerLimits::admission(),
    ));
    let renewals = metrics().certificate_renewals();
    let renewing = tokio::spawn(
        Renewal {
            sans,
            lifetimes,
            client: None,
            secret: None,
            mutating_webhook_config: None,
            validating_webhook_config: None,
            ca_out: None,
            on_new_ca: None,
        }
        .run(cert, made),
    );

    let first = facts(
        &serving_certificate(&address, "127.0.0.1", &ca_pem)
            .await
            .unwrap(),
    )
    .unwrap();
    let mut seen = vec![first.clone()];
    // Due 2 s after issue (a third of 3 s before expiry): look for 5 s.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = facts(
            &serving_certificate(&address, "127.0.0.1", &ca_pem)
                .await
                .unwrap(),
        )
        .unwrap();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
    }
    renewing.abort();
    serving.abort();
    assert!(seen.len() >= 2, "never renewed: {seen:?}");
    for pair in seen.windows(2) {
        assert_ne!(pair[0].serial, pair[1].serial);
        assert!(pair[1].not_after > pair[0].not_after, "{pair:?}");
    }
    assert!(metrics().certificate_renewals() > renewals);
    println!(
        "renewed {} time(s) in 5 s; serials {:?}",
        seen.len() - 1,
        seen.iter().map(|f| hex(&f.serial)).collect::<Vec<_>>()
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
