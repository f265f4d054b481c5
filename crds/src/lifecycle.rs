//! Key lifecycle states of NIST SP 800-57 Part 1 and the transitions
//! between them, as plain data shared by the operator and the webhook.
//!
//! ```text
//! PreActivation -> Active -> Deactivated -> Destroyed
//!                  Active <-> Suspended
//!         Active|Suspended|Deactivated -> Compromised -> Destroyed
//! ```

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The state of one key version; a key's state is its primary version's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum KeyState {
    /// Generated but not yet usable; waits for `activateAt` or an explicit
    /// `state: Active`.
    PreActivation,
    /// Encrypts and decrypts.
    Active,
    /// Temporarily unusable for anything; can return to Active.
    Suspended,
    /// Decrypts only, so existing SealedSecrets keep working until re-wrapped.
    Deactivated,
    /// Decrypts only for re-wrapping; triggers an emergency rotation.
    Compromised,
    /// Deleted from the provider after the deletion window; final.
    Destroyed,
}

impl KeyState {
    /// Every state, in lifecycle order.
    pub const ALL: [KeyState; 6] = [
        KeyState::PreActivation,
        KeyState::Active,
        KeyState::Suspended,
        KeyState::Deactivated,
        KeyState::Compromised,
        KeyState::Destroyed,
    ];

    /// The states a version in this state may move to, in lifecycle order.
    pub const fn legal_next(self) -> &'static [KeyState] {
        use KeyState::*;
        match self {
            PreActivation => &[Active],
            Active => &[Suspended, Deactivated, Compromised],
            Suspended => &[Active, Compromised],
            Deactivated => &[Compromised, Destroyed],
            Compromised => &[Destroyed],
            Destroyed => &[],
        }
    }

    /// Whether new data may be encrypted (sealed, wrapped) under this version.
    pub const fn can_encrypt(self) -> bool {
        matches!(self, KeyState::Active)
    }

    /// Whether existing data may be decrypted (unsealed, unwrapped).
    /// Compromised versions decrypt only so dependants can be re-wrapped;
    /// the webhook must not serve them to pods.
    pub const fn can_decrypt(self) -> bool {
        matches!(
            self,
            KeyState::Active | KeyState::Deactivated | KeyState::Compromised
        )
    }

    /// Whether the version may serve an unseal request from a pod. The
    /// webhook enforces it (`webhook/src/key_state/serving.rs`).
    pub const fn can_unseal_for_pods(self) -> bool {
        matches!(self, KeyState::Active | KeyState::Deactivated)
    }

    /// Whether no transition leaves this state.
    pub const fn is_final(self) -> bool {
        self.legal_next().is_empty()
    }

    /// The name used in YAML.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyState::PreActivation => "PreActivation",
            KeyState::Active => "Active",
            KeyState::Suspended => "Suspended",
            KeyState::Deactivated => "Deactivated",
            KeyState::Compromised => "Compromised",
            KeyState::Destroyed => "Destroyed",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator must do to honour a requested state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// Requested state equals the current one: nothing to do.
    Unchanged(KeyState),
    /// PreActivation -> Active: enable the version for encryption.
    Activate,
    /// Active -> Suspended: disable the version at the provider.
    Suspend,
    /// Suspended -> Active: re-enable the version.
    Resume,
    /// Active -> Deactivated: stop encrypting, keep decrypting.
    Deactivate,
    /// Active|Suspended|Deactivated -> Compromised: rotate at once and
    /// re-wrap every dependant.
    MarkCompromised {
        /// The state the version was in.
        from: KeyState,
    },
    /// Deactivated|Compromised -> Destroyed: schedule provider deletion
    /// after the deletion window, once no SealedSecret depends on it.
    ScheduleDestruction {
        /// The state the version was in.
        from: KeyState,
    },
}

impl Transition {
    /// State before the transition.
    pub const fn from(self) -> KeyState {
        match self {
            Transition::Unchanged(state) => state,
            Transition::Activate => KeyState::PreActivation,
            Transition::Suspend | Transition::Deactivate => KeyState::Active,
            Transition::Resume => KeyState::Suspended,
            Transition::MarkCompromised { from } | Transition::ScheduleDestruction { from } => from,
        }
    }

    /// State after the transition.
    pub const fn to(self) -> KeyState {
        match self {
            Transition::Unchanged(state) => state,
            Transition::Activate | Transition::Resume => KeyState::Active,
            Transition::Suspend => KeyState::Suspended,
            Transition::Deactivate => KeyState::Deactivated,
            Transition::MarkCompromised { .. } => KeyState::Compromised,
            Transition::ScheduleDestruction { .. } => KeyState::Destroyed,
        }
    }
}

/// A requested state that cannot be reached from the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct IllegalTransition {
    /// Current state.
    pub from: KeyState,
    /// Requested state.
    pub to: KeyState,
}

impl IllegalTransition {
    /// The states that would have been accepted instead.
    pub const fn legal_next(&self) -> &'static [KeyState] {
        self.from.legal_next()
    }

    fn message(&self) -> String {
        let Self { from, to } = *self;
        let legal = self.legal_next();
        let mut msg = format!("a key in state {from} cannot move to {to}; ");
        if legal.is_empty() {
            msg.push_str(&format!(
                "{from} is final and allows no further state; create a new ManagedKey instead"
            ));
            return msg;
        }
        let names: Vec<&str> = legal.iter().map(|s| s.as_str()).collect();
        msg.push_str(&format!(
            "from {from} the legal next states are: {}",
            names.join(", ")
        ));
        if let Some(hint) = hint(from, to) {
            msg.push_str("; ");
            msg.push_str(hint);
        }
        msg
    }
}

/// Advice for the mistakes people are likely to make.
fn hint(from: KeyState, to: KeyState) -> Option<&'static str> {
    use KeyState::*;
    match (from, to) {
        (Deactivated | Compromised, Active) => Some(
            "a retired version never encrypts again; rotate the key to get a new Active version",
        ),
        (Active | Suspended, Destroyed) => {
            Some("set state Deactivated first so existing SealedSecrets can be re-wrapped")
        }
        (PreActivation, Destroyed) => {
            Some("activate it or delete the ManagedKey object if it was never used")
        }
        (_, PreActivation) => Some("a version that was used cannot become unused again"),
        _ => None,
    }
}

/// Decides how to get from `from` to `to`, or explains why that is not allowed.
pub fn transition(from: KeyState, to: KeyState) -> Result<Transition, IllegalTransition> {
    use KeyState::*;
    let step = match (from, to) {
        _ if from == to => Transition::Unchanged(from),
        (PreActivation, Active) => Transition::Activate,
        (Active, Suspended) => Transition::Suspend,
        (Suspended, Active) => Transition::Resume,
        (Active, Deactivated) => Transition::Deactivate,
        (Active | Suspended | Deactivated, Compromised) => Transition::MarkCompromised { from },
        (Deactivated | Compromised, Destroyed) => Transition::ScheduleDestruction { from },
        _ => return Err(IllegalTransition { from, to }),
    };
    Ok(step)
}
