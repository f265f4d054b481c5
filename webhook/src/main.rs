//! `keyward-webhook serve` (admission + unseal API) and
//! `keyward-webhook inject` (the init container).
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use keyward_webhook::inject::{self, InjectConfig};
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::server::{ConnectRate, PreAuthLimits, ServerLimits};
use keyward_webhook::unseal::{DecryptOnly, RateLimiter, Unsealer};
use keyward_webhook::{AppState, admission_router, server, tls};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// jemalloc, as the operator (`.cargo/config.toml` for its options): on
/// glibc, malloc and free were a quarter of `/mutate`'s CPU under load, and
/// the default image's musl allocator is slower still (docs/performance.md,
/// "/mutate").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "keyward-webhook", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve admission (/mutate, /validate, and /datakey, /review for the
    /// CLI through the API server) and the tenant API (/v1/unseal) over
    /// TLS, on two listeners.
    Serve(Box<ServeArgs>),
    /// Run as the init container: unseal and write the pod's secrets.
    Inject(InjectArgs),
    /// Run as an env-exec pod's command: export the injected files as
    /// environment variables, then exec the app's command.
    ExecEnv(ExecEnvArgs),
}

#[derive(Args)]
struct ExecEnvArgs {
    /// The secrets volume (the pod's keyward.io/mount-path).
    #[arg(long, default_value = keyward_webhook::annotations::DEFAULT_MOUNT_PATH)]
    dir: PathBuf,
    /// Delete the files once read (needs a writable volume; a restarted
    /// container then finds nothing).
    #[arg(long)]
    remove: bool,
    /// The app's command and arguments.
    #[arg(last = true, required = true)]
    command: Vec<std::ffi::OsString>,
}

#[derive(Args)]
struct ServeArgs {
    /// Log lines as `text` or `json` (one object per line).
    #[arg(long, env = "KEYWARD_LOG_FORMAT", default_value = "text")]
    log_format: keyward_kubeutil::logging::LogFormat,
    /// Admission (/mutate, /validate, /datakey, /review, probes, /metrics),
    /// for the API server.
    #[arg(long, env = "KEYWARD_ADMISSION_LISTEN", default_value = "0.0.0.0:8443")]
    admission_listen: String,
    /// The tenant API (/v1/unseal, /healthz), for injectors.
    #[arg(long, env = "KEYWARD_API_LISTEN", default_value = "0.0.0.0:8444")]
    api_listen: String,
    #[command(flatten)]
    limits: LimitArgs,
    /// Also serve /metrics, /healthz and /readyz over plain HTTP here, e.g.
    /// 0.0.0.0:9464 (/metrics is always on the TLS port too).
    #[arg(long, env = "KEYWARD_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// Image of the injected init container (this binary's image).
    #[arg(long, env = "KEYWARD_INJECTOR_IMAGE")]
    injector_image: String,
    #[arg(long, env = "KEYWARD_INJECTOR_PULL_POLICY")]
    injector_pull_policy: Option<String>,
    /// How opted-in pods without a `keyward.io/delivery` annotation get
    /// their values: `init` (the init container) or `csi` (the CSI
    /// driver's inline volume; needs the driver on every node).
    #[arg(long, env = "KEYWARD_DEFAULT_DELIVERY", default_value = "init")]
    default_delivery: keyward_webhook::mutate::Delivery,
    /// The unseal API as injectors reach it, e.g. https://keyward-webhook.keyward.svc/v1/unseal.
    #[arg(long, env = "KEYWARD_UNSEAL_URL")]
    unseal_url: String,
    /// Namespace of the local keyring Secrets (the operator's).
    #[arg(long, env = "KEYWARD_NAMESPACE", default_value = "keyward-system")]
    namespace: String,
    #[arg(long, default_value = "keyward-local-keyring")]
    keyring_secret: String,
    #[arg(long, default_value = "keyward-local-root-key")]
    root_key_secret: String,
    #[arg(
        long,
        env = "KEYWARD_AUDIT_LOG",
        default_value = "/var/log/keyward/unseal-audit.log"
    )]
    audit_log: PathBuf,
    /// The active audit segment is rotated before it passes this size.
    #[arg(long, env = "KEYWARD_AUDIT_MAX_BYTES", default_value_t = 16 * 1024 * 1024)]
    audit_max_bytes: u64,
    /// Rotated audit segments kept, oldest deleted first (0 keeps all).
    /// Disk use is at most (this + 1) x --audit-max-bytes.
    #[arg(long, env = "KEYWARD_AUDIT_KEEP_SEGMENTS", default_value_t = 4)]
    audit_keep_segments: usize,
    /// Also print every audit record as one JSON line on stdout.
    #[arg(long, env = "KEYWARD_AUDIT_STDOUT", default_value_t = true, action = clap::ArgAction::Set)]
    audit_stdout: bool,
    /// SealedSecrets a pod may unseal in a burst before it is rate-limited
    /// (429); each secret of a request costs one. A request naming more is
    /// refused (400).
    #[arg(long, default_value_t = keyward_webhook::unseal::validate::MAX_SECRETS as u32)]
    rate_burst: u32,
    #[arg(long, default_value_t = 1.0)]
    rate_per_second: f64,
    /// How long an unwrapped data key is reused (0 turns the cache off).
    #[arg(long, default_value_t = 30)]
    dek_cache_seconds: u64,
    #[arg(long, default_value_t = 1024)]
    dek_cache_entries: usize,
    /// Longest wait for one key-provider call (and for an unwrap queued
    /// behind another of the same data key); then the unseal fails with 503.
    #[arg(
        long,
        env = "KEYWARD_PROVIDER_TIMEOUT_SECONDS",
        default_value_t = keyward_webhook::unseal::decrypt_only::DEFAULT_PROVIDER_TIMEOUT.as_secs_f64()
    )]
    provider_timeout_seconds: f64,
    /// How long the decoded local keyring is reused before it is read
    /// again (0: read it on every call). A lookup of a key or version it
    /// lacks reloads at once.
    #[arg(
        long,
        env = "KEYWARD_KEYRING_CACHE_SECONDS",
        default_value_t = keyward_core::local::DEFAULT_CACHE_TTL.as_secs()
    )]
    keyring_cache_seconds: u64,
    /// AWS KMS, Cloud KMS and PKCS#11 (the local keyring is always on).
    #[command(flatten)]
    providers: keyward_provider_select::ProviderArgs,
}

/// Limits of the two listeners (`server::ServerLimits`) and of the calls
/// the webhook makes to the API server.
#[derive(Args)]
struct LimitArgs {
    /// Seconds from accept to a finished TLS handshake (both listeners).
    #[arg(long, default_value_t = 5)]
    tls_handshake_timeout_seconds: u64,
    /// Seconds to receive a request head, counted from when the server
    /// waits for one, so it also closes idle keep-alive connections.
    #[arg(long, default_value_t = 10)]
    admission_header_read_timeout_seconds: u64,
    #[arg(long, default_value_t = 5)]
    api_header_read_timeout_seconds: u64,
    /// Seconds without a byte either way before a connection is closed
    /// (both listeners); must exceed both request timeouts.
    #[arg(long, default_value_t = 30)]
    idle_timeout_seconds: u64,
    /// Open connections per listener; more are closed at once.
    #[arg(long, default_value_t = 512)]
    admission_max_connections: usize,
    #[arg(long, default_value_t = 512)]
    api_max_connections: usize,
    /// Open connections one source address (IPv6 per /64) may hold.
    #[arg(long, default_value_t = ServerLimits::admission().max_connections_per_source)]
    admission_max_connections_per_source: usize,
    #[arg(long, default_value_t = ServerLimits::api().max_connections_per_source)]
    api_max_connections_per_source: usize,
    /// New unseal-API connections one source address may open at once,
    /// then per second; beyond it they are closed before the TLS
    /// handshake. 0 per second turns the limit off.
    #[arg(long, default_value_t = ServerLimits::api().connect_rate_per_source.map_or(0, |r| r.burst))]
    api_connect_burst_per_source: u32,
    #[arg(long, default_value_t = ServerLimits::api().connect_rate_per_source.map_or(0.0, |r| r.per_second))]
    api_connects_per_second_per_source: f64,
    /// Requests in flight per listener; more wait up to the queue time,
    /// then get 503.
    #[arg(long, default_value_t = 64)]
    admission_max_in_flight: usize,
    #[arg(long, default_value_t = 128)]
    api_max_in_flight: usize,
    #[arg(long, default_value_t = 2000)]
    admission_queue_ms: u64,
    #[arg(long, default_value_t = 250)]
    api_queue_ms: u64,
    /// Seconds to answer a request (504 beyond). Keep the admission one
    /// below the webhook configurations' timeoutSeconds.
    #[arg(long, default_value_t = 9)]
    admission_request_timeout_seconds: u64,
    #[arg(long, default_value_t = 15)]
    api_request_timeout_seconds: u64,
    /// Largest request body: admission reviews (a SealedSecretReview
    /// carries a whole SealedSecret), and /v1/unseal requests.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    admission_max_body_bytes: usize,
    #[arg(long, default_value_t = 64 * 1024)]
    api_max_body_bytes: usize,
    /// Tenant API requests all sources may burst before authentication
    /// (429 beyond), then this many per second.
    #[arg(long, default_value_t = PreAuthLimits::default().burst)]
    pre_auth_burst: u32,
    #[arg(long, default_value_t = PreAuthLimits::default().per_second)]
    pre_auth_per_second: f64,
    /// The same, per source address (IPv6 per /64).
    #[arg(long, default_value_t = PreAuthLimits::default().source_burst)]
    pre_auth_source_burst: u32,
    #[arg(long, default_value_t = PreAuthLimits::default().source_per_second)]
    pre_auth_source_per_second: f64,
    /// Requests one source address may make when the all-sources bucket is
    /// empty (a burst, then per second), so a flood from many addresses
    /// cannot lock a starting pod out. 0 burst turns it off.
    #[arg(long, default_value_t = PreAuthLimits::default().source_reserve_burst)]
    pre_auth_source_reserve_burst: u32,
    #[arg(long, default_value_t = PreAuthLimits::default().source_reserve_per_second)]
    pre_auth_source_reserve_per_second: f64,
    /// Seconds to connect to the API server, and to wait for each answer.
    #[arg(long, default_value_t = 10)]
    kube_timeout_seconds: u64,
}

impl LimitArgs {
    fn admission(&self) -> ServerLimits {
        ServerLimits {
            name: "admission",
            tls_handshake_timeout: Duration::from_secs(self.tls_handshake_timeout_seconds),
            header_read_timeout: Duration::from_secs(self.admission_header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            max_connections: self.admission_max_connections,
            max_connections_per_source: self.admission_max_connections_per_source,
            connect_rate_per_source: None,
            max_in_flight: self.admission_max_in_flight,
            queue_timeout: Duration::from_millis(self.admission_queue_ms),
            request_timeout: Duration::from_secs(self.admission_request_timeout_seconds),
            body_limit: self.admission_max_body_bytes,
        }
    }

    fn api(&self) -> ServerLimits {
        ServerLimits {
            name: "api",
            tls_handshake_timeout: Duration::from_secs(self.tls_handshake_timeout_seconds),
            header_read_timeout: Duration::from_secs(self.api_header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            max_connections: self.api_max_connections,
            max_connections_per_source: self.api_max_connections_per_source,
            connect_rate_per_source: (self.api_connects_per_second_per_source > 0.0).then_some(
                ConnectRate {
                    burst: self.api_connect_burst_per_source,
                    per_second: self.api_connects_per_second_per_source,
                },
            ),
            max_in_flight: self.api_max_in_flight,
            queue_timeout: Duration::from_millis(self.api_queue_ms),
            request_timeout: Duration::from_secs(self.api_request_timeout_seconds),
            body_limit: self.api_max_body_bytes,
        }
    }

    fn pre_auth(&self) -> PreAuthLimits {
        PreAuthLimits {
            burst: self.pre_auth_burst,
            per_second: self.pre_auth_per_second,
            source_burst: self.pre_auth_source_burst,
            source_per_second: self.pre_auth_source_per_second,
            source_reserve_burst: self.pre_auth_source_reserve_burst,
            source_reserve_per_second: self.pre_auth_source_reserve_per_second,
        }
    }

    fn kube_timeout(&self) -> Duration {
        Duration::from_secs(self.kube_timeout_seconds)
    }
}

#[derive(Args)]
struct TlsArgs {
    /// Serving certificate (PEM), e.g. from a cert-manager Secret; the
    /// files are checked every minute and a renewed pair served without a restart.
    #[arg(long, requires = "tls_key_file", conflicts_with = "tls_san")]
    tls_cert_file: Option<PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// Self-bootstrap: names (DNS or IP) for a generated serving certificate.
    #[arg(long)]
    tls_san: Vec<String>,
    /// Self-bootstrap: share the certificate through this Secret (in
    /// --namespace), so every replica and restart serves the same CA.
    #[arg(long, env = "KEYWARD_TLS_SECRET")]
    tls_secret: Option<String>,
    /// Self-bootstrap: how long a serving certificate lives; it is renewed
    /// (without a restart) when a third of that is left.
    #[arg(long, default_value_t = 90 * 86_400)]
    tls_cert_lifetime_seconds: u64,
    /// Self-bootstrap: how long the CA lives; renewed when a third (or two
    /// serving lifetimes) is left, and then patched into caBundle again.
    #[arg(long, default_value_t = 5 * 365 * 86_400)]
    tls_ca_lifetime_seconds: u64,
    /// Self-bootstrap: also write the generated CA here.
    #[arg(long)]
    ca_out: Option<PathBuf>,
    /// Self-bootstrap: patch the CA into these webhook configurations.
    #[arg(long)]
    mutating_webhook_config: Option<String>,
    #[arg(long)]
    validating_webhook_config: Option<String>,
}

#[derive(Args)]
struct InjectArgs {
    /// SealedSecret names, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    secrets: Vec<String>,
    #[arg(long, default_value = keyward_webhook::annotations::DEFAULT_MOUNT_PATH)]
    mount_path: PathBuf,
    #[arg(long)]
    token_file: PathBuf,
    #[arg(long, env = "KEYWARD_UNSEAL_URL")]
    unseal_url: String,
    /// PEM of the CA to trust (the value itself).
    #[arg(long, env = "KEYWARD_CA_PEM", hide_env_values = true)]
    ca_pem: Option<String>,
    #[arg(long, env = "KEYWARD_CA_FILE", conflicts_with = "ca_pem")]
    ca_file: Option<PathBuf>,
    #[arg(long, env = "KEYWARD_POD_NAMESPACE")]
    namespace: String,
    #[arg(long, env = "KEYWARD_POD_NAME")]
    pod: String,
    /// Give up (and fail the pod) after this long.
    #[arg(long, default_value_t = 60)]
    deadline_seconds: u64,
    /// Also copy this binary here (env-exec pods run it as their command).
    #[arg(long)]
    install_exec: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Serve(args) = &cli.command {
        // Checked before any TLS bootstrap or API call, so a typo stops the
        // pod at once with the flag named (exit 2, as clap's own errors).
        if let Err(error) = args.providers.plan() {
            refuse_serve_flag(error);
        }
    }
    if let Command::ExecEnv(args) = &cli.command {
        // Before any runtime thread exists: exec replaces this process.
        let error = keyward_webhook::exec_env::exec(&args.dir, args.remove, &args.command)
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("exec returned"));
        eprintln!("keyward-exec: {error:#}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("keyward-webhook: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (name, result) = match cli.command {
        Command::Serve(args) => ("keyward-webhook", runtime.block_on(serve(*args))),
        Command::Inject(args) => ("keyward-inject", runtime.block_on(run_inject(args))),
        Command::ExecEnv(_) => unreachable!("handled before the runtime starts"),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line: the reason a pod did not start.
            eprintln!("{name}: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Exits as clap does for a bad value, with `keyward-webhook serve`'s usage.
fn refuse_serve_flag(error: keyward_provider_select::FlagError) -> ! {
    let mut cli = Cli::command();
    cli.build();
    match cli.find_subcommand_mut("serve") {
        Some(serve) => serve.error(clap::error::ErrorKind::ValueValidation, error),
        None => cli.error(clap::error::ErrorKind::ValueValidation, error),
    }
    .exit()
}

async fn run_inject(args: InjectArgs) -> Result<()> {
    let ca_pem = match (args.ca_pem, args.ca_file) {
        (Some(pem), _) => pem,
        (None, Some(file)) => std::fs::read_to_string(&file)
            .with_context(|| format!("reading the CA file {}", file.display()))?,
        (None, None) => {
            anyhow::bail!("no CA to trust the webhook with: set KEYWARD_CA_PEM or --ca-file")
        }
    };
    inject::run(&InjectConfig {
        unseal_url: args.unseal_url,
        ca_pem,
        token_file: args.token_file,
        mount_path: args.mount_path,
        namespace: args.namespace,
        pod: args.pod,
        secrets: args.secrets,
        deadline: Duration::from_secs(args.deadline_seconds),
        install_exec: args.install_exec,
    })
    .await
}

/// Self-bootstrapped TLS: the certificate (shared through --tls-secret if
/// given), its CA patched into caBundle, and renewal running in the
/// background. Returns the server configuration and the CA.
async fn bootstrapped_tls(
    client: &kube::Client,
    args: &ServeArgs,
) -> Result<(Arc<rustls::ServerConfig>, Option<String>)> {
    let lifetimes = tls::Lifetimes {
        ca: Duration::from_secs(args.tls.tls_ca_lifetime_seconds),
        leaf: Duration::from_secs(args.tls.tls_cert_lifetime_seconds),
    };
    anyhow::ensure!(
        lifetimes.leaf.as_secs() >= 3 && lifetimes.ca > lifetimes.leaf * 2,
        "--tls-ca-lifetime-seconds must exceed twice --tls-cert-lifetime-seconds (at least 3)"
    );
    let sans = &args.tls.tls_san;
    let made = match &args.tls.tls_secret {
        Some(secret) => {
            tls::shared_bootstrap_with(client, &args.namespace, secret, sans, &lifetimes).await?
        }
        None => tls::bootstrap_with(sans, &lifetimes)?,
    };
    if let Some(out) = &args.tls.ca_out {
        std::fs::write(out, &made.ca_pem).with_context(|| format!("writing {}", out.display()))?;
    }
    tls::patch_ca_bundle(
        client,
        args.tls.mutating_webhook_config.as_deref(),
        args.tls.validating_webhook_config.as_deref(),
        &made.ca_pem,
    )
    .await?;
    let cert = tls::resolver::SwappableCert::new(&made.cert_pem, &made.key_pem)?;
    let config = cert.server_config()?;
    let ca_pem = made.ca_pem.clone();
    let renewal = tls::rotation::Renewal {
        sans: sans.clone(),
        lifetimes,
        client: Some(client.clone()),
        secret: args
            .tls
            .tls_secret
            .clone()
            .map(|name| (args.namespace.clone(), name)),
        mutating_webhook_config: args.tls.mutating_webhook_config.clone(),
        validating_webhook_config: args.tls.validating_webhook_config.clone(),
        ca_out: args.tls.ca_out.clone(),
        on_new_ca: Some(keyward_webhook::mutate::set_renewed_ca),
    };
    tokio::spawn(renewal.run(cert, made));
    Ok((config, Some(ca_pem)))
}

async fn serve(args: ServeArgs) -> Result<()> {
    keyward_kubeutil::logging::init(args.log_format, "keyward_webhook=info");
    // Before the root key, keyring and DEK cache exist (keyward_memory_locked).
    let memory = keyward_core::hardening::harden_process(|warning| tracing::warn!("{warning}"))?;
    tracing::info!("core dumps disabled; {memory}");
    let provider_timeout = Duration::try_from_secs_f64(args.provider_timeout_seconds)
        .ok()
        .filter(|t| !t.is_zero())
        .context("--provider-timeout-seconds must be a positive number of seconds")?;
    let admission_limits = args.limits.admission();
    let api_limits = args.limits.api();
    for limits in [&admission_limits, &api_limits] {
        limits.check().map_err(anyhow::Error::msg)?;
    }
    let client = kube_client(args.limits.kube_timeout()).await?;
    let (tls_config, ca_pem) = match (&args.tls.tls_cert_file, &args.tls.tls_key_file) {
        (Some(cert), Some(key)) => {
            let (_serving, config) =
                tls::file_reload::serve_from_files(cert, key, tls::file_reload::DEFAULT_INTERVAL)?;
            (config, None)
        }
        _ => bootstrapped_tls(&client, &args).await?,
    };
    // Envelopes name their key id, which routes each unwrap to its provider.
    let external = keyward_provider_select::Providers::connect(&args.providers).await?;
    let at = keyward_kubeutil::keyring_secret::Location::clear(
        &args.namespace,
        &args.keyring_secret,
        &args.root_key_secret,
    )
    .wrapped_by(args.providers.root_key_wrapping_key.as_deref(), &external);
    let local =
        keyward_kubeutil::keyring_secret::open_local_provider_at(client.clone(), at).await?;
    local
        .store()
        .set_cache_ttl(Duration::from_secs(args.keyring_cache_seconds));
    let provider = external.with_local(Arc::new(local));
    tracing::info!(providers = ?provider.names(), "key providers");
    if let Some(dir) = args.audit_log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let injector_image = args.injector_image.clone();
    let state = AppState {
        injector: Arc::new(InjectorConfig {
            image: args.injector_image,
            image_pull_policy: args.injector_pull_policy,
            unseal_url: args.unseal_url,
            ca_pem,
            default_delivery: args.default_delivery,
        }),
        unsealer: Some(Arc::new(Unsealer {
            client,
            provider: Arc::new(DecryptOnly::cached_within(
                provider,
                Duration::from_secs(args.dek_cache_seconds),
                args.dek_cache_entries,
                provider_timeout,
            )),
            audit: Arc::new(keyward_core::audit::AuditLog::with_options(
                &args.audit_log,
                keyward_core::audit::Options {
                    max_bytes: args.audit_max_bytes,
                    keep_segments: (args.audit_keep_segments > 0)
                        .then_some(args.audit_keep_segments),
                    mirror_stdout: args.audit_stdout,
                    ..keyward_core::audit::Options::default()
                },
            )),
            limiter: RateLimiter::new(args.rate_burst, args.rate_per_second),
            audience: keyward_webhook::annotations::AUDIENCE.to_owned(),
            injector_image,
        })),
    };
    // Bound before anything is served, so a taken port stops the start.
    let admission = std::net::TcpListener::bind(&args.admission_listen)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .with_context(|| format!("binding {}", args.admission_listen))?;
    let api = tokio::net::TcpListener::bind(&args.api_listen)
        .await
        .with_context(|| format!("binding {}", args.api_listen))?;
    if let Some(address) = &args.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("binding the metrics port {address}"))?;
        tracing::info!(%address, "serving /metrics over plain HTTP");
        tokio::spawn(async move {
            if let Err(error) = axum::serve(metrics, server::metrics_router()).await {
                tracing::error!(%error, "the metrics listener stopped");
            }
        });
    }
    tracing::info!(address = %args.admission_listen, "serving /mutate, /validate over TLS");
    let admission_stopped = spawn_admission(
        admission,
        tls_config.clone(),
        admission_router(state.clone()),
        admission_limits,
    )?;
    tracing::info!(address = %args.api_listen, "serving /v1/unseal over TLS");
    let api_app = server::api_router_with(state, &args.limits.pre_auth());
    tokio::select! {
        () = server::serve_tls(api, tls_config, api_app, api_limits) => Ok(()),
        stopped = admission_stopped => {
            anyhow::bail!("{}", stopped.unwrap_or_else(|_| "the admission thread panicked".into()))
        }
        signal = stop_signal() => signal.context("waiting for a signal"),
    }
}

/// SIGTERM (what the kubelet sends to stop a pod) or Ctrl-C. Without the
/// former the pod sat out its whole termination grace period.
async fn stop_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => Ok(()),
        signal = tokio::signal::ctrl_c() => signal,
    }
}

/// A client whose every call is bounded. The webhook makes only short
/// request/response calls (TokenReview, gets, the TLS Secret and caBundle
/// patches; no watch), so one timeout fits them all: a hung API server
/// fails that call instead of holding a request, a lock or a pod's start.
async fn kube_client(timeout: Duration) -> Result<kube::Client> {
    let mut config = kube::Config::infer()
        .await
        .context("connecting to the API server")?;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    // Count from the request, not from when a pooled connection went idle.
    config.reset_reader_on_write = true;
    kube::Client::try_from(config).context("building the API server client")
}

/// Admission gets its own runtime and threads: a flood on the tenant API
/// (thousands of TLS handshakes and tasks) then queues only on the API's
/// runtime, and the OS still gives admission's threads their share of CPU.
/// The receiver resolves if the admission listener ever stops.
fn spawn_admission(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    limits: ServerLimits,
) -> Result<tokio::sync::oneshot::Receiver<String>> {
    let (done, stopped) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("admission".into())
        .spawn(move || {
            let outcome = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("admission")
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            server::serve_tls(listener, tls, app, limits).await;
                            "the admission listener stopped".to_owned()
                        }
                        Err(error) => format!("the admission listener: {error}"),
                    }
                }),
                Err(error) => format!("cannot start the admission runtime: {error}"),
            };
            let _ = done.send(outcome);
        })
        .context("starting the admission thread")?;
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_takes_files_or_sans_not_both() {
        let base = [
            "keyward-webhook",
            "serve",
            "--injector-image",
            "i",
            "--unseal-url",
            "https://x/v1/unseal",
        ];
        let with = |extra: &[&str]| Cli::try_parse_from(base.iter().chain(extra));
        assert!(with(&["--tls-san", "a.svc"]).is_ok());
        assert!(with(&["--tls-cert-file", "c", "--tls-key-file", "k"]).is_ok());
        assert!(with(&["--tls-cert-file", "c"]).is_err());
        assert!(
            with(&[
                "--tls-cert-file",
                "c",
                "--tls-key-file",
                "k",
                "--tls-san",
                "a"
            ])
            .is_err()
        );
    }

    #[test]
    fn serve_takes_the_provider_flags() {
        let cli = Cli::try_parse_from([
            "keyward-webhook",
            "serve",
            "--injector-image=i",
            "--unseal-url=https://x/v1/unseal",
            "--aws-region=eu-west-1",
            "--aws-endpoint-url=http://127.0.0.1:5000",
            "--gcp-key-ring=projects/p-123/locations/global/keyRings/r",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let plan = args.providers.plan().unwrap();
        assert_eq!(plan.aws.unwrap().region.as_deref(), Some("eu-west-1"));
        assert!(plan.gcp.is_some() && plan.pkcs11.is_none());
    }

    #[test]
    fn inject_reads_its_pod_from_flags_or_env() {
        let cli = Cli::try_parse_from([
            "keyward-webhook",
            "inject",
            "--secrets",
            "db,api",
            "--token-file",
            "/t",
            "--unseal-url",
            "https://127.0.0.1:1/v1/unseal",
            "--namespace",
            "ns",
            "--pod",
            "p",
        ])
        .unwrap();
        let Command::Inject(args) = cli.command else {
            panic!("not inject")
        };
        assert_eq!(args.secrets, ["db", "api"]);
    }

    #[test]
    fn exec_env_takes_the_command_after_two_dashes() {
        let cli = Cli::try_parse_from([
            "keyward-webhook",
            "exec-env",
            "--dir",
            "/run/keyward",
            "--",
            "sh",
            "-c",
            "echo $PASSWORD",
        ])
        .unwrap();
        let Command::ExecEnv(args) = cli.command else {
            panic!("not exec-env")
        };
        assert_eq!(args.command, ["sh", "-c", "echo $PASSWORD"]);
        assert!(Cli::try_parse_from(["keyward-webhook", "exec-env", "--dir", "/x"]).is_err());
    }
}
