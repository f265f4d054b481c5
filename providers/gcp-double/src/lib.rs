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

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

pub use kms::KeySnapshot;
pub use rotation::RotationHookError;

#[derive(Default)]
struct Faults {
    /// Answer this many requests with RESOURCE_EXHAUSTED (429).
    throttle: u32,
    /// Only requests to this RPC (e.g. `Decrypt`) are throttled.
    throttle_only: Option<&'static str>,
    calls: HashMap<&'static str, u32>,
}

struct Shared {
    kms: Arc<Mutex<kms::Kms>>,
    faults: Mutex<Faults>,
    down: AtomicBool,
}

/// A running double on a loopback port; stops on drop.
pub struct Double {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

/// The one key ring the double serves (Keyward never creates key rings).
pub const KEY_RING: &str = "projects/keyward-test/locations/europe-west1/keyRings/keyward";

impl Double {
    /// Starts with one key ring, [`KEY_RING`].
    pub async fn start() -> Double {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the Cloud KMS double");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            kms: Arc::new(Mutex::new(kms::Kms::new(KEY_RING))),
            faults: Mutex::new(Faults::default()),
            down: AtomicBool::new(false),
        });
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = {
            let shared = shared.clone();
            let tasks = tasks.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    if shared.down.load(Ordering::SeqCst) {
                        drop(stream);
                        continue;
                    }
                    let shared = shared.clone();
                    let connection = tokio::spawn(async move {
                        let service = service_fn(move |request| handle(shared.clone(), request));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                    tasks.lock().unwrap().push(connection.abort_handle());
                }
            })
        };
        tasks.lock().unwrap().push(accept.abort_handle());
        Double {
            addr,
            shared,
            tasks,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next `times` requests (to `only`, if given) with
    /// `RESOURCE_EXHAUSTED`.
    pub fn throttle(&self, times: u32, only: Option<&'static str>) {
        let mut faults = self.shared.faults.lock().unwrap();
        faults.throttle = times;
        faults.throttle_only = only;
    }

    /// Drops every connection (new and kept-alive) while `down`.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// How many requests reached an RPC (`Decrypt`, `Encrypt`...).
    pub fn calls(&self, rpc: &str) -> u32 {
        let faults = self.shared.faults.lock().unwrap();
        faults.calls.get(rpc).copied().unwrap_or(0)
    }

    pub fn reset_calls(&self) {
        self.shared.faults.lock().unwrap().calls.clear();
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
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    if shared.down.load(Ordering::SeqCst) {
        // An error from the service makes hyper drop the connection.
        return Err(std::io::Error::other("the double is down"));
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = wire::parse_query(request.uri().query().unwrap_or(""));
    let body = request
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let route = wire::route(&method, &path);
    let rpc = route.as_ref().map(|r| r.rpc).unwrap_or("Unknown");
    {
        let mut faults = shared.faults.lock().unwrap();
        *faults.calls.entry(rpc).or_default() += 1;
        let applies = faults.throttle_only.is_none_or(|only| only == rpc);
        if faults.throttle > 0 && applies {
            faults.throttle -= 1;
            return Ok(wire::error(
                wire::Status::ResourceExhausted,
                "Quota exceeded for quota metric 'Cryptographic requests' (test double).",
            ));
        }
    }
    let Some(route) = route else {
        return Ok(wire::error(
            wire::Status::NotFound,
            &format!("the Cloud KMS double does not serve {method} {path}"),
        ));
    };
    let json: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(e) => {
                return Ok(wire::error(
                    wire::Status::InvalidArgument,
                    &format!("Invalid JSON payload received. {e}"),
                ));
            }
        }
    };
    let answer = kms::dispatch(&shared.kms, &route, &query, &json);
    Ok(match answer {
        Ok(value) => wire::ok(&value),
        Err((status, message)) => wire::error(status, &message),
    })
}
