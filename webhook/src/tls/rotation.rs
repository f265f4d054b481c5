//! Renewing the self-bootstrapped certificate before it expires, without
//! a restart. The serving certificate is renewed when a third of its
//! lifetime is left, under the same CA (so `caBundle` stays valid); the CA
//! itself only when it nears its own end, and then the new CA is patched
//! into `caBundle` next to the old one. With `--tls-secret`, replicas
//! share the work: whoever renews first stores the result (an update
//! guarded by resourceVersion) and the others adopt it.

use super::der::{CertFacts, facts};
use super::resolver::SwappableCert;
use super::{Bootstrapped, Lifetimes, bootstrap_with, from_secret, issue_leaf, refilled};
use crate::metrics::metrics;
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where the certificate is shared and whom to tell about a new CA.
pub struct Renewal {
    pub sans: Vec<String>,
    pub lifetimes: Lifetimes,
    pub client: Option<Client>,
    /// `(namespace, name)` of the `--tls-secret`.
    pub secret: Option<(String, String)>,
    pub mutating_webhook_config: Option<String>,
    pub validating_webhook_config: Option<String>,
    pub ca_out: Option<PathBuf>,
    /// Told the new `caBundle` (new CA, then old) when the CA is renewed:
    /// `serve` passes `mutate::set_renewed_ca`, so new pods trust it.
    pub on_new_ca: Option<fn(&str)>,
}

/// Serial and validity of the first certificate in `pem`.
pub fn pem_facts(pem: &str) -> Option<CertFacts> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()?;
    facts(&der)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Renewal {
    /// Seconds until the serving certificate in `made` is due (0: now).
    fn due_in(&self, made: &Bootstrapped) -> u64 {
        let Some(leaf) = pem_facts(&made.cert_pem) else {
            return 0;
        };
        let renew_at = leaf.not_after - (self.lifetimes.leaf.as_secs() / 3) as i64;
        u64::try_from(renew_at - now()).unwrap_or(0)
    }

    /// The CA must be replaced when it has less than a third of its
    /// lifetime, or two serving lifetimes, left (or its key is unknown).
    fn ca_is_due(&self, made: &Bootstrapped) -> bool {
        let Some(ca) = pem_facts(&made.ca_pem) else {
            return true;
        };
        let margin = (self.lifetimes.ca.as_secs() / 3).max(2 * self.lifetimes.leaf.as_secs());
        made.ca_key_pem.is_none() || ca.not_after - now() < margin as i64
    }

    /// The next certificate after `base`: a new serving certificate under
    /// the same CA, or a new CA and certificate when the CA is due.
    pub fn next_from(&self, base: &Bootstrapped) -> Result<Bootstrapped> {
        match &base.ca_key_pem {
            Some(ca_key) if !self.ca_is_due(base) => {
                let (cert_pem, key_pem) = issue_leaf(ca_key, &self.sans, self.lifetimes.leaf)?;
                Ok(Bootstrapped {
                    ca_pem: base.ca_pem.clone(),
                    cert_pem,
                    key_pem,
                    ca_key_pem: Some(ca_key.clone()),
                })
            }
            _ => bootstrap_with(&self.sans, &self.lifetimes),
        }
    }

    /// Renews `current` forever, swapping each new certificate into `cert`.
    pub async fn run(self, cert: Arc<SwappableCert>, mut current: Bootstrapped) {
        record(&current, false);
        loop {
            tokio::time::sleep(Duration::from_secs(self.due_in(&current))).await;
            match self.renew(&current).await {
                Ok(next) => {
                    if let Err(error) = self.publish(&current, &next, &cert).await {
                        tracing::error!(error = %format!("{error:#}"), "cannot serve the renewed certificate");
                        self.back_off().await;
                        continue;
                    }
                    current = next;
                }
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "certificate renewal failed; retrying");
                    self.back_off().await;
                }
            }
        }
    }

    async fn back_off(&self) {
        let pause =
            (self.lifetimes.leaf / 20).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::time::sleep(pause).await;
    }

    /// A new CA first goes into `caBundle` (next to the old one, which
    /// other replicas may still serve under), then the certificate is swapped.
    async fn publish(
        &self,
        current: &Bootstrapped,
        next: &Bootstrapped,
        cert: &SwappableCert,
    ) -> Result<()> {
        if next.ca_pem != current.ca_pem {
            let bundle = format!("{}{}", next.ca_pem, current.ca_pem);
            if let Some(client) = &self.client {
                super::patch_ca_bundle(
                    client,
                    self.mutating_webhook_config.as_deref(),
                    self.validating_webhook_config.as_deref(),
                    &bundle,
                )
                .await?;
            }
            if let Some(out) = &self.ca_out {
                std::fs::write(out, &bundle)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            tracing::info!("the webhook CA was renewed and patched into caBundle");
        }
        cert.swap(&next.cert_pem, &next.key_pem)?;
        record(next, true);
        Ok(())
    }

    /// The renewed certificate: made here, or adopted from the shared
    /// Secret when another replica renewed first.
    async fn renew(&self, current: &Bootstrapped) -> Result<Bootstrapped> {
        let (Some(client), Some((namespace, name))) = (&self.client, &self.secret) else {
            return self.next_from(current);
        };
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let stored = api
            .get(name)
            .await
            .with_context(|| format!("reading Secret {namespace}/{name}"))?;
        let shared = from_secret(&stored, namespace, name)?;
        if self.due_in(&shared) > 0 {
            tracing::info!(
                namespace,
                name,
                "adopting the certificate another replica renewed"
            );
            return Ok(shared);
        }
        let next = self.next_from(&shared)?;
        // Only if nobody renewed since we read it (resourceVersion kept).
        let updated = refilled(&stored, &next);
        match api.replace(name, &PostParams::default(), &updated).await {
            Ok(_) => Ok(next),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let theirs = api.get(name).await?;
                from_secret(&theirs, namespace, name)
            }
            Err(error) => Err(error).with_context(|| format!("updating Secret {namespace}/{name}")),
        }
    }
}

fn record(made: &Bootstrapped, renewed: bool) {
    if let Some(leaf) = pem_facts(&made.cert_pem) {
        metrics().certificate(u64::try_from(leaf.not_after).unwrap_or(0), renewed);
        if renewed {
            tracing::info!(not_after = leaf.not_after, "serving certificate renewed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renewal(lifetimes: Lifetimes) -> Renewal {
        Renewal {
            sans: vec!["127.0.0.1".into()],
            lifetimes,
            client: None,
            secret: None,
            mutating_webhook_config: None,
            validating_webhook_config: None,
            ca_out: None,
            on_new_ca: None,
        }
    }

    #[test]
    fn the_leaf_is_renewed_under_the_same_ca_until_the_ca_nears_its_end() {
        let lifetimes = Lifetimes {
            ca: Duration::from_secs(3600),
            leaf: Duration::from_secs(60),
        };
        let r = renewal(lifetimes);
        let first = bootstrap_with(&r.sans, &lifetimes).unwrap();
        let due = r.due_in(&first);
        assert!(
            (35..=40).contains(&due),
            "a third of 60 s before expiry: {due}"
        );
        let next = r.next_from(&first).unwrap();
        assert_eq!(next.ca_pem, first.ca_pem, "the CA is kept");
        assert_ne!(
            pem_facts(&next.cert_pem).unwrap().serial,
            pem_facts(&first.cert_pem).unwrap().serial
        );
        super::super::server_config(&next.cert_pem, &next.key_pem).unwrap();

        // A CA with less than two serving lifetimes left is replaced.
        let short = renewal(Lifetimes {
            ca: Duration::from_secs(100),
            leaf: Duration::from_secs(60),
        });
        let old = bootstrap_with(&short.sans, &short.lifetimes).unwrap();
        assert_ne!(short.next_from(&old).unwrap().ca_pem, old.ca_pem);
        // And so is one whose key is unknown (a Secret from before renewal).
        let keyless = Bootstrapped {
            ca_key_pem: None,
            ..bootstrap_with(&r.sans, &lifetimes).unwrap()
        };
        assert_ne!(r.next_from(&keyless).unwrap().ca_pem, keyless.ca_pem);
    }
}
