//! Watches (not polls: a LIST of 10,000 SealedSecrets a second would load
//! the API server more than the operator does) until every ManagedKey is
//! Ready with its dependants counted and every SealedSecret has its key
//! versions recorded.

use anyhow::{Result, bail};
use futures::{StreamExt, stream};
use keyward_crds::conditions::{self, READY};
use keyward_crds::{ManagedKey, SealedSecret};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use std::collections::HashSet;
use std::time::{Duration, Instant};

pub fn key_done(key: &ManagedKey, per_key: u32) -> bool {
    let Some(status) = &key.status else {
        return false;
    };
    let primary = status.primary_version.and_then(|v| status.version(v));
    conditions::is_true(&status.conditions, READY)
        && primary.is_some_and(|v| v.dependants == per_key)
}

pub fn secret_done(secret: &SealedSecret) -> bool {
    let Some(status) = &secret.status else {
        return false;
    };
    conditions::is_true(&status.conditions, READY)
        && status.observed_generation == secret.metadata.generation
        && !status.key_versions.is_empty()
}

/// Seconds from `started` until all keys, and all secrets, were done.
pub struct Converged {
    pub keys_at: f64,
    pub secrets_at: f64,
}

enum Seen {
    Key(Box<Event<ManagedKey>>),
    Secret(Box<Event<SealedSecret>>),
}

fn track<K: kube::Resource>(
    done: &mut HashSet<String>,
    event: Event<K>,
    is_done: impl Fn(&K) -> bool,
) {
    match event {
        Event::Apply(o) | Event::InitApply(o) => {
            if is_done(&o) {
                done.insert(o.name_any());
            } else {
                done.remove(&o.name_any());
            }
        }
        Event::Delete(o) => {
            done.remove(&o.name_any());
        }
        Event::Init | Event::InitDone => {}
    }
}

pub async fn wait_converged(
    keys: Api<ManagedKey>,
    secrets: Api<SealedSecret>,
    (n_keys, n_secrets, per_key): (usize, usize, u32),
    started: Instant,
    limit: Duration,
) -> Result<Converged> {
    let key_events = watcher::watcher(keys, watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|e| Seen::Key(Box::new(e))));
    let secret_events = watcher::watcher(secrets, watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|e| Seen::Secret(Box::new(e))));
    let mut events = stream::select(key_events.boxed(), secret_events.boxed());
    let (mut keys_done, mut secrets_done) = (HashSet::new(), HashSet::new());
    let (mut keys_at, mut secrets_at) = (None, None);
    let deadline = tokio::time::Instant::now() + limit;
    let mut last_report = Instant::now();
    loop {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let Ok(Some(event)) = next else {
            bail!(
                "not converged within {limit:?}: {}/{n_keys} ManagedKeys, {}/{n_secrets} SealedSecrets done",
                keys_done.len(),
                secrets_done.len()
            );
        };
        match event {
            Ok(Seen::Key(e)) => track(&mut keys_done, *e, |k| key_done(k, per_key)),
            Ok(Seen::Secret(e)) => track(&mut secrets_done, *e, secret_done),
            // The watcher resumes by itself; a transient error is not a failure.
            Err(error) => eprintln!("watch error (retrying): {error}"),
        }
        if keys_at.is_none() && keys_done.len() == n_keys {
            keys_at = Some(started.elapsed().as_secs_f64());
        }
        if secrets_at.is_none() && secrets_done.len() == n_secrets {
            secrets_at = Some(started.elapsed().as_secs_f64());
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            println!(
                "progress at {:.0}s: {}/{n_keys} keys, {}/{n_secrets} secrets",
                started.elapsed().as_secs_f64(),
                keys_done.len(),
                secrets_done.len()
            );
            last_report = Instant::now();
        }
        if let (Some(keys_at), Some(secrets_at)) = (keys_at, secrets_at) {
            // Keys might have flipped back (e.g. a recount): only done if still done.
            if keys_done.len() == n_keys && secrets_done.len() == n_secrets {
                return Ok(Converged {
                    keys_at,
                    secrets_at,
                });
            }
        }
    }
}
