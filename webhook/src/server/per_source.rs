//! A cap on the connections one source address holds open on a listener, so
//! one tenant pod cannot take every slot of the listener-wide cap and lock
//! the other pods' injectors out.

use super::pre_auth::source_key;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub(super) struct PerSource {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One open connection of a source; gives its slot back when dropped.
pub(super) struct SourceSlot {
    owner: Arc<PerSource>,
    key: String,
}

impl PerSource {
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(PerSource {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `peer`, or `None` when it already holds `max`.
    pub(super) fn try_open(self: &Arc<Self>, peer: SocketAddr) -> Option<SourceSlot> {
        let key = source_key(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key.clone()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            owner: Arc::clone(self),
            key,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                // Forgotten at zero, so the map holds only sources with a
                // connection open: bounded by the listener's own cap.
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_at_most_max_and_its_slots_come_back() {
        let cap = PerSource::new(2);
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1000".parse().unwrap();
        let first = cap.try_open(a).unwrap();
        let _second = cap.try_open(a).unwrap();
        assert!(cap.try_open(a).is_none(), "a third from one source");
        assert!(cap.try_open(b).is_some(), "another source is not affected");
        drop(first);
        assert!(cap.try_open(a).is_some(), "a closed slot is reusable");
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let cap = PerSource::new(1);
        let slot = cap.try_open("10.0.0.1:1".parse().unwrap()).unwrap();
        drop(slot);
        assert!(cap.open.lock().unwrap().is_empty());
    }
}
