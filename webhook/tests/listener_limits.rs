//! The listeners' limits over real TLS on loopback: header-read and idle
//! timeouts, the connection cap (with admission still answering on its own
//! listener), the in-flight cap, the request deadline, and the rate limit
//! in front of authentication. Each test names its listener uniquely, so
//! the process-wide counters it reads move only for it.

mod common;

use axum::Router;
use axum::routing::{get, post};
use common::{connect_from, tls_stream, tls_stream_from};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
use keyward_core::provider::KeyProvider;
use keyward_webhook::metrics::metrics;
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::server::{
    ConnectRate, PreAuthLimits, ServerLimits, api_router_with, serve_tls,
};
use keyward_webhook::unseal::{DecryptOnly, RateLimiter, Unsealer};
use keyward_webhook::{AppState, admission_router, tls};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    port: u16,
    ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(app: Router, limits: ServerLimits) -> Server {
    let made = tls::bootstrap(&["127.0.0.1".to_owned()]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = tls::server_config(&made.cert_pem, &made.key_pem).unwrap();
    Server {
        port,
        ca_pem: made.ca_pem,
        task: tokio::spawn(serve_tls(listener, config, app, limits)),
    }
}

fn limits(name: &'static str) -> ServerLimits {
    ServerLimits {
        name,
        ..ServerLimits::api()
    }
}

fn state() -> AppState {
    AppState {
        injector: Arc::new(InjectorConfig {
            image: "keyward/webhook:test".into(),
            image_pull_policy: None,
            unseal_url: "https://127.0.0.1:1/v1/unseal".into(),
            ca_pem: None,
            default_delivery: Default::default(),
        }),
        unsealer: None,
    }
}

/// A route that answers after `delay`, for the in-flight and deadline tests.
fn slow(delay: Duration) -> Router {
    Router::new()
        .route(
            "/slow",
            get(move || async move {
                tokio::time::sleep(delay).await;
                "done"
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

/// One request on a fresh connection.
async fn request(server: &Server, method: &str, path: &str, body: Vec<u8>) -> Answer {
    request_from(Ipv4Addr::LOCALHOST, server, method, path, body).await
}

/// The same from another loopback address.
async fn request_from(
    from: Ipv4Addr,
    server: &Server,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Answer {
    let mut sender = connect_from(from, server.port, &server.ca_pem).await;
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        retry_after,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Reads until the server closes the connection; how long that took.
async fn time_to_close<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
        }
    }
}

fn review() -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/pod-create-annotated.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_is_cut_off_at_the_header_read_timeout() {
    let server = serve(
        admission_router(state()),
        ServerLimits {
            header_read_timeout: Duration::from_millis(400),
            ..limits("t_slow_header")
        },
    )
    .await;
    let mut tls = tls_stream(server.port, &server.ca_pem).await.unwrap();
    tls.write_all(b"POST /mutate HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // A header line every 100 ms: always busy, never done.
    let (mut reader, mut writer) = tokio::io::split(tls);
    let trickle = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer
                .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    });
    time_to_close(&mut reader, Duration::from_secs(10)).await;
    let closed = started.elapsed();
    trickle.abort();
    eprintln!("slow header (400 ms timeout): closed after {closed:?}");
    assert!(
        closed >= Duration::from_millis(350) && closed < Duration::from_secs(3),
        "closed after {closed:?}"
    );
    assert_eq!(
        metrics().connection_timeouts("t_slow_header", "header_read"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_at_the_idle_timeout() {
    // The header-read timer is long here, so only the idle timeout acts.
    let server = serve(
        admission_router(state()),
        ServerLimits {
            header_read_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(600),
            ..limits("t_idle")
        },
    )
    .await;
    // After one answered request, too: kept alive, then silent.
    let mut tls = tls_stream(server.port, &server.ca_pem).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let closed = time_to_close(&mut tls, Duration::from_secs(10)).await;
    eprintln!("idle (600 ms timeout): closed after {closed:?}");
    assert!(
        closed >= Duration::from_millis(500) && closed < Duration::from_secs(3),
        "closed after {closed:?}"
    );
    assert_eq!(metrics().connection_timeouts("t_idle", "idle"), 1);
    assert_eq!(metrics().connection_timeouts("t_idle", "header_read"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_while_admission_answers() {
    let admission = serve(admission_router(state()), limits("t_cap_admission")).await;
    let api = serve(
        api_router_with(state(), &PreAuthLimits::default()),
        ServerLimits {
            max_connections: 3,
            ..limits("t_cap_api")
        },
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tls_stream(api.port, &api.ca_pem).await.unwrap());
    }
    // The fourth is accepted by the kernel and closed by the server
    // before its handshake.
    for _ in 0..5 {
        assert!(tls_stream(api.port, &api.ca_pem).await.is_err());
    }
    assert_eq!(metrics().connections_refused("t_cap_api"), 5);
    assert_eq!(metrics().open_connections("t_cap_api"), 3);
    let answer = request(&admission, "POST", "/mutate", review()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("\"patch\""), "{}", answer.body);

    // A closed connection frees its slot.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while metrics().open_connections("t_cap_api") > 2 {
        assert!(Instant::now() < deadline, "the slot was not freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(request(&api, "GET", "/healthz", vec![]).await.status, 200);
}

/// Whether the server closes `stream` within `limit`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(limit, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_closes_an_idle_connection_of_its_biggest_source_for_a_newcomer() {
    let server = serve(
        slow(Duration::from_millis(1500)),
        ServerLimits {
            max_connections: 4,
            max_connections_per_source: 4,
            ..limits("t_displace")
        },
    )
    .await;
    let hog = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            tls_stream_from(hog, server.port, &server.ca_pem)
                .await
                .unwrap(),
        );
    }
    // The oldest is busy: a request in flight is never cut off.
    held[0]
        .write_all(b"GET /slow HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A newcomer from another address gets in; the oldest idle connection
    // of the source holding the most (the second) is closed for it.
    let mut newcomer = tls_stream_from(Ipv4Addr::new(127, 0, 0, 3), server.port, &server.ca_pem)
        .await
        .expect("a newcomer gets a slot at the cap");
    assert!(
        closed_within(&mut held[1], Duration::from_secs(2)).await,
        "the oldest idle connection was closed"
    );
    newcomer
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 256];
    let n = newcomer.read(&mut answer).await.unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    let n = held[0].read(&mut answer).await.unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "the busy connection's request was answered: {:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    assert_eq!(metrics().connections_displaced("t_displace"), 1);

    // The hog (3 open) cannot displace the newcomer (1): short of two more.
    assert!(
        tls_stream_from(hog, server.port, &server.ca_pem)
            .await
            .is_err()
    );
    assert_eq!(metrics().connections_refused("t_displace"), 1);
    assert_eq!(metrics().connections_displaced("t_displace"), 1);
    assert!(!closed_within(&mut newcomer, Duration::from_millis(300)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_reconnecting_too_fast_is_closed_before_its_handshake() {
    let server = serve(
        api_router_with(state(), &PreAuthLimits::default()),
        ServerLimits {
            connect_rate_per_source: Some(ConnectRate {
                burst: 3,
                per_second: 0.5,
            }),
            ..limits("t_connect_rate")
        },
    )
    .await;
    let flooder = Ipv4Addr::new(127, 0, 0, 4);
    // Each connection is closed at once, as a flood's are after every junk
    // request: the slots come back, the tokens do not.
    for _ in 0..3 {
        let opened = tls_stream_from(flooder, server.port, &server.ca_pem).await;
        drop(opened.expect("within the burst"));
    }
    assert!(
        tls_stream_from(flooder, server.port, &server.ca_pem)
            .await
            .is_err(),
        "a fourth at once is closed at accept"
    );
    assert_eq!(metrics().connections_rate_limited("t_connect_rate"), 1);
    let other = tls_stream_from(Ipv4Addr::new(127, 0, 0, 5), server.port, &server.ca_pem).await;
    assert!(other.is_ok(), "another source is not affected");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        tls_stream_from(flooder, server.port, &server.ca_pem)
            .await
            .is_ok(),
        "a token is back after 2 s at 0.5 per second"
    );
    assert_eq!(metrics().connections_rate_limited("t_connect_rate"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_cap_wait_briefly_then_get_503() {
    let server = Arc::new(
        serve(
            slow(Duration::from_millis(800)),
            ServerLimits {
                max_in_flight: 2,
                queue_timeout: Duration::from_millis(100),
                ..limits("t_shed")
            },
        )
        .await,
    );
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move { request(&server, "GET", "/slow", vec![]).await.status })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let shed = request(&server, "GET", "/slow", vec![]).await;
    let waited = started.elapsed();
    eprintln!("in-flight cap 2, queue 100 ms: 503 after {waited:?}");
    assert_eq!(shed.status, 503, "{}", shed.body);
    assert_eq!(shed.retry_after.as_deref(), Some("1"));
    assert!(shed.body.contains("overloaded"), "{}", shed.body);
    assert!(
        waited >= Duration::from_millis(90) && waited < Duration::from_millis(600),
        "shed after {waited:?}"
    );
    // Probes are not budgeted: a busy webhook is not a dead one.
    assert_eq!(
        request(&server, "GET", "/healthz", vec![]).await.status,
        200
    );
    for task in busy {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(metrics().requests_shed("t_shed"), 1);

    // With a queue longer than one answer, the next request waits its
    // turn instead of being refused.
    let queued = serve(
        slow(Duration::from_millis(300)),
        ServerLimits {
            max_in_flight: 1,
            queue_timeout: Duration::from_secs(2),
            ..limits("t_queue")
        },
    )
    .await;
    let queued = Arc::new(queued);
    let first = {
        let queued = Arc::clone(&queued);
        tokio::spawn(async move { request(&queued, "GET", "/slow", vec![]).await.status })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(request(&queued, "GET", "/slow", vec![]).await.status, 200);
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(metrics().requests_shed("t_queue"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_the_deadline_gets_504() {
    let server = serve(
        slow(Duration::from_secs(5)),
        ServerLimits {
            request_timeout: Duration::from_millis(300),
            ..limits("t_deadline")
        },
    )
    .await;
    let started = Instant::now();
    let answer = request(&server, "GET", "/slow", vec![]).await;
    let took = started.elapsed();
    eprintln!("deadline 300 ms: {} after {took:?}", answer.status);
    assert_eq!(answer.status, 504);
    assert!(answer.body.contains("deadline"), "{}", answer.body);
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "answered after {took:?}"
    );
    assert_eq!(metrics().request_timeouts("t_deadline"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_limit_is_per_listener() {
    let server = serve(
        Router::new().route(
            "/echo",
            post(|body: String| async move { body.len().to_string() }),
        ),
        ServerLimits {
            body_limit: 1024,
            ..limits("t_body")
        },
    )
    .await;
    assert_eq!(
        request(&server, "POST", "/echo", vec![b'a'; 1024])
            .await
            .body,
        "1024"
    );
    assert_eq!(
        request(&server, "POST", "/echo", vec![b'a'; 1025])
            .await
            .status,
        413
    );
}

/// Counts TokenReviews and refuses every token.
fn counting_api(reviews: Arc<AtomicUsize>) -> kube::Client {
    let api = Router::new().route(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        post(move |axum::Json(review): axum::Json<serde_json::Value>| {
            reviews.fetch_add(1, Ordering::SeqCst);
            async move {
                axum::Json(serde_json::json!({
                    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "metadata": {}, "spec": review["spec"],
                    "status": {"authenticated": false, "error": "invalid token"}}))
            }
        }),
    );
    kube::Client::new(api, "default")
}

/// The tenant API's state over [`counting_api`], its keyring and audit log
/// in `dir`.
fn counting_state(dir: &std::path::Path, reviews: &Arc<AtomicUsize>) -> AppState {
    let provider =
        LocalProvider::open_or_initialise(KeyringStore::new(dir, RootKey::generate())).unwrap();
    AppState {
        unsealer: Some(Arc::new(Unsealer {
            client: counting_api(Arc::clone(reviews)),
            provider: Arc::new(DecryptOnly::new(Arc::new(provider) as Arc<dyn KeyProvider>)),
            audit: Arc::new(keyward_core::audit::AuditLog::new(&dir.join("audit.log"))),
            limiter: RateLimiter::new(100, 100.0),
            audience: "keyward".into(),
            injector_image: "keyward/webhook:test".into(),
        })),
        ..state()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_source_limit_answers_429_before_any_api_call() {
    let dir = tempfile::tempdir().unwrap();
    let reviews = Arc::new(AtomicUsize::new(0));
    let state = counting_state(dir.path(), &reviews);
    let pre_auth = PreAuthLimits {
        source_burst: 3,
        source_per_second: 0.1,
        ..PreAuthLimits::default()
    };
    let server = serve(api_router_with(state, &pre_auth), limits("t_pre_auth")).await;
    let junk = br#"{"token":"junk","namespace":"team","pod":"app","secrets":["db"]}"#.to_vec();
    for _ in 0..3 {
        let answer = request(&server, "POST", "/v1/unseal", junk.clone()).await;
        assert_ne!(answer.status, 429, "{}", answer.body);
    }
    assert_eq!(reviews.load(Ordering::SeqCst), 3);
    let before = metrics().pre_auth_limited_with("source");
    for _ in 0..3 {
        let answer = request(&server, "POST", "/v1/unseal", junk.clone()).await;
        assert_eq!(answer.status, 429, "{}", answer.body);
        assert_eq!(answer.retry_after.as_deref(), Some("10"));
    }
    assert_eq!(
        reviews.load(Ordering::SeqCst),
        3,
        "a limited request reached the API server"
    );
    assert!(metrics().pre_auth_limited_with("source") >= before + 3);
    // Health is not behind the limit.
    assert_eq!(
        request(&server, "GET", "/healthz", vec![]).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_many_sources_cannot_lock_a_starting_pod_out() {
    let dir = tempfile::tempdir().unwrap();
    let reviews = Arc::new(AtomicUsize::new(0));
    let state = counting_state(dir.path(), &reviews);
    // Almost no refill, so the counts below are exact.
    let pre_auth = PreAuthLimits {
        burst: 4,
        per_second: 0.001,
        source_burst: 2,
        source_per_second: 0.001,
        source_reserve_burst: 1,
        source_reserve_per_second: 0.001,
    };
    let server = serve(api_router_with(state, &pre_auth), limits("t_reserve")).await;
    let junk = br#"{"token":"junk","namespace":"team","pod":"app","secrets":["db"]}"#.to_vec();
    let send = |last: u8| {
        let junk = junk.clone();
        let server = &server;
        async move {
            request_from(
                Ipv4Addr::new(127, 0, 0, last),
                server,
                "POST",
                "/v1/unseal",
                junk,
            )
            .await
            .status
        }
    };
    let reserve_before = metrics().pre_auth_reserve_uses();
    // Two flooding addresses, each within its own limit, drain the
    // all-sources bucket.
    for flooder in [10, 11] {
        for _ in 0..2 {
            assert_ne!(send(flooder).await, 429);
        }
    }
    // A third spends its reserve, then is refused.
    assert_ne!(send(12).await, 429, "the reserve");
    assert_eq!(send(12).await, 429, "the global bucket is empty");
    // A pod starting now still gets its unseal through, once.
    assert_ne!(send(20).await, 429, "a starting pod is locked out");
    assert_eq!(send(20).await, 429);
    assert_eq!(metrics().pre_auth_reserve_uses() - reserve_before, 2);
    assert_eq!(
        reviews.load(Ordering::SeqCst),
        6,
        "each admitted request costs one review"
    );
}
