//! A real Prometheus (Debian's `prometheus`, a host process on loopback)
//! scraping the chart's operator and webhook pods on the node, then
//! answering every query of the Grafana dashboard the chart ships
//! (`charts/keyward/dashboards/keyward.json`) with data. A bad token sent
//! to the unseal API first makes a denial to count.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::Service;
use keyward_webhook::unseal::UnsealRequest;
use kube::{Api, Client};
use serde_json::Value;

use super::on_node::Flow;

pub async fn answers_every_dashboard_query(client: &Client, flow: &Flow) -> Result<()> {
    let names = flow.names();
    let services = Api::<Service>::namespaced(client.clone(), &flow.release_ns);
    let operator = metrics_port(&services, &format!("{}-metrics", names.operator)).await?;
    let webhook = metrics_port(&services, &names.webhook).await?;
    deny_one_unseal(client, flow).await?;

    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n\
             - job_name: keyward-operator\n  static_configs: [{{targets: ['127.0.0.1:{operator}']}}]\n\
             - job_name: keyward-webhook\n  static_configs: [{{targets: ['127.0.0.1:{webhook}']}}]\n"
        ),
    )?;
    let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
    let mut server = tokio::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context(
            "starting prometheus (Debian package `prometheus`, installed by e2e/cluster/up)",
        )?;
    let result = dashboard_queries_answer(port).await;
    let _ = server.start_kill();
    if result.is_err() {
        let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
        println!("prometheus log (last lines):\n{}", tail(&log, 20));
    }
    result
}

async fn dashboard_queries_answer(port: u16) -> Result<()> {
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/keyward/dashboards/keyward.json"),
    )?)?;
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .context("dashboard panels")?
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    ensure!(!queries.is_empty(), "the dashboard has no queries");
    queries.push(r#"up{job=~"keyward-operator|keyward-webhook"} == 1"#.into());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let mut pending = queries.clone();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for query in pending {
            match instant_query(port, &query).await {
                Ok(results) if !results.is_empty() => {}
                Ok(_) | Err(_) => still.push(query),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("after 90 s Prometheus has no data for: {pending:#?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "MEASURE Prometheus scraping the chart's operator and webhook answered all {} dashboard queries (and both targets up) {} ms after it started",
        queries.len() - 1,
        started.elapsed().as_millis()
    );
    let up = instant_query(port, r#"up{job=~"keyward-operator|keyward-webhook"} == 1"#).await?;
    ensure!(up.len() == 2, "both targets up: {up:?}");
    Ok(())
}

/// `GET /api/v1/query`: the result vector.
async fn instant_query(port: u16, query: &str) -> Result<Vec<Value>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    conn.write_all(
        format!(
            "GET /api/v1/query?query={} HTTP/1.0\r\n\r\n",
            percent_encode(query)
        )
        .as_bytes(),
    )
    .await?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await?;
    let (_, body) = answer.split_once("\r\n\r\n").context("no HTTP answer")?;
    let body: Value =
        serde_json::from_str(body).with_context(|| format!("query {query}: {body}"))?;
    ensure!(body["status"] == "success", "query {query}: {body}");
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn metrics_port(services: &Api<Service>, name: &str) -> Result<u16> {
    let service = services
        .get(name)
        .await
        .with_context(|| format!("Service {name}"))?;
    let port = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .with_context(|| format!("Service {name} has no metrics port"))?;
    Ok(u16::try_from(port.port)?)
}

/// One unseal with a token that does not check out: a denial the webhook
/// counts (without a namespace: the token was not the caller's).
async fn deny_one_unseal(client: &Client, flow: &Flow) -> Result<()> {
    let tls = format!("{}-tls", flow.names().webhook);
    let ca = super::webhook_tls::stored_ca(client, &flow.release_ns, &tls).await?;
    let url = unseal_url(client, flow).await?;
    let request = UnsealRequest {
        token: "not-a-token".into(),
        namespace: flow.app_ns.clone(),
        pod: "reader".into(),
        secrets: vec!["db".into()],
    };
    match keyward_webhook::inject::unseal_once(&url, &ca, &request).await {
        Ok(_) => bail!("the webhook unsealed for a made-up token"),
        Err(error) => {
            let said = format!("{error:#}");
            ensure!(said.starts_with("denied"), "not a denial: {said}");
        }
    }
    Ok(())
}

/// The unseal URL the chart gave the injectors (the loopback overlay's).
async fn unseal_url(client: &Client, flow: &Flow) -> Result<String> {
    let deployment =
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &flow.release_ns)
            .get(&flow.names().webhook)
            .await?;
    deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.env)
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "KEYWARD_UNSEAL_URL")
        .and_then(|e| e.value)
        .context("the webhook Deployment has no KEYWARD_UNSEAL_URL")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
