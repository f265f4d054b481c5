//! `--log-format json` makes every log line one JSON object with the event's
//! fields at the top level; a format that does not exist stops the start
//! with what is allowed. Runs the built binary with no cluster to reach:
//! it logs its start-up lines, then fails to find the API server.

use std::process::Command;

fn operator() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward-operator"));
    command
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "info");
    command
}

#[test]
fn json_lines_are_json_objects() {
    let out = operator().args(["--log-format", "json"]).output().unwrap();
    assert!(!out.status.success(), "no cluster, so the operator stops");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        !lines.is_empty(),
        "nothing logged; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            event["level"].is_string() && event["message"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn an_unknown_format_is_refused_with_the_choices() {
    let out = operator().args(["--log-format", "yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("\"text\" or \"json\""), "{stderr}");
}
