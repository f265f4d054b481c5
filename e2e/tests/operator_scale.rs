//! The operator at scale, as the real `keyward-operator` binary: N
//! ManagedKeys x M SealedSecrets exist before it starts (provider keys in the
//! keyring, no status yet); from its cold start to every key Ready with its
//! dependants counted and every SealedSecret recorded; then a quiet window
//! in which nothing is due must make zero provider calls.
//!
//! `ci_sized_cold_start_and_quiet_steady_state` (50 x 5) runs with the other
//! e2e tests. The 1,000 x 10,000 run is ignored here: it holds a
//! cluster for minutes, so run it on its own with `scripts/scale-run.sh`.
//! `thousand_fresh_keys` (`scripts/scale-run.sh --fresh`) is the other
//! case: the operator already runs, and 1,000 ManagedKeys are created from
//! nothing (no provider keys, no SealedSecrets), so it creates every key.
//! Figures: docs/scale.md.

#[path = "operator_scale_support/fixtures.rs"]
mod fixtures;
#[path = "operator_scale_support/process.rs"]
mod process;
#[path = "operator_scale_support/progress.rs"]
mod progress;

use anyhow::{Result, ensure};
use fixtures::secs;
use keyward_crds::{ManagedKey, SealedSecret};
use keyward_e2e::{crds, with_temp_ns};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use process::{Counters, OperatorProcess};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// No reconcile for this long = settled.
const SETTLE: Duration = Duration::from_secs(5);

struct Plan {
    keys: usize,
    per_key: usize,
    /// The quiet window after convergence.
    quiet: Duration,
    /// How long convergence may take before the test fails.
    limit: Duration,
    /// Delete the keys afterwards (the namespace can then go; a run on its
    /// own throwaway cluster skips it).
    clean_up: bool,
    /// Start the operator first, then create the keys with no provider keys
    /// behind them (and no SealedSecrets: `per_key` is 0); else the keys,
    /// their provider keys and the secrets exist before it starts.
    fresh: bool,
}

/// The seeded objects exist; the operator starts; returns it, when it
/// started (the clock of the run) and its counters then (none).
async fn seed_then_start(
    client: &Client,
    ns: &str,
    plan: &Plan,
    keys_api: &Api<ManagedKey>,
    secrets_api: &Api<SealedSecret>,
    dir: &std::path::Path,
) -> Result<(OperatorProcess, Instant, Counters)> {
    let n_secrets = plan.keys * plan.per_key;
    let throttled = AtomicU64::new(0);
    let t = Instant::now();
    let keys =
        fixtures::create_all(keys_api, fixtures::managed_keys(plan.keys)?, &throttled).await?;
    let keys_s = secs(t);
    let t = Instant::now();
    let keyring = fixtures::keyring(client, ns, &keys).await?;
    let sealed = fixtures::sealed_secrets(ns, &keyring, plan.keys, plan.per_key).await?;
    let seal_s = secs(t);
    fixtures::check_opens(ns, &keyring, &sealed[plan.per_key + 1], 1, 1).await?;
    let t = Instant::now();
    let created = fixtures::create_all(secrets_api, sealed, &throttled).await?;
    let secrets_s = secs(t);
    ensure!(created.len() == n_secrets);
    println!(
        "MEASURE create {} ManagedKeys: {keys_s:.1}s; keyring + seal {n_secrets} SealedSecrets in-process: {seal_s:.1}s; create them: {secrets_s:.1}s ({} concurrent requests, {} throttled/5xx retries)",
        plan.keys,
        fixtures::CONCURRENCY,
        throttled.load(Ordering::Relaxed)
    );
    let bin = keyward_e2e::binaries::operator_binary().await?;
    let started = Instant::now();
    let operator = OperatorProcess::start(&bin, ns, dir)?;
    println!("operator {} (pid {})", bin.display(), operator.pid()?);
    Ok((operator, started, Counters::default()))
}

/// The operator starts on an empty namespace and is left to settle; then the
/// keys are created. Returns it, when the creation began and its counters
/// just before.
async fn start_then_create(
    ns: &str,
    plan: &Plan,
    keys_api: &Api<ManagedKey>,
    dir: &std::path::Path,
) -> Result<(OperatorProcess, Instant, Counters)> {
    let bin = keyward_e2e::binaries::operator_binary().await?;
    let mut operator = OperatorProcess::start(&bin, ns, dir)?;
    println!("operator {} (pid {})", bin.display(), operator.pid()?);
    operator.wait_serving().await?;
    // Elected, keyring opened, watches listed: nothing left to reconcile.
    operator.wait_settled(SETTLE, plan.limit).await?;
    let before = Counters::parse(&operator.metrics()?);
    ensure!(
        before.provider_total() == 0,
        "provider calls before any key existed: {:?}",
        before.provider
    );
    let throttled = AtomicU64::new(0);
    let started = Instant::now();
    fixtures::create_all(keys_api, fixtures::managed_keys(plan.keys)?, &throttled).await?;
    println!(
        "MEASURE create {} ManagedKeys (operator running, no provider keys): {:.1}s ({} concurrent requests, {} throttled/5xx retries); API requests before the first: {} {:?}",
        plan.keys,
        secs(started),
        fixtures::CONCURRENCY,
        throttled.load(Ordering::Relaxed),
        before.api_total(),
        before.api
    );
    Ok((operator, started, before))
}

async fn scale_run(client: Client, ns: String, plan: Plan) -> Result<()> {
    crds::install_keyward_crds(&client).await?;
    let keys_api: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
    let secrets_api: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
    let n_secrets = plan.keys * plan.per_key;
    let dir = tempfile::tempdir()?;
    let (mut operator, started, at_start) = if plan.fresh {
        start_then_create(&ns, &plan, &keys_api, dir.path()).await?
    } else {
        // Objects first, the operator after: a cold start over existing state.
        seed_then_start(&client, &ns, &plan, &keys_api, &secrets_api, dir.path()).await?
    };
    let watching = progress::wait_converged(
        keys_api.clone(),
        secrets_api.clone(),
        (plan.keys, n_secrets, plan.per_key as u32),
        started,
        plan.limit,
    );
    let serving = operator.wait_serving();
    let (converged, served) = tokio::join!(watching, serving);
    served?;
    let converged = match converged {
        Ok(c) => c,
        Err(e) => {
            let log = std::fs::read_to_string(&operator.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            anyhow::bail!(
                "{e:#}\noperator log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
    };
    let at_ready = Counters::parse(&operator.metrics()?);
    let (peak, _) = operator.memory_mib()?;
    let cpu = operator.cpu_seconds()?;
    let from = if plan.fresh {
        "first create"
    } else {
        "cold start"
    };
    println!(
        "MEASURE {from} -> {} ManagedKeys Ready: {:.1}s; -> {n_secrets} SealedSecrets recorded: {:.1}s; peak RSS (VmHWM) so far {peak:.1} MiB; operator CPU since its start {cpu:.1}s",
        plan.keys, converged.keys_at, converged.secrets_at,
    );
    // From the operator's start (what a cold start costs in all), and for
    // the fresh run also from the first create (what the keys cost).
    println!(
        "MEASURE to convergence: {} API requests {:?}; {} provider calls {:?}; reconciles {:?}",
        at_ready.api_total(),
        at_ready.api,
        at_ready.provider_total(),
        at_ready.provider,
        at_ready.reconciles
    );
    println!(
        "MEASURE timings (means to convergence): {}",
        process::timings(&operator.metrics()?)
    );
    if plan.fresh {
        let keys_only = at_ready.since(&at_start);
        println!(
            "MEASURE from the first create: {} API requests {:?}; {} provider calls {:?}; reconciles {:?}",
            keys_only.api_total(),
            keys_only.api,
            keys_only.provider_total(),
            keys_only.provider,
            keys_only.reconciles
        );
    }

    // Convergence ends with a tail of reconciles (each status write is seen
    // once more); steady state starts when no reconcile ran for SETTLE.
    println!("operator log: {}", operator.keep_log(&ns).display());
    let settle_started = Instant::now();
    let settled = match operator.wait_settled(SETTLE, plan.limit).await {
        Ok(settled) => settled,
        Err(e) => {
            let warnings = process::summarise_log(&operator.log);
            anyhow::bail!("{e:#}\noperator warnings: {warnings}");
        }
    };
    let tail = settled.since(&at_ready);
    println!(
        "MEASURE settled {:.1}s after convergence; the tail: {} provider calls {:?}, {} API requests, reconciles {:?}",
        secs(settle_started) - SETTLE.as_secs_f64(),
        tail.provider_total(),
        tail.provider,
        tail.api_total(),
        tail.reconciles
    );

    // Nothing is due for months: the operator must leave the provider alone.
    tokio::time::sleep(plan.quiet).await;
    let after = Counters::parse(&operator.metrics()?);
    let quiet = after.since(&settled);
    let (peak, rss) = operator.memory_mib()?;
    println!(
        "MEASURE quiet {:?}: {} provider calls {:?}, {} API requests {:?}, reconciles {:?}; RSS {rss:.1} MiB, peak (VmHWM) {peak:.1} MiB",
        plan.quiet,
        quiet.provider_total(),
        quiet.provider,
        quiet.api_total(),
        quiet.api,
        quiet.reconciles
    );
    println!(
        "operator warnings: {}",
        process::summarise_log(&operator.log)
    );
    ensure!(
        quiet.provider_total() == 0,
        "the steady state made provider calls: {:?}",
        quiet.provider
    );

    if plan.clean_up {
        // Dependants block a key's deletion: secrets first.
        secrets_api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        keyward_e2e::keys::delete_all(&keys_api).await?;
    }
    operator.stop().await
}

#[tokio::test]
async fn ci_sized_cold_start_and_quiet_steady_state() {
    with_temp_ns(|client, ns| async move {
        let plan = Plan {
            keys: 50,
            per_key: 5,
            quiet: Duration::from_secs(10),
            limit: Duration::from_secs(120),
            clean_up: true,
            fresh: false,
        };
        scale_run(client, ns, plan).await
    })
    .await;
}

#[tokio::test]
#[ignore = "1,000 ManagedKeys x 10,000 SealedSecrets holds a cluster for minutes; run with scripts/scale-run.sh"]
async fn thousand_keys_ten_thousand_secrets() {
    with_temp_ns(|client, ns| async move {
        let plan = Plan {
            keys: 1_000,
            per_key: 10,
            quiet: Duration::from_secs(60),
            limit: Duration::from_secs(1_800),
            clean_up: false,
            fresh: false,
        };
        scale_run(client, ns, plan).await
    })
    .await;
}

#[tokio::test]
#[ignore = "2,000 ManagedKeys x 20,000 SealedSecrets holds a cluster for minutes; run with scripts/scale-run.sh --double"]
async fn two_thousand_keys_twenty_thousand_secrets() {
    with_temp_ns(|client, ns| async move {
        let plan = Plan {
            keys: 2_000,
            per_key: 10,
            quiet: Duration::from_secs(60),
            limit: Duration::from_secs(3_600),
            clean_up: false,
            fresh: false,
        };
        scale_run(client, ns, plan).await
    })
    .await;
}

#[tokio::test]
#[ignore = "1,000 ManagedKeys created from nothing holds a cluster for minutes; run with scripts/scale-run.sh --fresh"]
async fn thousand_fresh_keys() {
    with_temp_ns(|client, ns| async move {
        let plan = Plan {
            keys: 1_000,
            per_key: 0,
            quiet: Duration::from_secs(60),
            limit: Duration::from_secs(1_800),
            clean_up: false,
            fresh: true,
        };
        scale_run(client, ns, plan).await
    })
    .await;
}
