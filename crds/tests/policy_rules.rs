//! Rotation policies: NIST defaults fill unset fields, and a policy is
//! checked against the key it drives (native rotation limits).

use keyward_crds::{
    Algorithm, EffectivePolicy, HumanDuration, KeyRotationPolicySpec, KeyUsage, ManagedKeySpec,
    RotationStrategy,
};

fn key(provider_yaml: &str, algorithm: &str, usage: &str) -> ManagedKeySpec {
    serde_yaml_ng::from_str(&format!(
        "provider: {provider_yaml}\nalgorithm: {algorithm}\nusage: {usage}\n"
    ))
    .expect("key spec")
}

fn native(period: &str) -> KeyRotationPolicySpec {
    KeyRotationPolicySpec {
        strategy: RotationStrategy::Native,
        rotation_period: Some(period.parse().unwrap()),
        ..Default::default()
    }
}

#[test]
fn unset_fields_take_nist_defaults() {
    let wrap = EffectivePolicy::default_for(Algorithm::Aes256, KeyUsage::Wrap);
    assert_eq!(wrap.rotation_period, HumanDuration::from_years(1));
    assert_eq!(wrap.decrypt_retention, HumanDuration::from_years(3));
    assert_eq!(wrap.max_operations, Some(1 << 32));
    assert_eq!(wrap.expiry_notice, HumanDuration::from_days(30));

    let seal = EffectivePolicy::default_for(Algorithm::Rsa4096, KeyUsage::Seal);
    assert_eq!(seal.decrypt_retention, HumanDuration::from_years(1));
    assert_eq!(seal.max_operations, None);

    let set: KeyRotationPolicySpec =
        serde_yaml_ng::from_str("rotationPeriod: 90d\nmaxOperations: 1000\n").unwrap();
    let eff = set.effective(Algorithm::Aes256, KeyUsage::Wrap);
    assert_eq!(eff.rotation_period, HumanDuration::from_days(90));
    assert_eq!(eff.decrypt_retention, HumanDuration::from_years(3));
    assert_eq!(eff.max_operations, Some(1000));
}

#[test]
fn empty_policy_round_trips_with_defaults() {
    let spec: KeyRotationPolicySpec = serde_yaml_ng::from_str("{}").unwrap();
    assert_eq!(spec, KeyRotationPolicySpec::default());
    spec.validate().expect("defaults are valid");
    let yaml = serde_yaml_ng::to_string(&spec).unwrap();
    assert_eq!(
        yaml,
        "strategy: Managed\nrewrap: Eager\nexpiryNotice: 30d\n"
    );
}

#[test]
fn rotation_period_bounds() {
    for (period, expected) in [("30m", "at least `1h`"), ("4y", "at most 3y")] {
        let spec = KeyRotationPolicySpec {
            rotation_period: Some(period.parse().unwrap()),
            expiry_notice: HumanDuration::from_secs(60),
            ..Default::default()
        };
        let message = spec.validate().unwrap_err().to_string();
        assert!(message.contains(expected), "{period}: {message}");
    }
}

#[test]
fn native_rotation_fits_the_provider() {
    let aws = key("{aws: {region: eu-west-1}}", "AES256", "Wrap");
    native("90d").validate_for(&aws).expect("AWS accepts 90d");
    let err = native("30d").validate_for(&aws).unwrap_err().to_string();
    assert!(
        err.contains("AWS KMS rotates natively every 90d to 2560d"),
        "{err}"
    );

    let gcp = key(
        "{gcp: {project: acme-prod, location: global, keyRing: r}}",
        "AES256",
        "Wrap",
    );
    native("1d")
        .validate_for(&gcp)
        .expect("Cloud KMS accepts daily");
    let err = native("12h").validate_for(&gcp).unwrap_err().to_string();
    assert!(err.contains("at most daily"), "{err}");

    let rsa = key("{aws: {region: eu-west-1}}", "RSA4096", "Seal");
    let err = native("90d").validate_for(&rsa).unwrap_err().to_string();
    assert!(err.contains("only symmetric keys natively"), "{err}");

    for provider in ["{local: {}}", "{pkcs11: {tokenLabel: t}}"] {
        let k = key(provider, "AES256", "Wrap");
        let err = native("90d").validate_for(&k).unwrap_err().to_string();
        assert!(
            err.contains("has no native rotation; use strategy Managed"),
            "{err}"
        );
    }

    let managed = KeyRotationPolicySpec::default();
    managed
        .validate_for(&key("{local: {}}", "AES256", "Wrap"))
        .unwrap();
}

#[test]
fn signing_keys_are_made_where_a_provider_can_and_refused_with_the_reason_elsewhere() {
    for algorithm in ["RSA3072", "RSA4096", "ECP256", "ED25519"] {
        key("{local: {}}", algorithm, "Sign").validate().unwrap();
    }
    let gcp = "{gcp: {project: acme-prod, location: global, keyRing: r}}";
    let aws = "{aws: {region: eu-west-1}}";
    key(aws, "ECP256", "Sign").validate().unwrap();
    let pkcs11 = "{pkcs11: {tokenLabel: keyward}}";
    for algorithm in ["RSA3072", "RSA4096", "ECP256", "ED25519"] {
        key(pkcs11, algorithm, "Sign").validate().unwrap();
        key(gcp, algorithm, "Sign").validate().unwrap();
    }
    for (provider, algorithm, expected) in [
        (
            aws,
            "ED25519",
            "the aws provider does not make ED25519 signing keys in this release; use ECP256 there",
        ),
        (
            aws,
            "RSA3072",
            "the aws provider does not make RSA3072 signing keys",
        ),
    ] {
        let err = key(provider, algorithm, "Sign")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("spec.usage: {expected}")) && err.contains("local provider"),
            "{err}"
        );
    }
    // A signing-only algorithm with another usage names what fits.
    let err = key(gcp, "ECP256", "Wrap")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ECP256 keys cannot be used for Wrap; use algorithm AES256 for Wrap, or usage Sign for ECP256"),
        "{err}"
    );
    // RSA keys are for Seal; the error does not point at Sign.
    let err = key("{local: {}}", "RSA3072", "Wrap")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("use algorithm AES256 for Wrap, or usage Seal or Sign for RSA3072"),
        "{err}"
    );
}
