//! What may change on an existing ManagedKey: the provider, algorithm and
//! usage are fixed at creation, and `spec.state` may only ask for a legal
//! lifecycle transition from the state the operator last reported.
//!
//! Kubernetes 1.20 has no CEL transition rules, so the admission webhook
//! calls these on UPDATE; the operator calls [`ManagedKey::requested_transition`]
//! on every reconcile.

use crate::lifecycle::{IllegalTransition, KeyState, Transition, transition};
use crate::managed_key::{ManagedKey, ManagedKeySpec};
use crate::validation::{Collector, Invalid};

impl ManagedKey {
    /// The state the operator last reported; PreActivation before the
    /// first reconcile, since a new key has no usable version yet.
    pub fn current_state(&self) -> KeyState {
        self.status
            .as_ref()
            .and_then(|s| s.state)
            .unwrap_or(KeyState::PreActivation)
    }

    /// How to get from the reported state to `spec.state`.
    pub fn requested_transition(&self) -> Result<Transition, IllegalTransition> {
        transition(self.current_state(), self.spec.state)
    }

    /// Checks an update from `old` to `self`: immutable fields unchanged,
    /// and a changed `spec.state` reachable from the reported state.
    pub fn validate_update(&self, old: &ManagedKey) -> Result<(), Invalid> {
        let mut errors = Collector::default();
        self.spec.check_immutable(&old.spec, &mut errors);
        if self.spec.state != old.spec.state
            && let Err(illegal) = transition(old.current_state(), self.spec.state)
        {
            errors.push("spec.state", illegal.to_string());
        }
        errors.finish()
    }
}

impl ManagedKeySpec {
    fn check_immutable(&self, old: &ManagedKeySpec, errors: &mut Collector) {
        const HINT: &str = "it is fixed when the key is created; create a new ManagedKey and re-seal (`keyward rewrap`) instead";
        if self.provider != old.provider {
            errors.push("spec.provider", format!("cannot be changed: {HINT}"));
        }
        if self.algorithm != old.algorithm {
            errors.push(
                "spec.algorithm",
                format!(
                    "cannot change from {} to {}: {HINT}",
                    old.algorithm, self.algorithm
                ),
            );
        }
        if self.existing_key != old.existing_key {
            errors.push("spec.existingKey", format!("cannot be changed: {HINT}"));
        }
        if self.usage != old.usage {
            errors.push(
                "spec.usage",
                format!("cannot change from {} to {}: {HINT}", old.usage, self.usage),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManagedKeyStatus;

    fn key(yaml_spec: &str, reported: Option<KeyState>) -> ManagedKey {
        let spec: ManagedKeySpec = serde_yaml_ng::from_str(yaml_spec).unwrap();
        let mut key = ManagedKey::new("k", spec);
        key.status = reported.map(|state| ManagedKeyStatus {
            state: Some(state),
            ..Default::default()
        });
        key
    }

    #[test]
    fn new_key_activates() {
        let k = key("provider: {local: {}}", None);
        assert_eq!(k.current_state(), KeyState::PreActivation);
        assert_eq!(k.requested_transition(), Ok(Transition::Activate));
    }

    #[test]
    fn state_change_must_be_legal_from_reported_state() {
        let old = key(
            "provider: {local: {}}\nstate: Deactivated",
            Some(KeyState::Deactivated),
        );
        let new = key(
            "provider: {local: {}}\nstate: Active",
            Some(KeyState::Deactivated),
        );
        let message = new.validate_update(&old).unwrap_err().to_string();
        assert!(
            message.starts_with("spec.state: a key in state Deactivated cannot move to Active; from Deactivated the legal next states are: Compromised, Destroyed"),
            "{message}"
        );
        let compromised = key("provider: {local: {}}\nstate: Compromised", None);
        compromised
            .validate_update(&old)
            .expect("Deactivated -> Compromised is legal");
    }

    #[test]
    fn provider_algorithm_and_usage_are_immutable() {
        let old = key("provider: {local: {}}", Some(KeyState::Active));
        let new = key(
            "provider: {aws: {region: eu-west-1}}\nalgorithm: RSA4096\nusage: Seal",
            Some(KeyState::Active),
        );
        let err = new.validate_update(&old).unwrap_err();
        assert!(err.mentions("spec.provider"));
        assert!(err.mentions("spec.algorithm"));
        assert!(err.mentions("spec.usage"));
        assert!(
            err.to_string()
                .contains("cannot change from AES256 to RSA4096")
        );
        let same = key(
            "provider: {local: {}}\ndescription: new text",
            Some(KeyState::Active),
        );
        same.validate_update(&old).expect("description may change");
    }

    #[test]
    fn an_adopted_key_stays_adopted_and_no_key_is_adopted_later() {
        let made = key(
            "provider: {aws: {region: eu-west-1}}",
            Some(KeyState::Active),
        );
        let adopted = key(
            "provider: {aws: {region: eu-west-1}}\nexistingKey: alias/terraform/a",
            Some(KeyState::Active),
        );
        assert!(
            adopted
                .validate_update(&made)
                .unwrap_err()
                .mentions("spec.existingKey")
        );
        assert!(
            made.validate_update(&adopted)
                .unwrap_err()
                .mentions("spec.existingKey")
        );
        adopted.validate_update(&adopted).expect("unchanged");
    }
}
