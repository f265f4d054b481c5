//! The attacker: idle TLS connections, slow-header connections and a flood
//! of junk unseal requests. Every loop is bounded in count and by a
//! deadline, and gives up cleanly when the server stops answering; held
//! connections close when their [`Held`] is dropped.

use super::http::{Conn, connect};
use futures::StreamExt as _;
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
/// the server has closed one since (each is then opened again, as an
/// attacker would, so the pressure stays on).
pub struct Held {
    pub wanted: usize,
    pub opened: usize,
    pub failed: usize,
    pub took: Duration,
    closed: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Held {
    pub fn closed_by_server(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} of {} open in {:.1} s ({} failed to open); closed by the server (then reopened) {} times",
            self.opened,
            self.wanted,
            self.took.as_secs_f64(),
            self.failed,
            self.closed_by_server()
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

/// Opens up to `count` connections, 64 handshakes at a time, each given
/// 10 s, all by `deadline`. Each is handed to `hold`, which returns when
/// the server closes it; it is then opened again (after a pause, so a
/// refusing server is not spun on) until the [`Held`] is dropped.
async fn open_many<F, Fut>(
    connector: &TlsConnector,
    from: IpAddr,
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
    let closed = Arc::new(AtomicUsize::new(0));
    let (mut tasks, mut failed) = (Vec::with_capacity(count), 0);
    let mut handshakes = futures::stream::iter(0..count)
        .map(|_| {
            let connector = connector.clone();
            async move {
                let left = deadline.saturating_duration_since(Instant::now());
                let limit = left.min(Duration::from_secs(10));
                tokio::time::timeout(limit, connect(&connector, from, to)).await
            }
        })
        .buffer_unordered(64);
    while let Some(result) = handshakes.next().await {
        match result {
            Ok(Ok(first)) => {
                let (connector, closed, hold) = (connector.clone(), closed.clone(), hold.clone());
                tasks.push(tokio::spawn(async move {
                    let mut stream = first;
                    loop {
                        hold(stream).await;
                        closed.fetch_add(1, Ordering::Relaxed);
                        stream = loop {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let reopen = connect(&connector, from, to);
                            if let Ok(Ok(s)) =
                                tokio::time::timeout(Duration::from_secs(10), reopen).await
                            {
                                break s;
                            }
                        };
                    }
                }));
            }
            _ => failed += 1,
        }
        if Instant::now() > deadline {
            break;
        }
    }
    Held {
        wanted: count,
        opened: tasks.len(),
        failed,
        took: started.elapsed(),
        closed,
        tasks,
    }
}

/// TLS connections that never send a byte.
pub async fn idle(
    connector: &TlsConnector,
    from: IpAddr,
    to: SocketAddr,
    count: usize,
    deadline: Instant,
) -> Held {
    open_many(
        connector,
        from,
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
    from: IpAddr,
    to: SocketAddr,
    count: usize,
    every: Duration,
    deadline: Instant,
) -> Held {
    open_many(
        connector,
        from,
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
            "{} sent, {} of {} answered in {:.1} s{}; {}",
            self.sent(),
            self.answered,
            self.wanted,
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

/// Sends `count` junk requests to `/v1/unseal` over `connections`
/// keep-alive connections as fast as the server takes them, reconnecting
/// when the server closes one; each request is given 30 s, the whole flood
/// until `deadline`.
pub async fn flood(
    connector: &TlsConnector,
    from: IpAddr,
    to: SocketAddr,
    bodies: &[(&'static str, Bytes)],
    count: usize,
    connections: usize,
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
                if i >= count || Instant::now() > deadline {
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
