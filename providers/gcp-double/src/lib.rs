//! A test double of the Cloud KMS REST API (v1), written from Google's
//! public REST reference. It implements only the calls the Keyward
//! provider makes, with real cryptography (AES-256-GCM for symmetric keys,
//! RSA-OAEP-SHA256 for `ASYMMETRIC_DECRYPT` keys, RSA-PSS, ECDSA P-256 and
//! Ed25519 for `ASYMMETRIC_SIGN` keys, all via `keyward_core::crypto`),
//! the documented state rules and automatic rotation of symmetric keys
//! (`rotationPeriod` + `nextRotationTime`). It is **not** Google's service:
//! quotas, IAM, latency and exact error texts of the real service differ,
//! and CRC32C integrity fields are neither checked nor sent.
//!
//! Test-support code: a dev-dependency of `keyward-provider-gcp` and
//! `keyward-e2e`, never of a shipped crate. Reach it with the provider's
//! endpoint override and anonymous credentials (`--gcp-endpoint` plus
//! `--gcp-anonymous` for the binaries).
//!
//! Test hooks: answer `RESOURCE_EXHAUSTED` N times ([`Double::throttle`]),
//! drop every connection ([`Double::set_down`]), stop listening
//! ([`Double::stop`]), look at a key ([`Double::key`]), and run a key's
//! scheduled rotation now ([`Double::fire_scheduled_rotation`],
//! [`Double::set_next_rotation_time`]).
#![forbid(unsafe_code)]

mod kms;
mod rotation;
mod signing;
mod wire;

use keyward_double_kit::{Faults, Reply, Server};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use kms::KeySnapshot;
pub use rotation::RotationHookError;

struct Shared {
    kms: Arc<Mutex<kms::Kms>>,
    /// Throttled calls answer RESOURCE_EXHAUSTED (429); down drops
    /// every connection.
    faults: Arc<Faults>,
}

/// A running double on a loopback port; stops on drop.
pub struct Double {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: Server,
}

/// The one key ring the double serves (Keyward never creates key rings).
pub const KEY_RING: &str = "projects/keyward-test/locations/europe-west1/keyRings/keyward";

impl Double {
    /// Starts with one key ring, [`KEY_RING`].
    pub async fn start() -> Double {
        let (listener, addr) = keyward_double_kit::bind_loopback("Cloud KMS double").await;
        let shared = Arc::new(Shared {
            kms: Arc::new(Mutex::new(kms::Kms::new(KEY_RING))),
            faults: Arc::default(),
        });
        let server = Server::start(
            listener,
            Some(shared.faults.clone()),
            keyward_double_kit::plain,
            {
                let shared = shared.clone();
                move |request| handle(shared.clone(), request)
            },
        );
        Double {
            addr,
            shared,
            server,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next `times` requests (to `only`, if given) with
    /// `RESOURCE_EXHAUSTED`.
    pub fn throttle(&self, times: u32, only: Option<&'static str>) {
        self.shared.faults.throttle(times, only);
    }

    /// Drops every connection (new and kept-alive) while `down`.
    pub fn set_down(&self, down: bool) {
        self.shared.faults.set_down(down);
    }

    /// How many requests reached an RPC (`Decrypt`, `Encrypt`...).
    pub fn calls(&self, rpc: &str) -> u32 {
        self.shared.faults.calls(rpc)
    }

    pub fn reset_calls(&self) {
        self.shared.faults.reset_calls();
    }

    /// What the double holds for a crypto key (its full resource name),
    /// after any scheduled rotation that is due.
    pub fn key(&self, name: &str) -> Option<KeySnapshot> {
        let mut kms = self.shared.kms.lock().unwrap();
        rotation::rotate_due(&self.shared.kms, &mut kms, SystemTime::now());
        kms.snapshot(name)
    }

    /// Runs the scheduled (automatic) rotation of crypto key `name` now,
    /// as Cloud KMS does when `nextRotationTime` passes: a new version is
    /// created and made primary, and `nextRotationTime` becomes now plus
    /// `rotationPeriod`. Returns the new primary version number.
    ///
    /// The key must have a schedule (set through `UpdateCryptoKey`, e.g.
    /// `GcpKmsProvider::set_native_rotation`); a key without one is
    /// refused, as Cloud KMS would never rotate it. Versions created by
    /// hand (`CreateCryptoKeyVersion`) do not move the schedule.
    pub fn fire_scheduled_rotation(&self, name: &str) -> Result<u32, RotationHookError> {
        let mut kms = self.shared.kms.lock().unwrap();
        rotation::fire_now(&self.shared.kms, &mut kms, name, SystemTime::now())
    }

    /// Moves crypto key `name`'s `nextRotationTime` to `at` (which may be
    /// in the past, unlike through the API). The rotation then happens on
    /// the next request that reaches the double at or after `at` (or the
    /// next [`Double::key`]): the double evaluates schedules lazily, and
    /// several missed periods make one rotation.
    pub fn set_next_rotation_time(
        &self,
        name: &str,
        at: SystemTime,
    ) -> Result<(), RotationHookError> {
        let mut kms = self.shared.kms.lock().unwrap();
        rotation::set_next(&mut kms, name, at)
    }

    /// Stops listening and closes every connection.
    pub fn stop(&self) {
        self.server.stop();
    }
}

async fn handle(shared: Arc<Shared>, request: hyper::Request<hyper::body::Incoming>) -> Reply {
    // Down is the server's: it drops the connection before this runs.
    let request = keyward_double_kit::read_request(request).await?;
    let route = wire::route(&request.method, &request.path);
    let rpc = route.as_ref().map(|r| r.rpc).unwrap_or("Unknown");
    if shared.faults.count_and_throttle(rpc) {
        return Ok(wire::error(
            wire::Status::ResourceExhausted,
            "Quota exceeded for quota metric 'Cryptographic requests' (test double).",
        ));
    }
    let Some(route) = route else {
        return Ok(wire::error(
            wire::Status::NotFound,
            &format!(
                "the Cloud KMS double does not serve {} {}",
                request.method, request.path
            ),
        ));
    };
    let json = match request.json() {
        Ok(value) => value,
        Err(e) => {
            return Ok(wire::error(
                wire::Status::InvalidArgument,
                &format!("Invalid JSON payload received. {e}"),
            ));
        }
    };
    let answer = kms::dispatch(&shared.kms, &route, &request.query, &json);
    Ok(match answer {
        Ok(value) => wire::ok(&value),
        Err((status, message)) => wire::error(status, &message),
    })
}
