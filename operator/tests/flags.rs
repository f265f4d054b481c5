//! The real binary refuses bad provider flags at start, before it needs a
//! cluster: no KUBECONFIG here, so getting as far as a client would fail
//! with another message.

use std::process::Command;

fn operator(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keyward-operator"))
        .args(args)
        .env_clear()
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("running keyward-operator")
}

#[test]
fn a_bad_region_stops_the_operator_before_it_connects() {
    let out = operator(&["--aws-region=eu-west"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "usage-error exit code: {stderr}"
    );
    assert!(
        stderr.contains("--aws-region (KEYWARD_AWS_REGION)")
            && stderr.contains("`eu-west` is not an AWS Region name"),
        "{stderr}"
    );
    assert!(!stderr.contains("Kubernetes client"), "{stderr}");
}

#[test]
fn a_half_configured_provider_is_named() {
    let out = operator(&["--pkcs11-token-label=keyward"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--pkcs11-module"), "{stderr}");
}

#[test]
fn good_flags_get_past_the_check() {
    // Valid flags reach the client, which fails without a cluster.
    let out = operator(&["--aws-region=eu-west-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert_ne!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Kubernetes client"), "{stderr}");
}
