//! Kubernetes Events through kube's `Recorder`, which remembers every event
//! it published for 6 minutes (so a repeat becomes a series count, not a
//! new object) in a map whose table never shrinks: after a cold start at
//! 1,000 keys it held ~6 MB for good (docs/scale.md, "Memory"). A fresh
//! Recorder every [`WINDOW`] events bounds that map, and a repeat within
//! the window is still counted as a series.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};
use std::sync::Mutex;

/// Events published through one Recorder before the next one starts.
pub const WINDOW: u32 = 256;

pub struct Events {
    client: Client,
    reporter: Reporter,
    /// The current Recorder and how many events it has published.
    current: Mutex<(Recorder, u32)>,
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        let recorder = Recorder::new(client.clone(), reporter.clone());
        Events {
            client,
            reporter,
            current: Mutex::new((recorder, 0)),
        }
    }

    /// As [`Recorder::publish`].
    pub async fn publish(&self, event: &Event, reference: &ObjectReference) -> kube::Result<()> {
        self.recorder().publish(event, reference).await
    }

    fn recorder(&self) -> Recorder {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.1 >= WINDOW {
            *current = (Recorder::new(self.client.clone(), self.reporter.clone()), 0);
        }
        current.1 += 1;
        current.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fresh_recorder_starts_after_each_window() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let reporter = Reporter {
            controller: "test".into(),
            instance: None,
        };
        let events = Events::new(client, reporter);
        let count = || events.current.lock().unwrap().1;
        for _ in 0..WINDOW {
            drop(events.recorder());
        }
        assert_eq!(count(), WINDOW);
        drop(events.recorder());
        assert_eq!(count(), 1, "the next event starts a new window");
    }
}
