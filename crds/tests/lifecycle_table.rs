//! Every one of the 36 (current, requested) state pairs, against a table
//! written out by hand from DESIGN.md.

use keyward_crds::lifecycle::{KeyState, Transition, transition};

use KeyState::*;

/// `true` where DESIGN.md allows moving from the row state to the column
/// state (the diagonal is "unchanged", also allowed).
const LEGAL: [(KeyState, [bool; 6]); 6] = [
    //                 PreAct  Active Susp   Deact  Compr  Destr
    (PreActivation, [true, true, false, false, false, false]),
    (Active, [false, true, true, true, true, false]),
    (Suspended, [false, true, true, false, true, false]),
    (Deactivated, [false, false, false, true, true, true]),
    (Compromised, [false, false, false, false, true, true]),
    (Destroyed, [false, false, false, false, false, true]),
];

#[test]
fn all_36_pairs_match_the_design_table() {
    let mut checked = 0;
    for (from, row) in LEGAL {
        for (to, legal) in KeyState::ALL.into_iter().zip(row) {
            checked += 1;
            match transition(from, to) {
                Ok(step) => {
                    assert!(legal, "{from} -> {to} must be refused, got {step:?}");
                    assert_eq!((step.from(), step.to()), (from, to));
                    assert_eq!(matches!(step, Transition::Unchanged(_)), from == to);
                }
                Err(err) => {
                    assert!(!legal, "{from} -> {to} must be allowed, got: {err}");
                    assert_eq!((err.from, err.to), (from, to));
                    let message = err.to_string();
                    assert!(message.contains(&format!("state {from} cannot move to {to}")));
                    for next in KeyState::ALL {
                        let listed = err.legal_next().contains(&next);
                        assert_eq!(listed, row[next as usize] && next != from, "{from}->{next}");
                    }
                    if from == Destroyed {
                        assert!(message.contains("final"), "{message}");
                    } else {
                        let names: Vec<&str> =
                            err.legal_next().iter().map(|s| s.as_str()).collect();
                        let listed = format!("legal next states are: {}", names.join(", "));
                        assert!(message.contains(&listed), "{message}");
                    }
                }
            }
        }
    }
    assert_eq!(checked, 36);
}

#[test]
fn legal_next_agrees_with_transition() {
    for from in KeyState::ALL {
        for to in KeyState::ALL {
            let allowed = from != to && transition(from, to).is_ok();
            assert_eq!(from.legal_next().contains(&to), allowed, "{from} -> {to}");
        }
    }
}

#[test]
fn messages_read_well() {
    let err = transition(Deactivated, Active).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a key in state Deactivated cannot move to Active; from Deactivated the legal next \
         states are: Compromised, Destroyed; a retired version never encrypts again; rotate \
         the key to get a new Active version"
    );
    let err = transition(Destroyed, Active).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a key in state Destroyed cannot move to Active; Destroyed is final and allows no \
         further state; create a new ManagedKey instead"
    );
}

#[test]
fn capabilities_follow_the_design() {
    let encrypt: Vec<_> = KeyState::ALL
        .into_iter()
        .filter(|s| s.can_encrypt())
        .collect();
    assert_eq!(encrypt, [Active]);
    let decrypt: Vec<_> = KeyState::ALL
        .into_iter()
        .filter(|s| s.can_decrypt())
        .collect();
    assert_eq!(decrypt, [Active, Deactivated, Compromised]);
    let pods: Vec<_> = KeyState::ALL
        .into_iter()
        .filter(|s| s.can_unseal_for_pods())
        .collect();
    assert_eq!(pods, [Active, Deactivated]);
    assert!(Destroyed.is_final());
    assert!(!Compromised.is_final());
}

#[test]
fn states_serialize_as_their_names() {
    for state in KeyState::ALL {
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(json, format!("\"{state}\""));
        assert_eq!(serde_json::from_str::<KeyState>(&json).unwrap(), state);
    }
}
