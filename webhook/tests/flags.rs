//! `keyward-webhook serve` refuses bad provider flags before it bootstraps
//! TLS or calls the API server (no cluster here).

use std::process::Command;

fn serve(extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keyward-webhook"))
        .args([
            "serve",
            "--injector-image=i",
            "--unseal-url=https://x/v1/unseal",
        ])
        .args(["--tls-san=127.0.0.1"])
        .args(extra)
        .env_clear()
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("running keyward-webhook")
}

#[test]
fn a_bad_provider_flag_stops_serve_before_it_connects() {
    let out = serve(&["--gcp-endpoint=https://kms.example"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "usage-error exit code: {stderr}"
    );
    assert!(
        stderr.contains("--gcp-endpoint (KEYWARD_GCP_ENDPOINT) is set but Cloud KMS is off")
            && stderr.contains("keyward-webhook serve"),
        "{stderr}"
    );
}

#[test]
fn good_flags_get_as_far_as_the_api_server() {
    let out = serve(&["--aws-region=eu-west-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("connecting to the API server"), "{stderr}");
}

#[test]
fn listener_limits_that_cannot_work_stop_serve_before_it_connects() {
    let out = serve(&["--idle-timeout-seconds=5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("idle timeout") && !stderr.contains("API server"),
        "{stderr}"
    );
}
