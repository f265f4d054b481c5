use clap::{Args, Parser, Subcommand, ValueEnum};
use keyward_core::provider::KeyAlgorithm;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "keyward",
    version,
    about = "Seal Kubernetes secrets for Git and manage Keyward keys"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Encrypt values into a SealedSecret manifest that is safe to commit.
    ///
    /// To any ManagedKey through the cluster (the default: the values stay
    /// here, the cluster gives a data key to users allowed to create
    /// SealedSecrets in the namespace), offline to an RSA key (--cert,
    /// --from-cluster), or with a local keyring (--keyring, KEYWARD_KEYRING).
    Seal(SealArgs),
    /// Decrypt a SealedSecret (needs access to the key; for admins and debugging).
    Unseal(UnsealArgs),
    /// Show what a SealedSecret is sealed for, without decrypting it.
    Inspect(InspectArgs),
    /// Manage a local keyring (the embedded `local` provider) on this machine.
    Local(LocalArgs),
    /// Read keys that live in a cluster (ManagedKeys), through the API server.
    Cluster(ClusterArgs),
    /// Check the hash chain of an audit log.
    Audit(AuditArgs),
    /// Re-wrap a SealedSecret file onto its key's current version, through
    /// the cluster (no key access needed; rewrites the file in place).
    Rewrap(RewrapArgs),
    /// Check, through the cluster, that a SealedSecret file would open
    /// there as it is (namespace, name, key state), revealing no value.
    Validate(ValidateArgs),
    /// ManagedKeys: state, versions, dependants, Git copies behind.
    Status(StatusArgs),
    /// Rotate a ManagedKey now (a new primary version).
    Rotate(RotateArgs),
    /// Report a ManagedKey compromised: rotate, re-seal, retire the exposed versions.
    Compromise(CompromiseArgs),
    /// Sign a file with a signing ManagedKey (usage: Sign) through the
    /// cluster; the private key never leaves its provider. Needs the verb
    /// `sign` on that ManagedKey (ClusterRole <release>-signer).
    Sign(SignArgs),
    /// Check a signature made by `keyward sign`, with a ManagedKey's
    /// published public keys (every version but Compromised ones) or with a
    /// PEM public key file, offline.
    Verify(VerifyArgs),
    /// Two-person destruction: request, approve, or show the request and
    /// approval on a ManagedKey (docs/operations.md).
    Destruction(DestructionArgs),
    /// Find plaintext Secrets and hard-coded key material in a repository
    /// (Kubernetes Secrets, PEM private keys, AWS secret keys, secrets in
    /// container env, Helm values, .env, .tfvars and .properties files),
    /// each with the `keyward seal` command
    /// that fixes it. Exits non-zero when anything is found. A line (or the
    /// line above) containing `keyward-lint: ignore` is accepted.
    Lint(LintArgs),
    /// Print a shell completion script, e.g. `source <(keyward completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum StatusFormat {
    #[default]
    Table,
    Json,
}

#[derive(Args)]
pub struct StatusArgs {
    /// One ManagedKey, as NAME or NAMESPACE/NAME, with its versions.
    pub key: Option<String>,
    /// Namespace (default: the kubeconfig context's, else `default`).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: StatusFormat,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Args)]
pub struct RotateArgs {
    /// The ManagedKey, as NAME or NAMESPACE/NAME.
    pub key: String,
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Why, for the audit log (annotation keyward.io/reason).
    #[arg(long)]
    pub reason: Option<String>,
    /// Wait until the new version is primary.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Args)]
pub struct SignArgs {
    /// The signing ManagedKey, as NAME or NAMESPACE/NAME.
    pub key: String,
    /// What to sign (`-` for standard input). Files up to 4096 bytes are
    /// sent whole (Ed25519 keys need that); larger ones as their SHA-256.
    pub file: PathBuf,
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Where to write the raw signature (default: FILE.sig; `-` for
    /// standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write the PEM public key of the version that signed here, for
    /// `openssl` or `keyward verify --public-key`.
    #[arg(long, value_name = "FILE")]
    pub public_key_out: Option<PathBuf>,
    /// Why, for the audit log (a release, a ticket).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("verifier").required(true).args(["key", "public_key"])))]
pub struct VerifyArgs {
    /// The file that was signed (`-` for standard input).
    pub file: PathBuf,
    /// The raw signature `keyward sign` wrote.
    pub signature: PathBuf,
    /// The signing ManagedKey, as NAME or NAMESPACE/NAME: its published
    /// public keys are read through the cluster.
    #[arg(long)]
    pub key: Option<String>,
    /// A PEM public key file instead (offline; RSA-PSS, P-256 or Ed25519).
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    pub public_key: Option<PathBuf>,
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Args)]
pub struct DestructionArgs {
    #[command(subcommand)]
    pub command: DestructionCommand,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Subcommand)]
pub enum DestructionCommand {
    /// Ask for a guarded change (a second user approves it).
    Request {
        /// The ManagedKey, as NAME or NAMESPACE/NAME.
        key: String,
        #[arg(short, long)]
        namespace: Option<String>,
        /// What to do; repeat for several.
        #[arg(long = "action", required = true, value_parser = ["Destroy", "ForceDestroy", "Delete", "DisablePolicy"])]
        actions: Vec<String>,
        /// Why, for the audit log (annotation keyward.io/reason).
        #[arg(long)]
        reason: String,
    },
    /// Approve the request on the key (you must not be its author).
    Approve {
        /// The ManagedKey, as NAME or NAMESPACE/NAME.
        key: String,
        #[arg(short, long)]
        namespace: Option<String>,
        /// Only approve a request for exactly these actions (guards against
        /// approving a request changed since you read it); repeat for several.
        #[arg(long = "action", value_parser = ["Destroy", "ForceDestroy", "Delete", "DisablePolicy"])]
        actions: Vec<String>,
    },
    /// Show the request and approval on the key, and what is missing.
    Show {
        /// The ManagedKey, as NAME or NAMESPACE/NAME.
        key: String,
        #[arg(short, long)]
        namespace: Option<String>,
    },
}

#[derive(Args)]
pub struct CompromiseArgs {
    /// The ManagedKey, as NAME or NAMESPACE/NAME.
    pub key: String,
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// What happened (required; recorded in the audit log).
    #[arg(long)]
    pub reason: String,
    /// Versions exposed: `all` (default), `primary`, or a list like `2,3`.
    #[arg(long, default_value = "all")]
    pub exposed_versions: String,
    /// Wait until the new version is primary.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Args)]
pub struct RewrapArgs {
    /// The SealedSecret manifest to rewrite in place, or a directory: every
    /// SealedSecret manifest under it (for CI after a rotation).
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    pub file: PathBuf,
    /// The namespace the files are applied in, for manifests that leave it
    /// to the applier (default: each file's metadata.namespace).
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Args)]
pub struct ValidateArgs {
    /// The SealedSecret manifest (`-` for stdin), or a directory of them.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    pub file: PathBuf,
    /// The namespace it is applied in, for a manifest that leaves it to
    /// the applier (default: its metadata.namespace).
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Print the public key of a ManagedKey (RSA, usage Seal, Ready), for
    /// `keyward seal --cert`; the same format as `keyward local public-key`.
    PublicKey {
        /// The ManagedKey, as NAME or NAMESPACE/NAME.
        name: String,
        /// Its namespace (default: the kubeconfig context's, else `default`).
        #[arg(short, long)]
        namespace: Option<String>,
    },
}

/// How to reach the API server: a kubeconfig, as kubectl reads it.
#[derive(Args, Default)]
pub struct KubeArgs {
    /// Kubeconfig (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "FILE", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: its current-context).
    #[arg(long, value_name = "NAME", global = true)]
    pub context: Option<String>,
    /// A file holding a bearer token to use instead of the kubeconfig's
    /// user (needed when that user logs in through an exec plugin).
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
}

/// Where a cluster keeps the local provider's keyring (the chart's
/// defaults; see `providers.local` in its values).
#[derive(Args)]
pub struct ClusterKeyringArgs {
    /// Namespace Keyward is installed in.
    #[arg(short, long, default_value = "keyward-system")]
    pub namespace: String,
    /// Secret holding the encrypted keyring.
    #[arg(long, default_value = "keyward-local-keyring")]
    pub keyring_secret: String,
    /// Secret holding the root key (`<name>-wrapped` when a KMS wraps it).
    #[arg(long, default_value = "keyward-local-root-key")]
    pub root_key_secret: String,
}

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
    /// The log to check (default: audit.log in the local keyring).
    #[arg(short = 'f', long = "filename", global = true)]
    pub file: Option<PathBuf>,
    /// Records of this log kept elsewhere (your log collector's copy of
    /// the component's stdout, or `{"seq": N, "hash": "..."}` lines): each
    /// must be in the log, so a cut tail or a rewritten chain fails.
    #[arg(long, global = true, value_name = "FILE")]
    pub checkpoints: Option<PathBuf>,
    #[command(flatten)]
    pub keyring: KeyringArgs,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify every record chains to the one before and none was edited.
    Verify,
}

#[derive(Args)]
pub struct KeyringArgs {
    /// Directory of the local keyring (root.key + keyring.kwk).
    #[arg(long, env = "KEYWARD_KEYRING", value_name = "DIR", global = true)]
    pub keyring: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum ScopeArg {
    /// Bind each value to namespace, secret name and item name.
    #[default]
    Strict,
    /// Bind values to the namespace only.
    Namespace,
}

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

#[derive(Args)]
pub struct SealArgs {
    /// A value as KEY=VALUE (repeatable).
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    pub literals: Vec<String>,
    /// A value from a file, as [KEY=]PATH; KEY defaults to the file name (repeatable).
    #[arg(long = "from-file", value_name = "[KEY=]PATH")]
    pub files: Vec<String>,
    /// A Kubernetes Secret manifest to seal (`-` for stdin). Read from stdin
    /// when no --from-literal/--from-file is given.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub secret_manifest: Option<PathBuf>,
    /// Namespace of the SealedSecret (default: the Secret manifest's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Name of the SealedSecret (default: the Secret manifest's).
    #[arg(long)]
    pub name: Option<String>,
    /// ManagedKey to seal with, as NAME or NAMESPACE/NAME (default with --cert: the key named in the file).
    #[arg(long)]
    pub key: Option<String>,
    /// Default `strict` (with --merge-into: the file's).
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    /// Add the values to this SealedSecret file (replacing items of the same
    /// name) and rewrite it in place; its other items stay byte-identical.
    /// Namespace, name, key, scope and access come from the file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["raw", "output"])]
    pub merge_into: Option<PathBuf>,
    /// Print only the one value's encrypted form (for a Helm values file or
    /// a hand-written SealedSecret), with no newline.
    #[arg(long)]
    pub raw: bool,
    /// Seal offline with a public key file from `keyward local public-key`
    /// or `keyward cluster public-key`; no key access needed.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Seal offline with the public key of the ManagedKey --key, read from
    /// the cluster now (what `keyward cluster public-key` prints).
    #[arg(long, conflicts_with = "cert", requires = "key")]
    pub from_cluster: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// ServiceAccount allowed to unseal (repeatable; default: any in the namespace).
    #[arg(long = "service-account", value_name = "NAME")]
    pub service_accounts: Vec<String>,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Format,
    #[command(flatten)]
    pub keyring: KeyringArgs,
}

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum UnsealFormat {
    /// A Kubernetes Secret manifest (YAML).
    #[default]
    Yaml,
    /// A Kubernetes Secret manifest (JSON).
    Json,
}

#[derive(Args)]
pub struct UnsealArgs {
    /// The SealedSecret manifest (`-` for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Print only this item's raw bytes.
    #[arg(long)]
    pub item: Option<String>,
    /// The namespace the SealedSecret is applied in, for a manifest that
    /// leaves it to the applier (as GitOps repositories often do).
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: UnsealFormat,
    #[command(flatten)]
    pub keyring: KeyringArgs,
}

#[derive(Args)]
pub struct InspectArgs {
    /// The SealedSecret manifest (`-` for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct LocalArgs {
    #[command(subcommand)]
    pub command: LocalCommand,
    #[command(flatten)]
    pub keyring: KeyringArgs,
}

#[derive(Subcommand)]
pub enum LocalCommand {
    /// Create a keyring (root key + keyring file) with a first key.
    Init {
        /// Name of the first key.
        #[arg(long, default_value = "default")]
        key: String,
        #[arg(long, default_value = "AES256", value_parser = parse_algorithm)]
        algorithm: KeyAlgorithm,
    },
    /// Add a key to an existing keyring.
    CreateKey {
        name: String,
        #[arg(long, default_value = "AES256", value_parser = parse_algorithm)]
        algorithm: KeyAlgorithm,
    },
    /// Add a new primary version to a key; older versions still unseal.
    Rotate { key: String },
    /// List keys and their versions.
    List,
    /// Copy the keyring of a cluster's local provider into --keyring DIR
    /// (a new directory): its root key, keyring and generation. The
    /// directory is a keyring: `keyward unseal --keyring DIR` opens
    /// SealedSecrets from it offline.
    Backup {
        #[command(flatten)]
        cluster: ClusterKeyringArgs,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Write the keyring in --keyring DIR (from `backup`) into a cluster,
    /// e.g. one rebuilt from Git, before the operator starts.
    Restore {
        #[command(flatten)]
        cluster: ClusterKeyringArgs,
        #[command(flatten)]
        kube: KubeArgs,
        /// Replace keyring objects that exist with other contents (the
        /// operator and webhook must be stopped).
        #[arg(long)]
        replace: bool,
    },
    /// Print the public key of an RSA key, for `keyward seal --cert`.
    PublicKey {
        key: String,
        /// Version (default: the primary version).
        #[arg(long)]
        version: Option<u32>,
    },
}

fn parse_algorithm(text: &str) -> Result<KeyAlgorithm, String> {
    text.parse()
}

#[derive(Args)]
pub struct LintArgs {
    /// The repository (or any directory) to scan.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// `text` for people, `sarif` for code-scanning tools (GitHub, GitLab).
    #[arg(long, value_enum, default_value_t)]
    pub format: LintFormat,
    /// Write the report here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum LintFormat {
    #[default]
    Text,
    Sarif,
}
