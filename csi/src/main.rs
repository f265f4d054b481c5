//! `keyward-csi`: the node plugin process. Serves CSI on
//! `<kubelet-root>/plugins/<driver>/csi.sock` and registers itself with
//! the kubelet through `<kubelet-root>/plugins_registry/<driver>-reg.sock`.

use anyhow::{Context, Result};
use clap::Parser;
use keyward_csi::events::RefreshEvents;
use keyward_csi::metrics::{self, Metrics};
use keyward_csi::plugin::{Plugin, Registration};
use keyward_csi::publish::Unseal;
use keyward_csi::serve::{bind, serve};
use keyward_webhook::unseal::csi_entitlement::CSI_DRIVER;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    version,
    about = "Keyward's CSI node plugin: SealedSecrets as inline volumes"
)]
struct Args {
    /// Log lines as `text` or `json` (one object per line).
    #[arg(long, env = "KEYWARD_LOG_FORMAT", default_value = "text")]
    log_format: keyward_kubeutil::logging::LogFormat,
    /// The kubelet's --root-dir.
    #[arg(long, env = "KEYWARD_KUBELET_ROOT", default_value = "/var/lib/kubelet")]
    kubelet_root: PathBuf,
    /// This node's name (the Downward API's spec.nodeName).
    #[arg(long, env = "KEYWARD_NODE_NAME")]
    node_id: String,
    /// The webhook's unseal URL, e.g. https://keyward-webhook.keyward-system.svc:8444/v1/unseal.
    #[arg(long, env = "KEYWARD_UNSEAL_URL")]
    unseal_url: String,
    /// PEM CA that signed the webhook's certificate.
    #[arg(long, env = "KEYWARD_CA_FILE")]
    ca_file: PathBuf,
    /// The audience of the pod tokens the kubelet hands over (the
    /// CSIDriver's tokenRequests; the webhook's --audience).
    #[arg(long, default_value = keyward_webhook::annotations::AUDIENCE)]
    audience: String,
    /// Serve /metrics and /healthz over plain HTTP here, e.g. 0.0.0.0:9466.
    #[arg(long, env = "KEYWARD_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Post an Event on a pod whose files a republish replaced. Needs the
    /// API server (in-cluster ServiceAccount or a kubeconfig) and `create`
    /// on events.k8s.io events.
    #[arg(long, env = "KEYWARD_EVENTS", default_value_t = true, action = clap::ArgAction::Set)]
    events: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    keyward_kubeutil::logging::init(args.log_format, "info");
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keyward-csi: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    // Checked now so a wrong path stops the start; read again at each publish.
    std::fs::read_to_string(&args.ca_file)
        .with_context(|| format!("reading the webhook CA {}", args.ca_file.display()))?;
    let endpoint = args
        .kubelet_root
        .join("plugins")
        .join(CSI_DRIVER)
        .join("csi.sock");
    let registration_socket = args
        .kubelet_root
        .join("plugins_registry")
        .join(format!("{CSI_DRIVER}-reg.sock"));
    let events = if args.events {
        let client = kube::Client::try_default().await.context(
            "refresh Events need the API server (in a pod: its ServiceAccount token; \
             elsewhere: a kubeconfig); pass --events false to run without them",
        )?;
        Some(RefreshEvents::new(client, &args.node_id))
    } else {
        None
    };
    let metrics = Arc::new(Metrics::default());
    if let Some(address) = &args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("binding the metrics port {address}"))?;
        tracing::info!(%address, "serving /metrics");
        let router = metrics::router(metrics.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "the metrics listener stopped");
            }
        });
    }
    let plugin = Arc::new(Plugin {
        driver: CSI_DRIVER.into(),
        node_id: args.node_id,
        unseal: Unseal {
            url: args.unseal_url,
            ca_file: args.ca_file,
            audience: args.audience,
        },
        metrics,
        events,
    });
    let registration = Arc::new(Registration {
        driver: CSI_DRIVER.into(),
        endpoint: endpoint.clone(),
    });
    let csi = bind(&endpoint)?;
    let register = bind(&registration_socket)?;
    tracing::info!(endpoint = %endpoint.display(), registration = %registration_socket.display(), "serving");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let servers = tokio::spawn(async move {
        tokio::try_join!(
            serve(csi, plugin, stopped(stop_rx.clone())),
            serve(register, registration, stopped(stop_rx)),
        )
    });
    shutdown_signal().await;
    // Deregister first: the kubelet stops sending new volumes here.
    let _ = std::fs::remove_file(&registration_socket);
    let _ = stop_tx.send(true);
    servers.await.context("server task")??;
    let _ = std::fs::remove_file(&endpoint);
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
