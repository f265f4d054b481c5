//! What one reconcile decided besides the status: Events, audit records,
//! a Degraded reason, and the deadlines to come back at.

use crate::context::Context;
use k8s_openapi::jiff::Timestamp;
use keyward_crds::ManagedKey;
use keyward_crds::managed_key::REASON;
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Outcome {
    events: Vec<Event>,
    audits: Vec<(&'static str, BTreeMap<String, String>)>,
    pub degraded: Option<(&'static str, String)>,
    pub deadlines: Vec<Timestamp>,
    /// Another cluster holds the key: not Ready here, whatever its state.
    pub held_elsewhere: bool,
}

impl Outcome {
    pub fn event(&mut self, warning: bool, reason: &str, action: &str, note: String) {
        self.events.push(Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        });
    }

    pub fn audit(&mut self, action: &'static str, detail: &[(&str, String)]) {
        let detail = detail
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        self.audits.push((action, detail));
    }

    pub fn degrade(&mut self, reason: &'static str, message: String) {
        self.degraded = Some((reason, message));
    }

    /// Writes the audit records and publishes the Events. Failures are
    /// logged and counted, not retried: the key operation already happened.
    pub async fn publish(self, key: &ManagedKey, ctx: &Context) {
        let subject = format!(
            "{}/{}",
            key.metadata.namespace.as_deref().unwrap_or_default(),
            key.metadata.name.as_deref().unwrap_or_default()
        );
        // Why the user changed the key (the webhook's `key.change` record
        // names who): carried on what the operator did about it.
        let reason = key
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REASON))
            .filter(|r| !r.trim().is_empty());
        // Read only when a destruction is on record, not on every publish.
        let mut approved = None;
        for (action, mut detail) in self.audits {
            if let Some(reason) = reason {
                detail
                    .entry("reason".into())
                    .or_insert_with(|| reason.clone());
            }
            // Two-person destruction: both names on the operator's record too.
            if action == "key.schedule-deletion"
                && let Some((requested, approved)) =
                    approved.get_or_insert_with(|| keyward_crds::destruction::on_record(key))
            {
                detail.insert("requestedBy".into(), requested.clone());
                detail.insert("approvedBy".into(), approved.clone());
            }
            if let Err(error) = ctx.audit.record(action, &subject, "ok", detail).await {
                tracing::error!(%error, action, key = %subject, "audit record not written");
                ctx.metrics
                    .failed(crate::metrics::Controller::ManagedKey, "audit");
            }
        }
        let reference = key.object_ref(&());
        for event in self.events {
            if let Err(error) = ctx.recorder.publish(&event, &reference).await {
                tracing::warn!(%error, reason = event.reason, key = %subject, "event not published");
            }
        }
    }
}
