//! Broken manifests are refused twice: by the API server's schema check
//! (emulated with a real JSON-schema validator against the committed CRDs,
//! after pruning as the server does), and by `validate()`, whose message the
//! admission webhook shows the user.

mod common;

use common::{api_server_verdict, yaml_documents};
use keyward_crds::manifest::check;
use serde_json::Value;

fn object(yaml: &str) -> Value {
    let mut docs = yaml_documents(yaml);
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

/// Asserts both layers refuse `yaml`: the schema with an error at
/// `schema_path` containing `schema_says`, and `validate()` with a message
/// containing each of `user_sees`.
fn refused(yaml: &str, schema_path: &str, schema_says: &str, user_sees: &[&str]) {
    let object = object(yaml);
    match api_server_verdict(&object) {
        Ok(()) => panic!("the API server schema accepts:\n{yaml}"),
        Err(errors) => assert!(
            errors
                .iter()
                .any(|e| e.starts_with(schema_path) && e.contains(schema_says)),
            "expected a schema error at {schema_path} containing {schema_says:?}, got {errors:#?}"
        ),
    }
    let message = match check(object) {
        Ok(parsed) => panic!("validate() accepts {parsed:?}"),
        Err(invalid) => invalid.to_string(),
    };
    for expected in user_sees {
        assert!(
            message.contains(expected),
            "message lacks {expected:?}:\n{message}"
        );
    }
}

/// Asserts only the Rust layer refuses (cross-field rules a 1.20 schema
/// without CEL cannot express).
fn refused_by_webhook(yaml: &str, user_sees: &[&str]) {
    let object = object(yaml);
    if let Err(errors) = api_server_verdict(&object) {
        panic!("expected the schema to accept this, got {errors:#?}");
    }
    let message = check(object)
        .expect_err("validate() must refuse")
        .to_string();
    for expected in user_sees {
        assert!(
            message.contains(expected),
            "message lacks {expected:?}:\n{message}"
        );
    }
}

const KEY_HEAD: &str =
    "apiVersion: keyward.io/v1alpha1\nkind: ManagedKey\nmetadata: {name: k, namespace: n}\n";
const POLICY_HEAD: &str =
    "apiVersion: keyward.io/v1alpha1\nkind: KeyRotationPolicy\nmetadata: {name: p, namespace: n}\n";
const SECRET_HEAD: &str =
    "apiVersion: keyward.io/v1alpha1\nkind: SealedSecret\nmetadata: {name: s, namespace: n}\n";

#[test]
fn unknown_provider() {
    refused(
        &format!("{KEY_HEAD}spec:\n  provider:\n    vault: {{address: https://vault:8200}}\n"),
        "/spec/provider",
        "less than 1 property",
        &[
            "spec.provider.vault: unknown field `vault`",
            "fields allowed at `spec.provider`: aws, azure, gcp, local, pkcs11",
            "spec.provider: no provider is set; set exactly one of local, aws, gcp, azure, pkcs11",
        ],
    );
}

#[test]
fn two_providers_at_once() {
    refused(
        &format!("{KEY_HEAD}spec:\n  provider:\n    local: {{}}\n    aws: {{region: eu-west-1}}\n"),
        "/spec/provider",
        "more than 1 property",
        &[
            "spec.provider: sets 2 providers (local, aws); a key lives in exactly one, so keep one of them",
        ],
    );
}

#[test]
fn share_with_a_namespace_pattern() {
    refused(
        &format!(
            "{KEY_HEAD}spec:\n  provider: {{local: {{}}}}\n  shareWith:\n    namespaces: [billing, team-*]\n"
        ),
        "/spec/shareWith/namespaces/1",
        "does not match",
        &[
            "spec.shareWith.namespaces[1]: `team-*` is not a namespace name; list namespace names, or `*` for every namespace",
        ],
    );
}

#[test]
fn deletion_window_of_three_days() {
    refused(
        &format!("{KEY_HEAD}spec:\n  provider: {{local: {{}}}}\n  deletionWindow: 3d\n"),
        "/spec/deletionWindow",
        "does not match",
        &["spec.deletionWindow: is 3d; it must be whole days from 7d to 30d (e.g. `30d`)"],
    );
}

#[test]
fn deletion_window_in_hours_is_explained() {
    refused(
        &format!("{KEY_HEAD}spec:\n  provider: {{local: {{}}}}\n  deletionWindow: 200h\n"),
        "/spec/deletionWindow",
        "does not match",
        &["is 200h; it must be whole days from 7d to 30d"],
    );
}

#[test]
fn bad_duration_string() {
    refused(
        &format!("{POLICY_HEAD}spec:\n  rotationPeriod: 90days\n"),
        "/spec/rotationPeriod",
        "does not match",
        &[
            "spec.rotationPeriod: duration `90days` uses unknown unit `days`",
            "e.g. `90d`",
        ],
    );
}

#[test]
fn duration_without_unit() {
    refused(
        &format!("{POLICY_HEAD}spec:\n  decryptRetention: \"90\"\n"),
        "/spec/decryptRetention",
        "does not match",
        &["spec.decryptRetention: duration `90` has no unit after `90`"],
    );
}

#[test]
fn unknown_algorithm() {
    refused(
        &format!("{KEY_HEAD}spec:\n  provider: {{local: {{}}}}\n  algorithm: AES128\n"),
        "/spec/algorithm",
        "is not one of",
        &["spec.algorithm: unknown variant `AES128`, expected one of `AES256`, `RSA3072`"],
    );
}

#[test]
fn misspelt_field() {
    refused(
        &format!("{POLICY_HEAD}spec:\n  rotationPeriode: 90d\n  maxOperations: 0\n"),
        "/spec/maxOperations",
        "less than the minimum",
        &[
            "spec.rotationPeriode: unknown field `rotationPeriode`",
            "rotationPeriod",
            "spec.maxOperations: must be at least 1",
        ],
    );
}

#[test]
fn seal_usage_needs_an_rsa_key() {
    refused_by_webhook(
        &format!(
            "{KEY_HEAD}spec:\n  provider: {{local: {{}}}}\n  algorithm: AES256\n  usage: Seal\n"
        ),
        &[
            "spec.usage: AES256 keys cannot be used for Seal; use algorithm RSA3072 or RSA4096 for Seal, or usage Wrap for AES256",
        ],
    );
}

#[test]
fn aws_multi_region_and_custom_key_stores_are_refused_until_implemented() {
    refused_by_webhook(
        &format!(
            "{KEY_HEAD}spec:\n  provider:\n    aws: {{region: eu-west-1, multiRegion: true, customKeyStoreId: cks-1234567890abcdef0}}\n"
        ),
        &[
            "spec.provider.aws.multiRegion: Keyward's AWS provider does not create multi-Region keys yet",
            "spec.provider.aws.customKeyStoreId: Keyward's AWS provider does not create keys in custom key stores yet",
        ],
    );
}

#[test]
fn notice_longer_than_rotation() {
    refused_by_webhook(
        &format!("{POLICY_HEAD}spec:\n  rotationPeriod: 30d\n  expiryNotice: 60d\n"),
        &["spec.expiryNotice: is 60d, not shorter than rotationPeriod 30d"],
    );
}

#[test]
fn native_rotation_by_operation_count() {
    refused_by_webhook(
        &format!("{POLICY_HEAD}spec:\n  strategy: Native\n  maxOperations: 1000\n"),
        &[
            "providers rotate natively on a schedule only; remove maxOperations or use strategy Managed",
        ],
    );
}

#[test]
fn sealed_secret_mistakes() {
    refused(
        &format!(
            "{SECRET_HEAD}spec:\n  keyRef: {{name: k}}\n  scope: cluster\n  encryptedData: {{}}\n"
        ),
        "/spec",
        "",
        &["spec.scope: unknown variant `cluster`, expected `strict` or `namespace`"],
    );
    refused(
        &format!("{SECRET_HEAD}spec:\n  keyRef: {{name: k}}\n  encryptedData: {{}}\n"),
        "/spec/encryptedData",
        "less than 1 property",
        &["spec.encryptedData: is empty; add at least one item with `keyward seal`"],
    );
    refused(
        &format!(
            "{SECRET_HEAD}spec:\n  keyRef: {{name: k}}\n  encryptedData: {{password: hunter2}}\n"
        ),
        "/spec/encryptedData/password",
        "does not match",
        &["spec.encryptedData[password]: is not a sealed value"],
    );
    refused(
        &format!(
            "{SECRET_HEAD}spec:\n  keyRef: {{name: k}}\n  access: {{serviceAccounts: [\"system:serviceaccount:n:api\"]}}\n  encryptedData: {{a: AAAA}}\n"
        ),
        "/spec/access/serviceAccounts/0",
        "does not match",
        &["spec.access.serviceAccounts[0]: write the ServiceAccount name only, e.g. `api`"],
    );
    refused_by_webhook(
        &format!(
            "{SECRET_HEAD}spec:\n  keyRef: {{name: k}}\n  encryptedData: {{\"..data\": AAAA}}\n"
        ),
        &["spec.encryptedData[..data]: item name `..data` is reserved"],
    );
}

#[test]
fn wrong_api_version_and_kind() {
    let message = check(object("apiVersion: keyward.io/v1\nkind: ManagedKey\n"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "apiVersion: is `keyward.io/v1`; Keyward resources use `keyward.io/v1alpha1`"
    );
    let message = check(object("apiVersion: keyward.io/v1alpha1\nkind: Key\n"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "kind: is `Key`; use one of ManagedKey, KeyRotationPolicy, SealedSecret"
    );
}

#[test]
fn a_minimal_key_is_accepted_by_both() {
    let object = object(&format!("{KEY_HEAD}spec:\n  provider: {{local: {{}}}}\n"));
    assert_eq!(api_server_verdict(&object), Ok(()));
    check(object).expect("a local AES256 key with every default is valid");
}

/// The manifests `crds/check-apiserver.sh` sends to a real 1.20 API server
/// are refused here too, by the emulated schema check and by `validate()`.
#[test]
fn api_server_fixtures_are_refused_by_both_layers() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apiserver");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("tests/apiserver exists") {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# expect: "),
            "{} has no expect line",
            path.display()
        );
        let object = object(&text);
        assert!(api_server_verdict(&object).is_err(), "{}", path.display());
        assert!(check(object).is_err(), "{}", path.display());
        count += 1;
    }
    assert!(count >= 4, "expected the four issue cases, found {count}");
}

#[test]
fn a_restricted_secret_is_not_materialised() {
    refused_by_webhook(
        &format!(
            "{SECRET_HEAD}spec:\n  keyRef: {{name: k}}\n  access: {{serviceAccounts: [api]}}\n  template: {{type: Opaque}}\n  encryptedData: {{password: S1dSRA==}}\n"
        ),
        &["spec.template: cannot be used with spec.access"],
    );
}

#[test]
fn existing_key_references_that_cannot_name_a_key_of_the_provider() {
    refused_by_webhook(
        &format!("{KEY_HEAD}spec:\n  provider: {{local: {{}}}}\n  existingKey: anything\n"),
        &["spec.existingKey: the local keyring holds only keys Keyward made"],
    );
    refused_by_webhook(
        &format!(
            "{KEY_HEAD}spec:\n  provider: {{aws: {{region: eu-west-1}}}}\n  existingKey: terraform/payments\n"
        ),
        &[
            "`terraform/payments` is not an AWS KMS key reference",
            "`alias/...`",
        ],
    );
    refused_by_webhook(
        &format!(
            "{KEY_HEAD}spec:\n  provider: {{gcp: {{project: acme-prod, location: global, keyRing: main}}}}\n  existingKey: projects/other/locations/global/keyRings/main/cryptoKeys/db\n"
        ),
        &["give `projects/acme-prod/locations/global/keyRings/main/cryptoKeys/<name>`"],
    );
    refused_by_webhook(
        &format!(
            "{KEY_HEAD}spec:\n  provider: {{pkcs11: {{tokenLabel: t}}}}\n  algorithm: RSA3072\n  usage: Seal\n  existingKey: hr-key\n"
        ),
        &["PKCS#11 keys can be adopted as AES256 only"],
    );
    for fine in [
        "{aws: {region: eu-west-1}}\n  existingKey: alias/terraform/payments",
        "{aws: {region: eu-west-1}}\n  existingKey: 1234abcd-12ab-34cd-56ef-1234567890ab",
        "{aws: {region: eu-west-1}}\n  existingKey: arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "{pkcs11: {tokenLabel: t}}\n  existingKey: hr-key",
        "{azure: {vaultUrl: 'https://acme.vault.azure.net/'}}\n  algorithm: RSA3072\n  usage: Seal\n  existingKey: https://acme.vault.azure.net/keys/terraform-db",
    ] {
        let yaml = format!("{KEY_HEAD}spec:\n  provider: {fine}\n");
        check(object(&yaml)).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    }
}

#[test]
fn tags_the_provider_cannot_keep_are_refused() {
    refused_by_webhook(
        &format!("{KEY_HEAD}spec:\n  provider: {{local: {{}}}}\n  tags: {{team: payments}}\n"),
        &["spec.tags: the local provider keeps no tags; remove spec.tags"],
    );
    refused_by_webhook(
        &format!(
            "{KEY_HEAD}spec:\n  provider: {{gcp: {{project: my-project, location: europe-west1, keyRing: r}}}}\n  tags: {{Team: Payments, keyward-owner: x}}\n"
        ),
        &[
            "spec.tags[Team]: a Cloud KMS label key starts with a lowercase letter",
            "spec.tags[keyward-owner]: label keys starting keyward- are reserved",
        ],
    );
    refused_by_webhook(
        &format!(
            "{KEY_HEAD}spec:\n  provider: {{aws: {{region: eu-west-1}}}}\n  tags: {{\"aws:cost\": x, \"keyward.io/owner\": y, ok: \"tab\\there\"}}\n"
        ),
        &[
            "spec.tags[aws:cost]: tag keys starting aws: or keyward.io/ are reserved",
            "spec.tags[keyward.io/owner]: tag keys starting aws: or keyward.io/ are reserved",
            "spec.tags[ok]: an AWS tag value has at most 256",
        ],
    );
}

#[test]
fn azure_keys_key_vault_cannot_make_are_refused_with_what_it_can() {
    const VAULT: &str = "{azure: {vaultUrl: https://acme.vault.azure.net}}";
    refused_by_webhook(
        &format!("{KEY_HEAD}spec:\n  provider: {VAULT}\n"),
        &[
            "spec.usage: Azure Key Vault has no symmetric keys",
            "use algorithm RSA3072 with usage Seal",
        ],
    );
    refused_by_webhook(
        &format!("{KEY_HEAD}spec:\n  provider: {VAULT}\n  algorithm: ED25519\n  usage: Sign\n"),
        &[
            "the azure provider does not make ED25519 signing keys",
            "RSA3072 or RSA4096 or ECP256",
        ],
    );
    refused_by_webhook(
        &format!(
            "{KEY_HEAD}spec:\n  provider: {VAULT}\n  algorithm: RSA3072\n  usage: Seal\n  tags: {{a: '1', b: '2', c: '3', d: '4', e: '5', f: '6', g: '7', h: '8', i: '9', keyward-x: '10'}}\n"
        ),
        &[
            "spec.tags: 10 tags; Key Vault takes 15 per key version and Keyward keeps 6 of its own, so at most 9",
            "spec.tags[keyward-x]: tag names starting keyward- are reserved",
        ],
    );
    refused_by_webhook(
        &format!(
            "{KEY_HEAD}spec:\n  provider: {VAULT}\n  algorithm: RSA3072\n  usage: Seal\n  existingKey: https://other.vault.azure.net/keys/db\n"
        ),
        &[
            "`https://other.vault.azure.net/keys/db` is not a key of the vault in spec.provider.azure; give `https://acme.vault.azure.net/keys/<name>` without a version",
        ],
    );
    refused_by_webhook(
        &format!(
            "{KEY_HEAD}spec:\n  provider: {VAULT}\n  algorithm: RSA3072\n  usage: Seal\n  existingKey: https://acme.vault.azure.net/keys/db/0123456789abcdef0123456789abcdef\n"
        ),
        &["without a version"],
    );
    refused(
        &format!(
            "{KEY_HEAD}spec:\n  provider: {{azure: {{vaultUrl: http://acme.vault.azure.net}}}}\n  algorithm: RSA3072\n  usage: Seal\n"
        ),
        "/spec/provider/azure/vaultUrl",
        "does not match",
        &["spec.provider.azure.vaultUrl: `http://acme.vault.azure.net` is not a vault URL"],
    );
    for fine in [
        "RSA3072\n  usage: Seal\n  tags: {team: payments, Cost Centre: '42'}",
        "RSA4096\n  usage: Seal",
        "RSA3072\n  usage: Sign",
        "ECP256\n  usage: Sign",
    ] {
        let yaml = format!("{KEY_HEAD}spec:\n  provider: {VAULT}\n  algorithm: {fine}\n");
        check(object(&yaml)).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        api_server_verdict(&object(&yaml)).unwrap_or_else(|e| panic!("{yaml}: {e:?}"));
    }
}
