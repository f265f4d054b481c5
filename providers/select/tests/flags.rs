//! The provider flags as a binary sees them: parsed by clap (flattened),
//! checked into the provider crates' configs, errors naming the flag.

use clap::{CommandFactory, Parser};
use keyward_provider_gcp::CredentialSource;
use keyward_provider_select::{FlagError, ProviderArgs};

#[derive(Parser)]
struct Binary {
    #[command(flatten)]
    providers: ProviderArgs,
}

fn parse(args: &[&str]) -> ProviderArgs {
    let argv = std::iter::once("bin").chain(args.iter().copied());
    Binary::try_parse_from(argv).unwrap().providers
}

fn refused(args: &[&str]) -> FlagError {
    parse(args).plan().expect_err("the flags should be refused")
}

#[test]
fn no_flags_means_local_only() {
    let args = parse(&[]);
    assert_eq!(args, ProviderArgs::default());
    let plan = args.plan().unwrap();
    assert!(plan.aws.is_none() && plan.gcp.is_none() && plan.pkcs11.is_none());
}

#[test]
fn aws_flags_fill_the_aws_config() {
    let plan = parse(&[
        "--aws-region=eu-west-1",
        "--aws-endpoint-url=http://127.0.0.1:5000",
        "--aws-alias-prefix=team-a",
    ])
    .plan()
    .unwrap();
    let aws = plan.aws.unwrap();
    assert_eq!(aws.region.as_deref(), Some("eu-west-1"));
    assert_eq!(aws.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(aws.alias_prefix, "team-a");
    assert!(!aws.verify_key_state, "AWS enforces key state itself");
}

#[test]
fn aws_mistakes_name_the_flag_and_the_fix() {
    let e = refused(&["--aws-endpoint-url=http://127.0.0.1:5000"]);
    assert_eq!(e.flag, "aws-endpoint-url");
    assert!(e.to_string().contains("--aws-region"), "{e}");
    for bad in ["eu_west_1", "Europe", "eu-west-", "eu-west-one"] {
        let e = refused(&[&format!("--aws-region={bad}")]);
        assert_eq!(e.flag, "aws-region", "{bad}");
        assert!(e.to_string().contains("eu-west-1"), "{e}");
    }
    assert_eq!(
        refused(&["--aws-region=us-gov-west-1", "--aws-endpoint-url=kms.local"]).flag,
        "aws-endpoint-url"
    );
    let e = refused(&["--aws-region=eu-west-1", "--aws-alias-prefix=aws-x"]);
    assert_eq!(e.flag, "aws-alias-prefix");
    assert!(
        e.to_string()
            .starts_with("--aws-alias-prefix (KEYWARD_AWS_ALIAS_PREFIX) "),
        "{e}"
    );
}

#[test]
fn pkcs11_needs_module_label_and_pin_file_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("libvendor.so");
    let pin = dir.path().join("pin");
    std::fs::write(&module, b"not really a library").unwrap();
    std::fs::write(&pin, b"1234\n").unwrap();
    let (module, pin) = (module.display().to_string(), pin.display().to_string());

    let e = refused(&["--pkcs11-token-label=keyward"]);
    assert_eq!(e.flag, "pkcs11-module");
    let e = refused(&[
        &format!("--pkcs11-module={module}"),
        "--pkcs11-token-label=keyward",
    ]);
    assert_eq!(e.flag, "pkcs11-pin-file");
    let e = refused(&[
        &format!("--pkcs11-module={module}"),
        &format!("--pkcs11-pin-file={pin}"),
    ]);
    assert_eq!(e.flag, "pkcs11-token-label");
    let e = refused(&[
        "--pkcs11-module=/nowhere/lib.so",
        "--pkcs11-token-label=keyward",
        &format!("--pkcs11-pin-file={pin}"),
    ]);
    assert_eq!(e.flag, "pkcs11-module");
    assert!(e.to_string().contains("/nowhere/lib.so"), "{e}");
    let e = refused(&[
        &format!("--pkcs11-module={module}"),
        &format!("--pkcs11-token-label={}", "x".repeat(33)),
        &format!("--pkcs11-pin-file={pin}"),
    ]);
    assert_eq!(e.flag, "pkcs11-token-label");

    let plan = parse(&[
        &format!("--pkcs11-module={module}"),
        "--pkcs11-token-label=keyward",
        "--pkcs11-slot=3",
        &format!("--pkcs11-pin-file={pin}"),
        "--pkcs11-max-sessions=2",
    ])
    .plan()
    .unwrap();
    let p11 = plan.pkcs11.unwrap();
    assert_eq!(
        (p11.token_label.as_str(), p11.slot, p11.max_sessions),
        ("keyward", Some(3), 2)
    );
    assert_eq!(p11.pin_file.display().to_string(), pin);
}

#[test]
fn pin_is_never_a_flag_value() {
    // Only the file path is accepted: a PIN on the command line would show
    // up in `ps` and in the pod spec.
    assert!(Binary::try_parse_from(["bin", "--pkcs11-pin=1234"]).is_err());
}

#[test]
fn gcp_key_ring_must_be_a_full_resource_name() {
    let e = refused(&["--gcp-key-ring=my-ring"]);
    assert_eq!(e.flag, "gcp-key-ring");
    assert!(
        e.to_string()
            .contains("projects/PROJECT/locations/LOCATION/keyRings/RING"),
        "{e}"
    );
    let e = refused(&["--gcp-endpoint=http://127.0.0.1:9000"]);
    assert_eq!(e.flag, "gcp-endpoint");
    let plan = parse(&[
        "--gcp-key-ring=projects/acme-prod/locations/europe-west1/keyRings/keyward",
        "--gcp-endpoint=http://127.0.0.1:9000",
    ])
    .plan()
    .unwrap();
    let gcp = plan.gcp.unwrap();
    assert_eq!(
        gcp.key_ring,
        "projects/acme-prod/locations/europe-west1/keyRings/keyward"
    );
    assert_eq!(gcp.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
}

#[test]
fn gcp_anonymous_reaches_a_test_double_only_with_an_endpoint() {
    let ring = "--gcp-key-ring=projects/keyward-test/locations/europe-west1/keyRings/keyward";
    // Off by default: Application Default Credentials.
    let gcp = parse(&[ring]).plan().unwrap().gcp.unwrap();
    assert_eq!(gcp.credentials, CredentialSource::ApplicationDefault);

    let gcp = parse(&[
        ring,
        "--gcp-endpoint=http://127.0.0.1:9000",
        "--gcp-anonymous",
    ])
    .plan()
    .unwrap()
    .gcp
    .unwrap();
    assert_eq!(gcp.credentials, CredentialSource::Anonymous);
    assert_eq!(gcp.endpoint.as_deref(), Some("http://127.0.0.1:9000"));

    // Without an endpoint it would send unauthenticated calls to Google.
    let e = refused(&[ring, "--gcp-anonymous"]);
    assert_eq!(e.flag, "gcp-anonymous");
    let text = e.to_string();
    assert!(
        text.starts_with("--gcp-anonymous (KEYWARD_GCP_ANONYMOUS) ")
            && text.contains("--gcp-endpoint")
            && text.contains("test double"),
        "{text}"
    );
    // Without a key ring Cloud KMS is off: the flag is a mistake.
    let e = refused(&["--gcp-anonymous", "--gcp-endpoint=http://127.0.0.1:9000"]);
    assert_eq!(e.flag, "gcp-endpoint");
    let e = refused(&["--gcp-anonymous"]);
    assert_eq!(e.flag, "gcp-anonymous");
    assert!(e.to_string().contains("--gcp-key-ring"), "{e}");
}

#[test]
fn gcp_anonymous_has_its_variable_and_says_it_is_for_test_doubles() {
    let command = Binary::command();
    let flag = command
        .get_arguments()
        .find(|a| a.get_long() == Some("gcp-anonymous"))
        .expect("--gcp-anonymous");
    assert_eq!(
        flag.get_env().and_then(|v| v.to_str()),
        Some("KEYWARD_GCP_ANONYMOUS")
    );
    let help = flag.get_help().map(ToString::to_string).unwrap_or_default();
    assert!(
        help.contains("test doubles") && help.contains("--gcp-endpoint"),
        "{help}"
    );
}

#[test]
fn the_root_key_wrapping_key_must_be_outside_the_cluster_and_its_provider_on() {
    let plan = parse(&[
        "--aws-region=eu-west-1",
        "--root-key-wrapping-key=alias/keyward-root",
    ])
    .plan();
    assert!(plan.is_ok(), "{plan:?}");
    let e = refused(&["--root-key-wrapping-key=alias/keyward-root"]);
    assert_eq!(e.flag, "root-key-wrapping-key");
    assert!(e.to_string().contains("AWS KMS, which is off"), "{e}");
    assert!(e.to_string().contains("--aws-region"), "{e}");
    let e = refused(&["--root-key-wrapping-key=local-0011223344556677"]);
    assert!(e.to_string().contains("outside the cluster"), "{e}");
    let e = refused(&["--root-key-wrapping-key=my-key"]);
    assert!(e.to_string().contains("is not a key id"), "{e}");
    assert!(
        e.to_string()
            .starts_with("--root-key-wrapping-key (KEYWARD_ROOT_KEY_WRAPPING_KEY) "),
        "{e}"
    );
}

#[test]
fn azure_flags_name_the_vault_and_refuse_what_would_leak_a_token() {
    let azure = parse(&["--azure-vault-url=https://acme-prod.vault.azure.net/"])
        .plan()
        .unwrap()
        .azure
        .unwrap();
    assert_eq!(azure.vault_url, "https://acme-prod.vault.azure.net");
    assert!(azure.verify_challenge_resource && azure.ca_pem.is_none());

    // Key Vault sends no token over plain HTTP, and a path is not a vault.
    for bad in [
        "--azure-vault-url=http://acme-prod.vault.azure.net",
        "--azure-vault-url=https://acme-prod.vault.azure.net/keys/db",
    ] {
        let e = refused(&[bad]);
        assert_eq!(e.flag, "azure-vault-url", "{bad}");
        assert!(e.to_string().contains("without a path"), "{e}");
    }
    // Skipping the challenge check is for doubles, never Azure's domains.
    let e = refused(&[
        "--azure-vault-url=https://acme-prod.vault.azure.net",
        "--azure-skip-challenge-resource-check",
    ]);
    assert_eq!(e.flag, "azure-skip-challenge-resource-check");
    assert!(e.to_string().contains("test double"), "{e}");
    let double = parse(&[
        "--azure-vault-url=https://127.0.0.1:8443",
        "--azure-skip-challenge-resource-check",
    ])
    .plan()
    .unwrap()
    .azure
    .unwrap();
    assert!(!double.verify_challenge_resource);

    // Stray settings without the vault, and a CA file that is not one.
    let e = refused(&["--azure-ca-file=/etc/hostname"]);
    assert!(e.to_string().contains("--azure-vault-url"), "{e}");
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "not a certificate").unwrap();
    let ca_flag = format!("--azure-ca-file={}", not_pem.path().display());
    let e = refused(&["--azure-vault-url=https://127.0.0.1:8443", &ca_flag]);
    assert_eq!(e.flag, "azure-ca-file");
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    let e = refused(&[
        "--azure-vault-url=https://127.0.0.1:8443",
        "--azure-ca-file=/nonexistent/ca.pem",
    ]);
    assert!(e.to_string().contains("cannot be read"), "{e}");

    // A root-key wrapping key in a vault needs the vault on.
    let e = refused(&["--root-key-wrapping-key=https://acme.vault.azure.net/keys/root"]);
    assert!(
        e.to_string().contains("Azure Key Vault, which is off"),
        "{e}"
    );
}
