//! The attacker: idle TLS connections, slow-header connections and a flood
//! of junk unseal requests. Every loop is bounded in count and by a
//! deadline, and gives up cleanly when the server stops answering; held
//! connections close when their [`Held`] is dropped.

use super::http::{Conn, connect};
use hyper::body::Bytes;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// Connections held open: how many were opened at first, and how often
/// the server has closed or refused one since. Every one of them keeps
/// trying, as an attacker would, so the pressure stays on: a closed one is
/// opened again after 200 ms, a refused one after [`REFUSED_RETRY`].
pub struct Held {
    pub wanted: usize,
    pub sources: usize,
    pub opened: usize,
    pub took: Duration,
    counts: Arc<Counts>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct Counts {
    /// First tries that succeeded, and first tries done at all.
    opened: AtomicUsize,
    tried: AtomicUsize,
    closed: AtomicUsize,
    refused: AtomicUsize,
}

impl Held {
    pub fn closed_by_server(&self) -> usize {
        self.counts.closed.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> usize {
        self.counts.refused.load(Ordering::Relaxed)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} of {} open from {} addresses after {:.1} s; since then closed by the server {} times, connections refused {} times (each tried again)",
            self.opened,
            self.wanted,
            self.sources,
            self.took.as_secs_f64(),
            self.closed_by_server(),
            self.refused()
        )
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

type Stream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// How long an attacker whose connection was refused waits to try again:
/// the attack is connections held open, not a connect flood (which the
/// server meets at accept, per source, before any TLS work).
pub const REFUSED_RETRY: Duration = Duration::from_secs(5);

/// Starts `count` attackers, the `i`th from `sources[i % len]`, each
/// holding one connection with `hold` (which returns when the server
/// closes it) and opening it again until the [`Held`] is dropped. Their
/// first tries go 64 at a time (a burst beyond the listen backlog would
/// measure the kernel); this returns once all were tried or at `deadline`.
async fn open_many<F, Fut>(
    connector: &TlsConnector,
    sources: &[IpAddr],
    to: SocketAddr,
    count: usize,
    deadline: Instant,
    hold: F,
) -> Held
where
    F: Fn(Stream) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let counts = Arc::new(Counts::default());
    let first_tries = Arc::new(tokio::sync::Semaphore::new(64));
    let tasks = (0..count)
        .map(|i| {
            let from = sources[i % sources.len()];
            let (connector, counts, hold) = (connector.clone(), counts.clone(), hold.clone());
            let first_tries = first_tries.clone();
            tokio::spawn(async move {
                let first = {
                    let _turn = first_tries.acquire().await;
                    let opened = tokio::time::timeout(
                        Duration::from_secs(10),
                        connect(&connector, from, to),
                    )
                    .await;
                    counts.tried.fetch_add(1, Ordering::Relaxed);
                    opened.ok().and_then(Result::ok)
                };
                let mut stream = match first {
                    Some(stream) => {
                        counts.opened.fetch_add(1, Ordering::Relaxed);
                        Some(stream)
                    }
                    None => {
                        counts.refused.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                };
                loop {
                    match stream.take() {
                        Some(open) => {
                            hold(open).await;
                            counts.closed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        None => tokio::time::sleep(REFUSED_RETRY).await,
                    }
                    let reopen = connect(&connector, from, to);
                    match tokio::time::timeout(Duration::from_secs(10), reopen).await {
                        Ok(Ok(s)) => stream = Some(s),
                        _ => {
                            counts.refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    while counts.tried.load(Ordering::Relaxed) < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Held {
        wanted: count,
        sources: sources.len(),
        opened: counts.opened.load(Ordering::Relaxed),
        took: started.elapsed(),
        counts,
        tasks,
    }
}

/// TLS connections that never send a byte.
pub async fn idle(
    connector: &TlsConnector,
    sources: &[IpAddr],
    to: SocketAddr,
    count: usize,
    deadline: Instant,
) -> Held {
    open_many(
        connector,
        sources,
        to,
        count,
        deadline,
        |mut stream| async move {
            let mut byte = [0u8; 1];
            let _ = stream.read(&mut byte).await;
        },
    )
    .await
}

/// Slowloris: a request line, then one more header line every `every`,
/// never the blank line that ends the headers.
pub async fn slow_headers(
    connector: &TlsConnector,
    sources: &[IpAddr],
    to: SocketAddr,
    count: usize,
    every: Duration,
    deadline: Instant,
) -> Held {
    open_many(
        connector,
        sources,
        to,
        count,
        deadline,
        move |stream| async move {
            let (mut read, mut write) = tokio::io::split(stream);
            let mut sent = write
                .write_all(b"POST /v1/unseal HTTP/1.1\r\nhost: 127.0.0.1\r\n")
                .await;
            let mut line = 0u64;
            let mut byte = [0u8; 1];
            while sent.is_ok() {
                tokio::select! {
                    _ = read.read(&mut byte) => break,
                    () = tokio::time::sleep(every) => {
                        line += 1;
                        sent = write.write_all(format!("x-slow-{line}: 1\r\n").as_bytes()).await;
                    }
                }
            }
        },
    )
    .await
}

const MIB: usize = 1 << 20;

/// The junk bodies, in the order they are sent round-robin: each is
/// unauthenticated and about 1 MiB, except the last, a well-formed request
/// with a forged token (what a tenant can send at any size the server
/// allows). `ns` is a real namespace.
pub fn junk_bodies(ns: &str) -> Vec<(&'static str, Bytes)> {
    let huge = |c: char| c.to_string().repeat(MIB);
    let many: Vec<String> = (0..MIB / 12).map(|i| format!("s-{i:08}")).collect();
    let bodies = [
        (
            "1 MiB token, empty secrets",
            json!({"token": huge('t'), "namespace": ns, "pod": "p", "secrets": []}),
        ),
        (
            "1 MiB namespace",
            json!({"token": "forged", "namespace": huge('n'), "pod": "p", "secrets": ["s"]}),
        ),
        (
            "1 MiB secret name",
            json!({"token": "forged", "namespace": ns, "pod": "p", "secrets": [huge('s')]}),
        ),
        (
            "87,381 secret names",
            json!({"token": "forged", "namespace": ns, "pod": "p", "secrets": many}),
        ),
        (
            "well-formed, forged token",
            json!({"token": "forged", "namespace": ns, "pod": "no-such-pod", "secrets": ["ten"]}),
        ),
    ];
    bodies
        .into_iter()
        .map(|(name, body)| (name, Bytes::from(body.to_string())))
        .collect()
}

/// What the flood got back.
#[derive(Default)]
pub struct Flood {
    pub wanted: usize,
    /// Requests whose answer (any status) arrived.
    pub answered: usize,
    /// Answers and failures by status, or `connect`, `error`, `timeout`.
    pub outcomes: BTreeMap<String, usize>,
    pub took: Duration,
    /// Every request was sent and settled before the deadline.
    pub finished: bool,
}

/// The outcome of a request that could not even connect.
const CONNECT_FAILED: &str = "connect failed";

impl Flood {
    /// Requests actually sent (answered or not).
    pub fn sent(&self) -> usize {
        let refused = self.outcomes.get(CONNECT_FAILED).copied().unwrap_or(0);
        self.outcomes.values().sum::<usize>() - refused
    }

    pub fn summary(&self) -> String {
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "{} sent (at least {} wanted), {} answered, in {:.1} s{}; {}",
            self.sent(),
            self.wanted,
            self.answered,
            self.took.as_secs_f64(),
            if self.finished {
                ""
            } else {
                " (stopped at the deadline)"
            },
            outcomes.join(", ")
        )
    }
}

/// Sends junk requests to `/v1/unseal` over `connections` keep-alive
/// connections as fast as the server takes them, reconnecting when the
/// server closes one: at least `count`, and on until `window_ends`. Each
/// request is given 30 s, the whole flood until `deadline`.
pub async fn flood(
    connector: &TlsConnector,
    from: IpAddr,
    to: SocketAddr,
    bodies: &[(&'static str, Bytes)],
    (count, connections): (usize, usize),
    window_ends: Instant,
    deadline: Instant,
) -> Flood {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Flood {
        wanted: count,
        ..Flood::default()
    }));
    let note = |tally: &Mutex<Flood>, outcome: String, answered: bool| {
        let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
        tally.answered += usize::from(answered);
        *tally.outcomes.entry(outcome).or_default() += 1;
    };
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (connector, next, tally) = (connector.clone(), next.clone(), tally.clone());
        let bodies: Vec<Bytes> = bodies.iter().map(|(_, b)| b.clone()).collect();
        workers.spawn(async move {
            let mut conn: Option<Conn> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                if (i >= count && now >= window_ends) || now > deadline {
                    return;
                }
                if conn.as_ref().is_none_or(Conn::is_closed) {
                    match tokio::time::timeout(
                        Duration::from_secs(10),
                        Conn::open(&connector, from, to),
                    )
                    .await
                    {
                        Ok(Ok(opened)) => conn = Some(opened),
                        _ => {
                            note(&tally, CONNECT_FAILED.into(), false);
                            // Refused or capped: back off, do not spin.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    }
                }
                let Some(open) = conn.as_mut() else { continue };
                let body = bodies[i % bodies.len()].clone();
                match tokio::time::timeout(Duration::from_secs(30), open.post("/v1/unseal", body))
                    .await
                {
                    Ok(Ok((status, _))) => note(&tally, status.as_u16().to_string(), true),
                    Ok(Err(_)) => {
                        note(&tally, "connection error".into(), false);
                        conn = None;
                    }
                    Err(_) => {
                        note(&tally, "timeout (30 s)".into(), false);
                        conn = None;
                    }
                }
            }
        });
    }
    // Past the deadline plus one request's time, whatever is still stuck
    // in a request is aborted.
    let left = deadline.saturating_duration_since(Instant::now());
    let all = async { while workers.join_next().await.is_some() {} };
    let finished = tokio::time::timeout(left + Duration::from_secs(31), all)
        .await
        .is_ok();
    workers.abort_all();
    let mut tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
    tally.took = started.elapsed();
    let settled: usize = tally.outcomes.values().sum();
    tally.finished = finished && settled >= count;
    tally
}
