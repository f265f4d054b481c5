//! Secrets assigned in configuration files: `.env` files, Terraform
//! `.tfvars` and Java `.properties`, one `NAME=value` per line. AWS secret
//! keys are left to their own rule.

use super::names::why_secret;
use super::{Finding, Rule};

pub fn is_config(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == ".env"
        || name.starts_with(".env.")
        || name.ends_with(".env")
        || name.ends_with(".tfvars")
        || name.ends_with(".properties")
}

pub fn in_config(path: &str, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';', '!']) || line.starts_with("//") {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim().trim_matches('"');
        let value = unquoted(value.trim());
        let squashed = name.to_ascii_lowercase().replace(['_', '-', '.'], "");
        if squashed.contains("secretaccesskey") {
            continue;
        }
        let Some(why) = why_secret(name, value, true) else {
            continue;
        };
        let why = why.says("name");
        let fix = if path.ends_with(".tfvars") {
            format!(
                "remove it from {path} and pass it as TF_VAR_{name} from your CI's secret store, or read it from the KMS with a data source"
            )
        } else {
            format!(
                "keyward seal --key <ManagedKey> -n <namespace> --name <app>-config --from-literal {name}=<the value> > <app>-config.sealedsecret.yaml, and let Keyward inject it (keyward.io/inject) instead of shipping {path}"
            )
        };
        out.push(Finding {
            path: path.to_owned(),
            line: i + 1,
            rule: Rule::SecretInConfig,
            message: format!("{name} is assigned a literal value, and {why}"),
            fix,
        });
    }
    out
}

/// The value without its quotes, or without a trailing ` # comment`.
fn unquoted(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote)
            && let Some(end) = inner.find(quote)
        {
            return &inner[..end];
        }
    }
    value.split(" #").next().unwrap_or(value).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_by_name_and_shape_not_placeholders_or_references() {
        let text = "# DB\nDB_PASSWORD=\"s3cr3t-v4lue\"\nLOG_LEVEL=info\nAPI_TOKEN=<your token>\nSESSION_KEY_FILE=/run/keys/session\nSEED=Zx9qL2vT8mN4pR7sK1wE5yU3iO6aB0cD # rotate\nREDIS_PASSWORD=${REDIS_PASSWORD}\n";
        let found: Vec<usize> = in_config(".env", text).iter().map(|f| f.line).collect();
        assert_eq!(found, [2, 6]);
        assert!(is_config("app/.env.production") && is_config("infra/prod.tfvars"));
        assert!(!is_config("deploy/app.yaml"));
    }
}
