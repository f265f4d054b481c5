//! Waiting on ManagedKeys and reading their conditions: what every suite
//! that runs the operator asks of a key.

use anyhow::{Result, bail, ensure};
use keyward_crds::ManagedKey;
use keyward_crds::conditions::{self, DEGRADED, READY};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use std::time::{Duration, Instant};

/// How long a key may take to reach a state before the test fails.
const KEY_DEADLINE: Duration = Duration::from_secs(60);

/// Polls `name` until `done` holds; fails after a minute with the key's
/// status, so a timeout says where the key got stuck.
pub async fn wait_key(
    api: &Api<ManagedKey>,
    name: &str,
    what: &str,
    done: impl Fn(&ManagedKey) -> bool,
) -> Result<ManagedKey> {
    let deadline = Instant::now() + KEY_DEADLINE;
    loop {
        let key = api.get(name).await?;
        if done(&key) {
            return Ok(key);
        }
        if Instant::now() > deadline {
            bail!(
                "ManagedKey {name}: not {what} within {}s; status: {}",
                KEY_DEADLINE.as_secs(),
                serde_json::to_string(&key.status)?
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The key's `Ready` condition is True.
pub fn ready(key: &ManagedKey) -> bool {
    key.status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, READY))
}

/// `reason: message` of a True `Degraded` condition.
pub fn degraded_reason(key: &ManagedKey) -> Option<String> {
    let status = key.status.as_ref()?;
    conditions::find(&status.conditions, DEGRADED)
        .filter(|c| c.status == "True")
        .map(|c| format!("{}: {}", c.reason, c.message))
}

/// Deletes ManagedKey `name` and waits (60 s at most) for its finalizer to go.
pub async fn delete_and_wait_gone(keys: &Api<ManagedKey>, name: &str) -> Result<()> {
    keys.delete(name, &DeleteParams::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while keys.get_opt(name).await?.is_some() {
        ensure!(
            Instant::now() < deadline,
            "ManagedKey {name}: finalizer never removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Deletes every ManagedKey `keys` sees and waits (up to a minute) for their
/// finalizers to go, so the namespace can be deleted on clusters that
/// outlive the test.
pub async fn delete_all(keys: &Api<ManagedKey>) -> Result<()> {
    keys.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !keys
        .list(&ListParams::default().limit(1))
        .await?
        .items
        .is_empty()
    {
        ensure!(
            Instant::now() < deadline,
            "ManagedKeys kept their finalizers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
