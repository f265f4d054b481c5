//! Key rotation policies (`GET`/`PUT /keys/NAME/rotationpolicy`): stored
//! and checked, not run on a clock. A test runs the policy's rotation
//! with [`crate::Double::fire_policy_rotation`].

use crate::wire::{self, Fault, bad_parameter};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Action {
    /// `Rotate` or `Notify`.
    pub(crate) kind: &'static str,
    /// `timeAfterCreate` or `timeBeforeExpiry`.
    pub(crate) trigger: &'static str,
    /// The ISO 8601 duration as sent.
    pub(crate) after: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) actions: Vec<Action>,
    /// `attributes.expiryTime`: how long each new version lives.
    pub(crate) expiry_time: Option<String>,
    pub(crate) created: i64,
    pub(crate) updated: i64,
}

impl Policy {
    pub(crate) fn rotates(&self) -> bool {
        self.actions.iter().any(|a| a.kind == "Rotate")
    }

    /// Seconds a new version lives under this policy (`exp` = now + this).
    pub(crate) fn expiry_secs(&self) -> Option<i64> {
        self.expiry_time
            .as_deref()
            .and_then(wire::iso_days)
            .map(|d| d * 86_400)
    }
}

/// Key Vault's limits: a rotation at least 7 days after creation, an
/// expiry at least 28 days.
const MIN_ROTATE_DAYS: i64 = 7;
const MIN_EXPIRY_DAYS: i64 = 28;

pub(crate) fn parse(body: &Value) -> Result<(Vec<Action>, Option<String>), Fault> {
    let expiry_time = body["attributes"]["expiryTime"].as_str().map(str::to_owned);
    if let Some(text) = &expiry_time {
        match wire::iso_days(text) {
            Some(days) if days >= MIN_EXPIRY_DAYS => {}
            _ => {
                return Err(bad_parameter(format!(
                    "expiryTime must be an ISO 8601 duration of at least P{MIN_EXPIRY_DAYS}D, not `{text}`."
                )));
            }
        }
    }
    let mut actions = Vec::new();
    for entry in body["lifetimeActions"].as_array().into_iter().flatten() {
        let kind = match entry["action"]["type"]
            .as_str()
            .map(str::to_ascii_lowercase)
        {
            Some(t) if t == "rotate" => "Rotate",
            Some(t) if t == "notify" => "Notify",
            _ => {
                return Err(bad_parameter(
                    "Each lifetime action needs action.type Rotate or Notify.",
                ));
            }
        };
        let trigger = &entry["trigger"];
        let (field, text) = match (
            trigger["timeAfterCreate"].as_str(),
            trigger["timeBeforeExpiry"].as_str(),
        ) {
            (Some(t), None) => ("timeAfterCreate", t),
            (None, Some(t)) => ("timeBeforeExpiry", t),
            _ => {
                return Err(bad_parameter(
                    "A trigger needs exactly one of timeAfterCreate and timeBeforeExpiry.",
                ));
            }
        };
        let days = wire::iso_days(text)
            .ok_or_else(|| bad_parameter(format!("Invalid ISO 8601 duration `{text}`.")))?;
        if kind == "Rotate" && field == "timeAfterCreate" && days < MIN_ROTATE_DAYS {
            return Err(bad_parameter(format!(
                "A rotation must come at least P{MIN_ROTATE_DAYS}D after creation."
            )));
        }
        if field == "timeBeforeExpiry" && expiry_time.is_none() {
            return Err(bad_parameter(
                "timeBeforeExpiry needs attributes.expiryTime.",
            ));
        }
        if actions.iter().any(|a: &Action| a.kind == kind) {
            return Err(bad_parameter(format!("Only one {kind} action is allowed.")));
        }
        actions.push(Action {
            kind,
            trigger: field,
            after: text.to_owned(),
        });
    }
    Ok((actions, expiry_time))
}

/// The policy as Key Vault returns it; a key without one has the default
/// (notify 30 days before expiry).
pub(crate) fn json(id: &str, policy: Option<&Policy>) -> Value {
    let Some(policy) = policy else {
        return json!({
            "id": id,
            "lifetimeActions": [
                { "trigger": { "timeBeforeExpiry": "P30D" }, "action": { "type": "Notify" } }
            ],
            "attributes": {},
        });
    };
    let actions: Vec<Value> = policy
        .actions
        .iter()
        .map(|a| json!({ "trigger": { a.trigger: a.after }, "action": { "type": a.kind } }))
        .collect();
    let mut attributes = json!({ "created": policy.created, "updated": policy.updated });
    if let Some(expiry) = &policy.expiry_time {
        attributes["expiryTime"] = json!(expiry);
    }
    json!({ "id": id, "lifetimeActions": actions, "attributes": attributes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_checked_as_key_vault_checks_them() {
        let good = json!({
            "lifetimeActions": [
                { "trigger": { "timeAfterCreate": "P90D" }, "action": { "type": "Rotate" } },
                { "trigger": { "timeBeforeExpiry": "P30D" }, "action": { "type": "notify" } }
            ],
            "attributes": { "expiryTime": "P1Y" }
        });
        let (actions, expiry) = parse(&good).unwrap();
        assert_eq!(actions.len(), 2);
        assert_eq!(expiry.as_deref(), Some("P1Y"));
        for bad in [
            json!({ "lifetimeActions": [{ "trigger": { "timeAfterCreate": "P1D" }, "action": { "type": "Rotate" } }] }),
            json!({ "lifetimeActions": [{ "trigger": { "timeBeforeExpiry": "P1D" }, "action": { "type": "Rotate" } }] }),
            json!({ "attributes": { "expiryTime": "P7D" } }),
            json!({ "lifetimeActions": [{ "trigger": {}, "action": { "type": "Rotate" } }] }),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }
}
