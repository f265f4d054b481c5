//! Test harness: a private `moto_server` per test on a free loopback port,
//! installed on first use by `tests/moto.sh` into a cached venv, and a
//! tiny fault-injecting HTTP proxy. Nothing here skips: if moto cannot be
//! installed or started the test fails and says why.
#![allow(dead_code)]

use keyward_provider_aws::{
    AwsKmsConfig, AwsKmsProvider, CredentialSource, RetrySettings, StaticCredentials, Timeouts,
};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Path of `moto_server`, installing it once per test binary.
fn moto_server_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/moto.sh");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "installing moto failed ({}); the AWS provider tests need Python 3 with venv and PyPI access once:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        PathBuf::from(path)
    })
    .clone()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running `moto_server`, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Moto {
        let server = moto_server_path();
        let log = std::env::temp_dir().join(format!("keyward-moto-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("moto log file");
        // A shell holds moto and kills it when our end of its stdin closes,
        // which also happens if this test process is killed outright: no
        // moto outlives its test.
        let child = Command::new("bash")
            .args([
                "-c",
                r#"exec 3<&0; "$0" -H 127.0.0.1 -p "$1" & m=$!; (cat <&3 >/dev/null; kill $m 2>/dev/null) & wait $m"#,
            ])
            .arg(&server)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        let mut moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto_server exited ({status}) before listening on {port}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port} within 60 s; log: {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn config(endpoint: &str) -> AwsKmsConfig {
    AwsKmsConfig {
        region: Some("eu-west-1".into()),
        endpoint: Some(endpoint.to_owned()),
        credentials: CredentialSource::Static(StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        }),
        alias_prefix: "keyward".into(),
        retry: RetrySettings {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            attempt: Duration::from_secs(10),
            operation: Duration::from_secs(30),
        },
        // moto does not refuse disabled or pending-deletion keys.
        verify_key_state: true,
    }
}

pub async fn provider(endpoint: &str) -> AwsKmsProvider {
    AwsKmsProvider::connect(config(endpoint))
        .await
        .expect("provider config")
}

/// An injected KMS error: `(HTTP status, __type)`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
    /// Only for this `X-Amz-Target` operation (`Decrypt`...), or any.
    pub operation: Option<&'static str>,
}

#[derive(Default)]
struct ProxyState {
    faults: Mutex<Vec<(Fault, u32)>>,
    down: AtomicBool,
    /// Requests seen, by KMS operation (forwarded or faulted).
    calls: Mutex<HashMap<String, u32>>,
    faulted: AtomicU32,
}

/// A loopback HTTP/1.1 proxy in front of moto that can answer with KMS
/// errors, drop connections ("down"), and counts operations.
#[derive(Clone)]
pub struct Proxy {
    state: Arc<ProxyState>,
    pub port: u16,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy bind");
        let port = listener.local_addr().expect("proxy addr").port();
        let state = Arc::new(ProxyState::default());
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = serve(client, upstream, state).await;
                });
            }
        });
        Proxy { state, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers the next `times` matching requests with `fault`.
    pub fn inject(&self, fault: Fault, times: u32) {
        self.state.faults.lock().unwrap().push((fault, times));
    }

    pub fn clear_faults(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub fn calls(&self, operation: &str) -> u32 {
        *self
            .state
            .calls
            .lock()
            .unwrap()
            .get(operation)
            .unwrap_or(&0)
    }

    pub fn reset_calls(&self) {
        self.state.calls.lock().unwrap().clear();
    }

    pub fn faulted(&self) -> u32 {
        self.state.faulted.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut client: tokio::net::TcpStream,
    upstream: u16,
    state: Arc<ProxyState>,
) -> std::io::Result<()> {
    if state.down.load(Ordering::SeqCst) {
        return Ok(()); // close without answering
    }
    let Some((head, body)) = read_request(&mut client).await? else {
        return Ok(());
    };
    let operation = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-amz-target")
                .then(|| value.trim().rsplit('.').next().unwrap_or("").to_owned())
        })
        .unwrap_or_default();
    *state
        .calls
        .lock()
        .unwrap()
        .entry(operation.clone())
        .or_default() += 1;
    let fault = {
        let mut faults = state.faults.lock().unwrap();
        let hit = faults
            .iter_mut()
            .find(|(f, n)| *n > 0 && f.operation.is_none_or(|op| op == operation));
        hit.map(|(f, n)| {
            *n -= 1;
            f.clone()
        })
    };
    if let Some(fault) = fault {
        state.faulted.fetch_add(1, Ordering::SeqCst);
        let body = format!(
            r#"{{"__type":"{}","message":"{}"}}"#,
            fault.code, fault.message
        );
        let response = format!(
            "HTTP/1.1 {} Error\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: injected\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
            fault.status,
            body.len(),
            body
        );
        client.write_all(response.as_bytes()).await?;
        return client.shutdown().await;
    }
    let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await?;
    let mut request = String::new();
    for line in head.lines() {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            request.push_str(line);
            request.push_str("\r\n");
        }
    }
    request.push_str("connection: close\r\n\r\n");
    server.write_all(request.as_bytes()).await?;
    server.write_all(&body).await?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).await?;
    client.write_all(&response).await?;
    client.shutdown().await
}

/// Reads one request: the head (without the blank line) and the body.
async fn read_request(
    stream: &mut tokio::net::TcpStream,
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, body)))
}
