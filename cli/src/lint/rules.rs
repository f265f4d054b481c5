//! The rules, and the two that read any text file: PEM private keys and
//! AWS secret access keys written as `name = value`.

use super::Finding;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    PlaintextSecret,
    PrivateKey,
    AwsSecretKey,
    SecretInEnv,
    SecretInHelmValues,
    SecretInConfig,
}

pub const RULES: [Rule; 6] = [
    Rule::PlaintextSecret,
    Rule::PrivateKey,
    Rule::AwsSecretKey,
    Rule::SecretInEnv,
    Rule::SecretInHelmValues,
    Rule::SecretInConfig,
];

impl Rule {
    pub fn id(self) -> &'static str {
        match self {
            Rule::PlaintextSecret => "KW001",
            Rule::PrivateKey => "KW002",
            Rule::AwsSecretKey => "KW003",
            Rule::SecretInEnv => "KW004",
            Rule::SecretInHelmValues => "KW005",
            Rule::SecretInConfig => "KW006",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rule::PlaintextSecret => "plaintext-secret",
            Rule::PrivateKey => "private-key",
            Rule::AwsSecretKey => "aws-secret-key",
            Rule::SecretInEnv => "secret-in-env",
            Rule::SecretInHelmValues => "secret-in-helm-values",
            Rule::SecretInConfig => "secret-in-config",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Rule::PlaintextSecret => {
                "A Kubernetes Secret with values in the repository: base64 is an encoding, not encryption."
            }
            Rule::PrivateKey => "A PEM private key in the repository.",
            Rule::AwsSecretKey => "An AWS secret access key in the repository.",
            Rule::SecretInEnv => {
                "A container env value that is a secret (by its name, or by looking generated)."
            }
            Rule::SecretInHelmValues => {
                "A Helm values entry that is a secret (by its key, or by looking generated)."
            }
            Rule::SecretInConfig => {
                "A secret assigned in a .env, .tfvars or .properties file (by its name, or by looking generated)."
            }
        }
    }
}

/// Findings any text file can hold.
pub fn in_text(path: &str, text: &str) -> Vec<Finding> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if private_key_starts(line, lines.get(i + 1).copied()) {
            out.push(Finding {
                path: path.to_owned(),
                line: i + 1,
                rule: Rule::PrivateKey,
                message: "a PEM private key".into(),
                fix: format!(
                    "keyward seal --key <ManagedKey> -n <namespace> --name <name> --from-file tls.key=<the key file> > <name>.sealedsecret.yaml, then delete the key from {path}"
                ),
            });
        }
        if let Some(name) = aws_secret_key(line) {
            out.push(Finding {
                path: path.to_owned(),
                line: i + 1,
                rule: Rule::AwsSecretKey,
                message: format!("an AWS secret access key in `{name}`"),
                fix: "give the workload an IAM role instead (IRSA, EKS Pod Identity); if a static key is unavoidable: keyward seal --key <ManagedKey> -n <namespace> --name aws-credentials --from-literal aws_secret_access_key=<the key>".into(),
            });
        }
    }
    out
}

/// `-----BEGIN ... PRIVATE KEY-----` followed by key material (on the next
/// line, or after a `\n` escape in a JSON string); a header alone, as in
/// documentation, is not a key.
fn private_key_starts(line: &str, next: Option<&str>) -> bool {
    let Some(at) = line.find("-----BEGIN ") else {
        return false;
    };
    let rest = &line[at..];
    let Some(end) = rest.find("PRIVATE KEY-----") else {
        return false;
    };
    let after = &rest[end + "PRIVATE KEY-----".len()..];
    if let Some(escaped) = after.strip_prefix("\\n") {
        return is_key_material(escaped);
    }
    next.is_some_and(|n| {
        let n = n.trim();
        is_key_material(n) || n.starts_with("Proc-Type:")
    })
}

fn is_key_material(text: &str) -> bool {
    let body: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "+/=".contains(*c))
        .collect();
    body.len() >= 16
}

/// The name an AWS secret access key is assigned to on this line, if one
/// is: `aws_secret_access_key = ...`, `AWS_SECRET_ACCESS_KEY: ...`,
/// `"SecretAccessKey": "..."`, with a 40-character key as the value.
fn aws_secret_key(line: &str) -> Option<String> {
    let squashed: String = line
        .chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .collect::<String>()
        .to_ascii_lowercase();
    if !squashed.contains("secretaccesskey") {
        return None;
    }
    let split = line.find(['=', ':'])?;
    let name = line[..split]
        .trim()
        .trim_start_matches("- ")
        .trim_start_matches("export ")
        .trim_matches(|c| c == '"' || c == '\'')
        .to_owned();
    let value = line[split + 1..]
        .trim()
        .trim_end_matches(',')
        .trim_matches(|c| c == '"' || c == '\'');
    let is_key = value.len() == 40
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '/' || c == '+')
        && value
            .chars()
            .any(|c| c.is_ascii_digit() || c == '/' || c == '+');
    is_key.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_header_needs_key_material_after_it() {
        assert!(private_key_starts(
            "-----BEGIN RSA PRIVATE KEY-----",
            Some("MIIEowIBAAKCAQEAx1d3Qm5hZ2Vy")
        ));
        assert!(private_key_starts(
            // keyward-lint: ignore (a made-up key, for this test)
            r#"  "key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC""#,
            None
        ));
        assert!(!private_key_starts(
            "Never commit a `-----BEGIN PRIVATE KEY-----` block.",
            Some("")
        ));
        assert!(!private_key_starts(
            "-----BEGIN PUBLIC KEY-----",
            Some("MIIBIjANBgkqhkiG9w0BAQEFAAOC")
        ));
    }

    #[test]
    fn aws_secret_keys_by_name_and_shape() {
        // AWS's documented example key. keyward-lint: ignore
        let key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            aws_secret_key(&format!("aws_secret_access_key = {key}")).as_deref(),
            Some("aws_secret_access_key")
        );
        assert!(aws_secret_key(&format!("  \"SecretAccessKey\": \"{key}\",")).is_some());
        assert!(aws_secret_key("aws_secret_access_key = ${AWS_SECRET}").is_none());
        assert!(aws_secret_key(&format!("region = {key}")).is_none());
    }
}
