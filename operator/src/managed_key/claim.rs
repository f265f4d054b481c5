//! Which cluster may change a provider key. KMS and HSM keys can be reached
//! from several clusters: a cluster rebuilt from Git must find its keys
//! again (by the ManagedKey's `namespace/name`, since the uid is new), but
//! a second live cluster applying the same manifests must not also rotate,
//! disable and destroy them. So the operator keeps a claim on each key —
//! its cluster id and a renewal time — and renews it while it runs. Another
//! cluster's claim is honoured until it has gone unrenewed for a lease, or
//! until the ManagedKey names that cluster in `keyward.io/take-over-from`.

use super::outcome::Outcome;
use super::status::timestamp;
use crate::annotations;
use crate::context::Context;
use crate::error::Result;
use keyward_core::provider::{Claim, KeyInfo};
use keyward_crds::ManagedKey;
use kube::ResourceExt;
use std::time::{Duration, SystemTime};

/// This cluster's id and how long a claim holds without renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimSettings {
    pub cluster: String,
    pub lease: Duration,
}

impl ClaimSettings {
    /// A claim is renewed once a quarter of the lease has passed, so three
    /// renewals can fail before another cluster may take the key.
    pub fn renew_after(&self) -> Duration {
        self.lease / 4
    }
}

/// What to do about the claim on a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This cluster's, recently renewed: nothing to write until `renew_at`.
    Ours { renew_at: SystemTime },
    /// Write owner and claim now. `replaces` is another cluster's claim
    /// that ran out (or is taken over on purpose).
    Claim { replaces: Option<Claim> },
    /// Another cluster's live claim: hands off until `free_at`.
    HeldElsewhere { by: Claim, free_at: SystemTime },
}

/// The verdict for a key whose provider `keeps` claims, whose owner reads
/// back as `owner` once recorded.
pub fn judge(
    info: &KeyInfo,
    keeps: bool,
    owner: &str,
    settings: &ClaimSettings,
    take_over_from: Option<&str>,
    now: SystemTime,
) -> Verdict {
    let owner_recorded = info.owner.as_deref() == Some(owner);
    if !keeps {
        return if owner_recorded {
            Verdict::Ours {
                renew_at: SystemTime::UNIX_EPOCH,
            }
        } else {
            Verdict::Claim { replaces: None }
        };
    }
    let Some(claim) = &info.claim else {
        return Verdict::Claim { replaces: None };
    };
    if claim.cluster == settings.cluster {
        let renew_at = claim.renewed_at + settings.renew_after();
        return if owner_recorded && now < renew_at {
            Verdict::Ours { renew_at }
        } else {
            Verdict::Claim { replaces: None }
        };
    }
    let free_at = claim.renewed_at + settings.lease;
    if now >= free_at || take_over_from == Some(claim.cluster.as_str()) {
        Verdict::Claim {
            replaces: Some(claim.clone()),
        }
    } else {
        Verdict::HeldElsewhere {
            by: claim.clone(),
            free_at,
        }
    }
}

/// The identity a ManagedKey gives its provider key: `namespace/name`,
/// what a rebuild from Git gives back (the uid is new).
pub fn stable_owner(key: &ManagedKey) -> String {
    format!("{}/{}", key.namespace().unwrap_or_default(), key.name_any())
}

/// Settles the claim on `info` for `key`: claims or renews it, or says it
/// is held by another cluster. `false` means hands off: the reconcile must
/// change nothing at the provider (`out` is Degraded and woken when the
/// claim can run out).
pub async fn settle(
    key: &ManagedKey,
    info: &mut KeyInfo,
    ctx: &Context,
    out: &mut Outcome,
) -> Result<bool> {
    let owner = stable_owner(key);
    let recorded = ctx.provider.recorded_owner(&info.key_id, &owner);
    let keeps = ctx.provider.keeps_claims(&info.key_id);
    let take_over = key
        .annotations()
        .get(annotations::TAKE_OVER_FROM)
        .map(String::as_str);
    let now = SystemTime::now();
    match judge(info, keeps, &recorded, &ctx.claims, take_over, now) {
        Verdict::Ours { renew_at } => {
            if keeps {
                out.deadlines.push(timestamp(renew_at));
            }
            Ok(true)
        }
        Verdict::Claim { replaces } => {
            // Whole seconds: what every provider stores.
            let renewed_at = SystemTime::UNIX_EPOCH
                + Duration::from_secs(keyward_core::provider::key_record::unix_seconds(now));
            let claim = Claim {
                cluster: ctx.claims.cluster.clone(),
                renewed_at,
            };
            ctx.provider.set_owner(&info.key_id, &owner, &claim).await?;
            info.owner = Some(recorded);
            if keeps {
                info.claim = Some(claim);
                out.deadlines
                    .push(timestamp(renewed_at + ctx.claims.renew_after()));
            }
            if let Some(previous) = replaces {
                adopted(info, &previous, take_over, ctx, out, now);
            }
            Ok(true)
        }
        Verdict::HeldElsewhere { by, free_at } => {
            out.degrade(
                "ClaimedByAnotherCluster",
                format!(
                    "provider key {} is in use by cluster {} (claim renewed at {}); two clusters changing one key \
                     destroy each other's versions, so this one leaves it alone. If that cluster is gone (rebuilt \
                     from Git), this cluster takes the key over at {} when the claim runs out, or at once with the \
                     annotation {}={}",
                    info.key_id,
                    by.cluster,
                    timestamp(by.renewed_at),
                    timestamp(free_at),
                    annotations::TAKE_OVER_FROM,
                    by.cluster
                ),
            );
            out.deadlines.push(timestamp(free_at));
            out.held_elsewhere = true;
            Ok(false)
        }
    }
}

fn adopted(
    info: &KeyInfo,
    previous: &Claim,
    take_over: Option<&str>,
    ctx: &Context,
    out: &mut Outcome,
    now: SystemTime,
) {
    let how = if take_over == Some(previous.cluster.as_str())
        && now < previous.renewed_at + ctx.claims.lease
    {
        format!("taken over by {}", annotations::TAKE_OVER_FROM)
    } else {
        "its claim ran out".to_owned()
    };
    out.event(
        true,
        "AdoptedFromCluster",
        "Claim",
        format!(
            "provider key {} was claimed by cluster {} (last renewed at {}; {how}); this cluster now manages it",
            info.key_id,
            previous.cluster,
            timestamp(previous.renewed_at)
        ),
    );
    out.audit(
        "key.adopt",
        &[
            ("providerKeyId", info.key_id.clone()),
            ("fromCluster", previous.cluster.clone()),
            ("how", how),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::provider::KeyAlgorithm;

    const HOUR: Duration = Duration::from_secs(3600);

    fn settings() -> ClaimSettings {
        ClaimSettings {
            cluster: "cluster-b".into(),
            lease: HOUR,
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn info(owner: &str, claim: Option<(&str, u64)>) -> KeyInfo {
        KeyInfo {
            key_id: "alias/keyward/apps/db".into(),
            name: "keyward/apps/db".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some(owner.into()),
            primary_version: 1,
            versions: Vec::new(),
            deletion_at: None,
            claim: claim.map(|(cluster, secs)| Claim {
                cluster: cluster.into(),
                renewed_at: at(secs),
            }),
        }
    }

    #[test]
    fn an_unclaimed_key_is_claimed() {
        let verdict = judge(
            &info("apps/db", None),
            true,
            "apps/db",
            &settings(),
            None,
            at(0),
        );
        assert_eq!(verdict, Verdict::Claim { replaces: None });
    }

    #[test]
    fn our_claim_is_renewed_after_a_quarter_of_the_lease() {
        let key = info("apps/db", Some(("cluster-b", 0)));
        let early = judge(&key, true, "apps/db", &settings(), None, at(899));
        assert_eq!(early, Verdict::Ours { renew_at: at(900) });
        let due = judge(&key, true, "apps/db", &settings(), None, at(900));
        assert_eq!(due, Verdict::Claim { replaces: None });
    }

    #[test]
    fn an_owner_recorded_by_uid_is_rewritten_to_the_stable_one() {
        let key = info("0b5e2c1a-uid", Some(("cluster-b", 0)));
        let verdict = judge(&key, true, "apps/db", &settings(), None, at(10));
        assert_eq!(verdict, Verdict::Claim { replaces: None });
        let local = judge(&key, false, "apps/db", &settings(), None, at(10));
        assert_eq!(local, Verdict::Claim { replaces: None });
    }

    #[test]
    fn another_live_claim_is_refused_until_it_runs_out() {
        let key = info("apps/db", Some(("cluster-a", 0)));
        let live = judge(&key, true, "apps/db", &settings(), None, at(3599));
        assert_eq!(
            live,
            Verdict::HeldElsewhere {
                by: key.claim.clone().unwrap(),
                free_at: at(3600),
            }
        );
        let expired = judge(&key, true, "apps/db", &settings(), None, at(3600));
        assert_eq!(
            expired,
            Verdict::Claim {
                replaces: key.claim.clone()
            }
        );
    }

    #[test]
    fn take_over_must_name_the_cluster_that_holds_the_claim() {
        let key = info("apps/db", Some(("cluster-a", 0)));
        let named = judge(&key, true, "apps/db", &settings(), Some("cluster-a"), at(5));
        assert_eq!(
            named,
            Verdict::Claim {
                replaces: key.claim.clone()
            }
        );
        let other = judge(&key, true, "apps/db", &settings(), Some("cluster-c"), at(5));
        assert!(matches!(other, Verdict::HeldElsewhere { .. }), "{other:?}");
    }

    #[test]
    fn the_local_keyring_keeps_no_claims() {
        let key = info("apps/db", Some(("cluster-a", 0)));
        let verdict = judge(&key, false, "apps/db", &settings(), None, at(5));
        assert!(matches!(verdict, Verdict::Ours { .. }), "{verdict:?}");
    }
}
