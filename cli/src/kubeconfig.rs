//! What the CLI needs from a kubeconfig, without a Kubernetes client
//! library: a context's API server, its CA and the user's credentials
//! (a token, a token file, or a client certificate). Exec plugins and
//! auth providers are not run; their users pass --token-file.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The kubeconfig to read: the flag, else the first of $KUBECONFIG, else ~/.kube/config.
pub fn path(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path.to_owned());
    }
    if let Some(list) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("no kubeconfig: set KUBECONFIG or give --kubeconfig"))?;
    Ok(PathBuf::from(home).join(".kube/config"))
}

/// How to reach and log in to an API server. No Debug: it holds credentials.
pub struct Connection {
    /// `https://host[:port][/prefix]`.
    pub server: String,
    pub ca_pem: Vec<u8>,
    /// `tls-server-name`: the name the server's certificate is checked against.
    pub tls_server_name: Option<String>,
    /// The context's namespace, if it sets one.
    pub namespace: Option<String>,
    pub credentials: Credentials,
}

pub enum Credentials {
    Bearer(Zeroizing<String>),
    ClientCertificate {
        cert_pem: Vec<u8>,
        key_pem: Zeroizing<Vec<u8>>,
    },
}

/// The current context's user token (`token`, or `tokenFile`), for
/// forwarding to the webhook: a client certificate cannot be forwarded.
pub fn token(path: &Path) -> Result<Zeroizing<String>> {
    let config = Kubeconfig::read(path).map_err(|e| anyhow!("{e:#}; or give --token-file"))?;
    let (_, context) = config.context(None)?;
    match config.credentials(context)? {
        Credentials::Bearer(token) => Ok(token),
        Credentials::ClientCertificate { .. } => Err(anyhow!(
            "the kubeconfig user in {} logs in with a client certificate, which cannot be \
             forwarded; give --token-file with a bearer token",
            path.display()
        )),
    }
}

/// The connection of `context` (default: the current one); `token_file`,
/// when given, replaces the user's credentials.
pub fn connection(
    path: &Path,
    context: Option<&str>,
    token_file: Option<&Path>,
) -> Result<Connection> {
    let config = Kubeconfig::read(path)?;
    let (context_name, context) = config.context(context)?;
    let cluster_name = context["cluster"].as_str().ok_or_else(|| {
        anyhow!(
            "context `{context_name}` in {} names no cluster",
            path.display()
        )
    })?;
    let cluster = &config.named("clusters", cluster_name).ok_or_else(|| {
        anyhow!(
            "cluster `{cluster_name}` is missing from {}",
            path.display()
        )
    })?["cluster"];
    let server = cluster["server"].as_str().ok_or_else(|| {
        anyhow!(
            "cluster `{cluster_name}` in {} has no server",
            path.display()
        )
    })?;
    if !server.starts_with("https://") {
        bail!(
            "the API server `{server}` is not https://; keyward talks to API servers over TLS only"
        );
    }
    let ca_pem = config
        .file_or_data(
            cluster,
            "certificate-authority",
            "certificate-authority-data",
        )?
        .ok_or_else(|| {
            let skip = cluster["insecure-skip-tls-verify"].as_bool() == Some(true);
            anyhow!(
                "cluster `{cluster_name}` in {} has no certificate-authority{}; keyward always \
                 verifies the API server, so add the cluster's CA (certificate-authority-data)",
                path.display(),
                if skip {
                    " (only insecure-skip-tls-verify)"
                } else {
                    ""
                }
            )
        })?;
    let credentials = match token_file {
        Some(file) => Credentials::Bearer(read_token_file(file)?),
        None => config.credentials(context)?,
    };
    Ok(Connection {
        server: server.trim_end_matches('/').to_owned(),
        ca_pem,
        tls_server_name: cluster["tls-server-name"].as_str().map(str::to_owned),
        namespace: context["namespace"]
            .as_str()
            .filter(|ns| !ns.is_empty())
            .map(str::to_owned),
        credentials,
    })
}

pub fn read_token_file(path: &Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?,
    );
    let token = Zeroizing::new(text.trim().to_owned());
    if token.is_empty() {
        return Err(anyhow!("the token file {} is empty", path.display()));
    }
    Ok(token)
}

struct Kubeconfig {
    doc: Value,
    path: PathBuf,
}

impl Kubeconfig {
    fn read(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read kubeconfig {}; give --kubeconfig FILE or set KUBECONFIG",
                path.display()
            )
        })?);
        // The parse error could quote a credential: say only where.
        let doc = serde_yaml_ng::from_str(&text)
            .map_err(|_| anyhow!("{} is not a kubeconfig (YAML)", path.display()))?;
        Ok(Kubeconfig {
            doc,
            path: path.to_owned(),
        })
    }

    /// The `name`d entry of a kubeconfig list (`contexts`, `clusters`, `users`).
    fn named(&self, list: &str, name: &str) -> Option<&Value> {
        self.doc[list]
            .as_sequence()?
            .iter()
            .find(|entry| entry["name"].as_str() == Some(name))
    }

    /// The named context (default: `current-context`) and its body.
    fn context(&self, name: Option<&str>) -> Result<(String, &Value)> {
        let name = match name {
            Some(name) => name,
            None => self.doc["current-context"]
                .as_str()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    anyhow!(
                        "{} has no current-context; give --context NAME",
                        self.path.display()
                    )
                })?,
        };
        let context = self.named("contexts", name).ok_or_else(|| {
            anyhow!(
                "context `{name}` is not in {}; list them with `kubectl config get-contexts`",
                self.path.display()
            )
        })?;
        Ok((name.to_owned(), &context["context"]))
    }

    fn credentials(&self, context: &Value) -> Result<Credentials> {
        let path = self.path.display();
        let user_name = context["user"]
            .as_str()
            .ok_or_else(|| anyhow!("a context in {path} names no user"))?;
        let user = &self
            .named("users", user_name)
            .ok_or_else(|| anyhow!("user `{user_name}` is missing from {path}"))?["user"];
        if let Some(token) = user["token"].as_str() {
            return Ok(Credentials::Bearer(Zeroizing::new(token.trim().to_owned())));
        }
        if let Some(file) = user["tokenFile"].as_str() {
            return Ok(Credentials::Bearer(read_token_file(&self.relative(file))?));
        }
        let cert = self.file_or_data(user, "client-certificate", "client-certificate-data")?;
        let key = self.file_or_data(user, "client-key", "client-key-data")?;
        match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => Ok(Credentials::ClientCertificate {
                cert_pem,
                key_pem: Zeroizing::new(key_pem),
            }),
            (Some(_), None) | (None, Some(_)) => Err(anyhow!(
                "kubeconfig user `{user_name}` has only half of a client certificate \
                 (client-certificate and client-key go together); fix {path} or give --token-file"
            )),
            (None, None) if !user["exec"].is_null() || !user["auth-provider"].is_null() => {
                Err(anyhow!(
                    "kubeconfig user `{user_name}` gets its credentials from a plugin, which \
                     keyward does not run; give --token-file with a bearer token (e.g. the \
                     `status.token` the plugin prints)"
                ))
            }
            (None, None) => Err(anyhow!(
                "kubeconfig user `{user_name}` has no token or client certificate; give \
                 --token-file with a bearer token"
            )),
        }
    }

    /// `map[file_key]` read from disk (relative to the kubeconfig), else
    /// `map[data_key]` base64-decoded; `None` when neither is set.
    fn file_or_data(&self, map: &Value, file_key: &str, data_key: &str) -> Result<Option<Vec<u8>>> {
        if let Some(data) = map[data_key].as_str() {
            let bytes = STANDARD
                .decode(data.trim())
                .map_err(|_| anyhow!("`{data_key}` in {} is not base64", self.path.display()))?;
            return Ok(Some(bytes));
        }
        match map[file_key].as_str() {
            Some(file) => {
                let file = self.relative(file);
                let bytes = std::fs::read(&file).with_context(|| {
                    format!(
                        "cannot read {file_key} {} named in {}",
                        file.display(),
                        self.path.display()
                    )
                })?;
                Ok(Some(bytes))
            }
            None => Ok(None),
        }
    }

    /// Paths in a kubeconfig are relative to the file itself.
    fn relative(&self, file: &str) -> PathBuf {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        dir.join(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_current_users_token() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "apiVersion: v1\nkind: Config\ncurrent-context: b\n\
             contexts:\n- name: a\n  context: {user: alice}\n- name: b\n  context: {user: bob}\n\
             users:\n- name: alice\n  user: {token: alice-token}\n- name: bob\n  user: {token: ' bob-token '}\n",
        )
        .unwrap();
        assert_eq!(token(&config).unwrap().as_str(), "bob-token");
        std::fs::write(
            &config,
            "current-context: a\ncontexts:\n- name: a\n  context: {user: alice}\n\
             users:\n- name: alice\n  user: {client-certificate-data: eA==, client-key-data: eQ==}\n",
        )
        .unwrap();
        let error = token(&config).unwrap_err().to_string();
        assert!(error.contains("--token-file"), "{error}");
    }

    fn write_config(dir: &Path, user: &str) -> PathBuf {
        let config = dir.join("config");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\n\
             clusters:\n\
             - name: prod\n  cluster: {{server: 'https://10.0.0.1:6443/', certificate-authority: ca.pem, tls-server-name: kubernetes}}\n\
             - name: dev\n  cluster: {{server: 'https://127.0.0.1:6443', certificate-authority-data: {}}}\n\
             - name: lax\n  cluster: {{server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true}}\n\
             contexts:\n\
             - name: dev\n  context: {{cluster: dev, user: u}}\n\
             - name: prod\n  context: {{cluster: prod, user: u, namespace: shop}}\n\
             - name: lax\n  context: {{cluster: lax, user: u}}\n\
             users:\n- name: u\n  user: {user}\n",
            STANDARD.encode("DEV CA")
        );
        std::fs::write(&config, text).unwrap();
        std::fs::write(dir.join("ca.pem"), "PROD CA").unwrap();
        config
    }

    #[test]
    fn a_contexts_server_ca_and_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), "{token: t0k}");
        let dev = connection(&config, None, None).unwrap();
        assert_eq!(dev.server, "https://127.0.0.1:6443");
        assert_eq!(dev.ca_pem, b"DEV CA");
        assert_eq!(dev.namespace, None);
        assert!(matches!(&dev.credentials, Credentials::Bearer(t) if t.as_str() == "t0k"));

        let prod = connection(&config, Some("prod"), None).unwrap();
        assert_eq!(prod.server, "https://10.0.0.1:6443", "trailing / dropped");
        assert_eq!(prod.ca_pem, b"PROD CA", "relative to the kubeconfig");
        assert_eq!(prod.tls_server_name.as_deref(), Some("kubernetes"));
        assert_eq!(prod.namespace.as_deref(), Some("shop"));

        let error = connection(&config, Some("lax"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("insecure-skip-tls-verify"), "{error}");
        let error = connection(&config, Some("nope"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("kubectl config get-contexts"), "{error}");
    }

    #[test]
    fn client_certificates_token_files_and_plugins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key.pem"), "KEY").unwrap();
        let user = format!(
            "{{client-certificate-data: {}, client-key: key.pem}}",
            STANDARD.encode("CERT")
        );
        let config = write_config(dir.path(), &user);
        match connection(&config, None, None).unwrap().credentials {
            Credentials::ClientCertificate { cert_pem, key_pem } => {
                assert_eq!(cert_pem, b"CERT");
                assert_eq!(key_pem.as_slice(), b"KEY");
            }
            Credentials::Bearer(_) => panic!("expected a client certificate"),
        }
        // --token-file wins over the kubeconfig's user.
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "from-file\n").unwrap();
        let with_file = connection(&config, None, Some(&token_file)).unwrap();
        assert!(
            matches!(&with_file.credentials, Credentials::Bearer(t) if t.as_str() == "from-file")
        );

        let config = write_config(
            dir.path(),
            "{exec: {command: aws, apiVersion: client.authentication.k8s.io/v1beta1}}",
        );
        let error = connection(&config, None, None).err().unwrap().to_string();
        assert!(
            error.contains("plugin") && error.contains("--token-file"),
            "{error}"
        );
        let config = write_config(dir.path(), "{client-certificate-data: eA==}");
        let error = connection(&config, None, None).err().unwrap().to_string();
        assert!(error.contains("half"), "{error}");
    }
}
