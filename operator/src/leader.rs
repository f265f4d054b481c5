//! Leader election on a `coordination.k8s.io/v1` Lease: one replica runs
//! the controllers, the others wait. The leader renews every
//! `renew_interval`; a standby takes the Lease over once it has not been
//! renewed for `lease_duration`. Every write carries the resourceVersion it
//! read, so two standbys cannot both win. A leader that cannot renew within
//! its renew deadline (2/3 of the lease) stops before anyone can take over.

use crate::error::{Error, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Election {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_interval: Duration,
}

/// What a replica may do with the Lease as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it (a new term).
    Acquire,
    /// Someone else holds it until then.
    Wait,
}

pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Decision::Renew,
        None | Some("") => Decision::Acquire,
        Some(_) => {
            let renewed = spec
                .renew_time
                .as_ref()
                .or(spec.acquire_time.as_ref())
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
            let duration = SignedDuration::from_secs(i64::from(
                spec.lease_duration_seconds.unwrap_or(0).max(0),
            ));
            if renewed.checked_add(duration).unwrap_or(Timestamp::MAX) <= now {
                Decision::Acquire
            } else {
                Decision::Wait
            }
        }
    }
}

/// The Lease spec after `decision` by `me` at `now`.
pub fn next_spec(
    current: Option<&LeaseSpec>,
    decision: Decision,
    me: &str,
    lease_duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let mut spec = current.cloned().unwrap_or_default();
    let seconds = i32::try_from(lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    spec.lease_duration_seconds = Some(seconds);
    spec.renew_time = Some(MicroTime(now));
    if decision == Decision::Acquire {
        let had_holder = current
            .and_then(|s| s.holder_identity.as_deref())
            .is_some_and(|h| !h.is_empty());
        spec.holder_identity = Some(me.to_owned());
        spec.acquire_time = Some(MicroTime(now));
        if had_holder {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
    }
    spec
}

impl Election {
    fn api(&self, client: &Client) -> Api<Lease> {
        Api::namespaced(client.clone(), &self.namespace)
    }

    /// One attempt to acquire or renew; `Ok(true)` while we hold the Lease.
    pub async fn try_hold(&self, client: &Client) -> Result<bool> {
        let api = self.api(client);
        let now = Timestamp::now();
        let current = api.get_opt(&self.lease_name).await?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        if decision == Decision::Wait {
            return Ok(false);
        }
        let spec = next_spec(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            decision,
            &self.identity,
            self.lease_duration,
            now,
        );
        let written = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.lease_name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                api.replace(&self.lease_name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(_) => Ok(true),
            // Someone else wrote first (409 on replace or create).
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self, client: &Client) {
        let mut logged = false;
        loop {
            match self.try_hold(client).await {
                Ok(true) => return,
                Ok(false) if !logged => {
                    tracing::info!(lease = %self.lease_name, identity = %self.identity, "standing by: another replica leads");
                    logged = true;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cannot read or write the leader Lease"),
            }
            tokio::time::sleep(self.renew_interval).await;
        }
    }

    /// Renews until leadership is lost; returns why.
    pub async fn hold(&self, client: &Client) -> Error {
        let deadline = self.lease_duration * 2 / 3;
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew_interval).await;
            match self.try_hold(client).await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    return Error::Leadership(format!(
                        "Lease {} was taken over by another replica",
                        self.lease_name
                    ));
                }
                Err(error) => {
                    tracing::warn!(%error, "leader Lease renewal failed");
                    if renewed.elapsed() >= deadline {
                        return Error::Leadership(format!(
                            "could not renew Lease {} for {:?}: {error}",
                            self.lease_name, deadline
                        ));
                    }
                }
            }
        }
    }

    /// Gives the Lease up on a clean shutdown, so a standby need not wait.
    pub async fn release(&self, client: &Client) {
        let api = self.api(client);
        let Ok(Some(mut lease)) = api.get_opt(&self.lease_name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        if let Err(error) = api
            .replace(&self.lease_name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(%error, "could not release the leader Lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn a_lease_is_renewed_by_its_holder_and_taken_only_when_expired() {
        let d = Duration::from_secs(10);
        assert_eq!(decide(None, "a", at(0)), Decision::Acquire);
        let held = next_spec(None, Decision::Acquire, "a", d, at(100));
        assert_eq!(held.holder_identity.as_deref(), Some("a"));
        assert_eq!(held.lease_transitions, None);
        assert_eq!(decide(Some(&held), "a", at(105)), Decision::Renew);
        assert_eq!(decide(Some(&held), "b", at(105)), Decision::Wait);
        assert_eq!(decide(Some(&held), "b", at(109)), Decision::Wait);
        assert_eq!(decide(Some(&held), "b", at(110)), Decision::Acquire);
        let renewed = next_spec(Some(&held), Decision::Renew, "a", d, at(108));
        assert_eq!(renewed.acquire_time, held.acquire_time);
        assert_eq!(decide(Some(&renewed), "b", at(110)), Decision::Wait);
        let taken = next_spec(Some(&held), Decision::Acquire, "b", d, at(111));
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(decide(Some(&taken), "a", at(112)), Decision::Wait);
        let released = LeaseSpec {
            holder_identity: None,
            ..taken
        };
        assert_eq!(decide(Some(&released), "a", at(112)), Decision::Acquire);
    }
}
