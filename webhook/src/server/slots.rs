//! The connection slots of one listener: a cap on open connections, a
//! smaller cap per source address, and what happens when the listener is
//! full.
//!
//! Refusing every new connection at the cap would let a tenant with many
//! pods (addresses) hold all the slots with silent connections and lock the
//! other pods' injectors out until those time out. So, as nginx drains idle
//! keep-alive connections when it runs out, a new connection at the cap
//! closes an idle one (no request in flight) instead, taken from the source
//! holding the most connections, oldest first. It does so only when that
//! source holds at least two more than the newcomer's: a source with a fair
//! share is never displaced, and sources that all hold about the same
//! number stop displacing each other (no churn of TLS handshakes).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub(super) struct Slots {
    max_total: usize,
    max_per_source: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Open connections by id; ids grow, so the first is the oldest.
    open: BTreeMap<u64, Entry>,
    per_source: HashMap<String, usize>,
}

struct Entry {
    source: String,
    shared: Arc<Shared>,
}

/// What a connection and the registry both see.
#[derive(Default)]
struct Shared {
    in_flight: AtomicUsize,
    evicted: Notify,
}

/// Why a connection got no slot.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its source already holds its cap.
    SourceFull,
    /// The listener is full and no idle connection may be displaced.
    ListenerFull,
}

/// A slot taken: whether an idle connection was closed to make room.
pub(super) struct Opened {
    pub slot: Slot,
    pub displaced_another: bool,
}

/// One open connection's slot; given back when dropped.
pub(super) struct Slot {
    owner: Arc<Slots>,
    id: u64,
    shared: Arc<Shared>,
}

/// Counts a request in flight on its connection while it lives.
pub(super) struct InFlight(Arc<Shared>);

impl Slots {
    pub(super) fn new(max_total: usize, max_per_source: usize) -> Arc<Self> {
        Arc::new(Slots {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// A slot for a connection from `source` (`pre_auth::source_key`).
    pub(super) fn try_open(self: &Arc<Self>, source: String) -> Result<Opened, Refused> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let held = state.per_source.get(&source).copied().unwrap_or(0);
        if held >= self.max_per_source {
            return Err(Refused::SourceFull);
        }
        let mut displaced_another = false;
        if state.open.len() >= self.max_total {
            let victim = state.idle_victim(held).ok_or(Refused::ListenerFull)?;
            state.close(victim);
            displaced_another = true;
        }
        let id = state.next_id;
        state.next_id += 1;
        let shared = Arc::new(Shared::default());
        *state.per_source.entry(source.clone()).or_default() += 1;
        state.open.insert(
            id,
            Entry {
                source,
                shared: shared.clone(),
            },
        );
        Ok(Opened {
            slot: Slot {
                owner: Arc::clone(self),
                id,
                shared,
            },
            displaced_another,
        })
    }
}

impl State {
    /// The oldest idle connection of the source holding the most, if that
    /// source holds at least two more than `newcomer_holds`.
    fn idle_victim(&self, newcomer_holds: usize) -> Option<u64> {
        let mut best: Option<(usize, u64)> = None;
        for (&id, entry) in &self.open {
            if entry.shared.in_flight.load(Ordering::Acquire) > 0 {
                continue;
            }
            let holds = self.per_source.get(&entry.source).copied().unwrap_or(0);
            // Strictly more, so the oldest of equals stays chosen.
            if best.is_none_or(|(most, _)| holds > most) {
                best = Some((holds, id));
            }
        }
        best.filter(|&(holds, _)| holds >= newcomer_holds + 2)
            .map(|(_, id)| id)
    }

    /// Forgets `id` and tells its connection to close.
    fn close(&mut self, id: u64) {
        if let Some(entry) = self.open.remove(&id) {
            self.forget_source(&entry.source);
            entry.shared.evicted.notify_one();
        }
    }

    fn forget_source(&mut self, source: &str) {
        if let Some(count) = self.per_source.get_mut(source) {
            *count -= 1;
            if *count == 0 {
                // Forgotten at zero, so the map holds only sources with a
                // connection open: bounded by the listener's cap.
                self.per_source.remove(source);
            }
        }
    }
}

impl Slot {
    /// What the connection's service counts its requests with.
    pub(super) fn in_flight_counter(&self) -> InFlightCounter {
        InFlightCounter(self.shared.clone())
    }

    pub(super) fn busy(&self) -> bool {
        self.shared.in_flight.load(Ordering::Acquire) > 0
    }

    /// Completes once the listener has closed this connection to make
    /// room for another.
    pub(super) async fn evicted(&self) {
        self.shared.evicted.notified().await;
    }
}

/// A cheap handle the connection's service uses to count its requests.
#[derive(Clone)]
pub(super) struct InFlightCounter(Arc<Shared>);

impl InFlightCounter {
    /// Marks a request in flight until the returned guard drops.
    pub(super) fn start(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.0.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.owner.state.lock().unwrap_or_else(|e| e.into_inner());
        // Already gone when it was displaced.
        if let Some(entry) = state.open.remove(&self.id) {
            state.forget_source(&entry.source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn peer(last: u8) -> String {
        format!("10.0.0.{last}")
    }

    #[test]
    fn a_source_gets_at_most_its_cap_and_its_slots_come_back() {
        let slots = Slots::new(10, 2);
        let first = slots.try_open(peer(1)).unwrap();
        let _second = slots.try_open(peer(1)).unwrap();
        assert_eq!(slots.try_open(peer(1)).err(), Some(Refused::SourceFull));
        assert!(slots.try_open(peer(2)).is_ok(), "another source");
        drop(first);
        assert!(slots.try_open(peer(1)).is_ok(), "a closed slot is reusable");
    }

    #[test]
    fn closed_sources_are_forgotten() {
        let slots = Slots::new(4, 1);
        drop(slots.try_open(peer(1)).unwrap());
        let state = slots.state.lock().unwrap();
        assert!(state.per_source.is_empty() && state.open.is_empty());
    }

    #[tokio::test]
    async fn at_the_cap_a_newcomer_displaces_the_oldest_idle_of_the_biggest_source() {
        let slots = Slots::new(4, 4);
        let oldest = slots.try_open(peer(1)).unwrap().slot;
        let _a2 = slots.try_open(peer(1)).unwrap().slot;
        let _a3 = slots.try_open(peer(1)).unwrap().slot;
        let _b1 = slots.try_open(peer(2)).unwrap().slot;
        let newcomer = slots.try_open(peer(3)).unwrap();
        assert!(newcomer.displaced_another);
        assert!(
            tokio::time::timeout(Duration::ZERO, oldest.evicted())
                .await
                .is_ok(),
            "the oldest connection of 10.0.0.1 is told to close"
        );
        let state = slots.state.lock().unwrap();
        assert_eq!(state.open.len(), 4);
        assert_eq!(state.per_source[&peer(1)], 2);
    }

    #[test]
    fn a_connection_with_a_request_in_flight_is_never_displaced() {
        let slots = Slots::new(2, 2);
        let a1 = slots.try_open(peer(1)).unwrap().slot;
        let a2 = slots.try_open(peer(1)).unwrap().slot;
        let _busy = (
            a1.in_flight_counter().start(),
            a2.in_flight_counter().start(),
        );
        assert!(a1.busy() && a2.busy());
        assert_eq!(slots.try_open(peer(2)).err(), Some(Refused::ListenerFull));
    }

    #[test]
    fn sources_with_a_fair_share_are_not_displaced() {
        // Full with one connection from each of two sources: a third
        // source holds 0, the biggest 1, short of 0 + 2.
        let slots = Slots::new(2, 4);
        let _a = slots.try_open(peer(1)).unwrap();
        let _b = slots.try_open(peer(2)).unwrap();
        assert_eq!(slots.try_open(peer(3)).err(), Some(Refused::ListenerFull));
        // Nor does a source displace its own connections.
        let slots = Slots::new(2, 4);
        let _a1 = slots.try_open(peer(1)).unwrap();
        let _a2 = slots.try_open(peer(1)).unwrap();
        assert_eq!(slots.try_open(peer(1)).err(), Some(Refused::ListenerFull));
    }

    #[test]
    fn a_displaced_slot_dropped_later_frees_nothing_twice() {
        let slots = Slots::new(2, 2);
        let a1 = slots.try_open(peer(1)).unwrap().slot;
        let _a2 = slots.try_open(peer(1)).unwrap().slot;
        let _b = slots.try_open(peer(2)).unwrap().slot;
        drop(a1);
        let state = slots.state.lock().unwrap();
        assert_eq!(state.open.len(), 2);
        assert_eq!(state.per_source[&peer(1)], 1);
        assert_eq!(state.per_source[&peer(2)], 1);
    }
}
