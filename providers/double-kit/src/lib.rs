//! Test-support plumbing shared by Keyward's loopback doubles of cloud
//! KMS APIs (`keyward-gcp-double`, `keyward-azure-double`): the fault
//! hooks ([`Faults`]), the accept loop that serves HTTP/1 connections
//! until stopped ([`Server`]) and the reading of a request
//! ([`read_request`]). Never a dependency of a shipped crate.
#![forbid(unsafe_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// What a double's request handler returns; an `Err` makes hyper drop
/// the connection.
pub type Reply = Result<Response<Full<Bytes>>, std::io::Error>;

/// A double's test hooks: throttling, call counts and the down flag.
#[derive(Default)]
pub struct Faults {
    counts: Mutex<Counts>,
    down: AtomicBool,
}

#[derive(Default)]
struct Counts {
    /// Throttle this many more calls.
    throttle: u32,
    /// Only calls to this rpc are throttled.
    throttle_only: Option<&'static str>,
    calls: HashMap<&'static str, u32>,
}

impl Faults {
    /// Throttles the next `times` calls (to `only`, if given).
    pub fn throttle(&self, times: u32, only: Option<&'static str>) {
        let mut counts = self.counts.lock().unwrap();
        counts.throttle = times;
        counts.throttle_only = only;
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// How many calls reached `rpc` (throttled ones included).
    pub fn calls(&self, rpc: &str) -> u32 {
        let counts = self.counts.lock().unwrap();
        counts.calls.get(rpc).copied().unwrap_or(0)
    }

    pub fn reset_calls(&self) {
        self.counts.lock().unwrap().calls.clear();
    }

    /// Counts a call to `rpc` that is never throttled.
    pub fn count(&self, rpc: &'static str) {
        *self.counts.lock().unwrap().calls.entry(rpc).or_default() += 1;
    }

    /// Counts a call to `rpc`; true if it is to be throttled (which uses
    /// up one of the throttled calls).
    pub fn count_and_throttle(&self, rpc: &'static str) -> bool {
        let mut counts = self.counts.lock().unwrap();
        *counts.calls.entry(rpc).or_default() += 1;
        let applies = counts.throttle_only.is_none_or(|only| only == rpc);
        if counts.throttle > 0 && applies {
            counts.throttle -= 1;
            return true;
        }
        false
    }
}

/// Binds a port on 127.0.0.1 for the `what` (a double's name).
pub async fn bind_loopback(what: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind a loopback port for the {what}: {e}"));
    let addr = listener.local_addr().expect("local address");
    (listener, addr)
}

/// The connection handshake of a plain HTTP server: none.
pub async fn plain(stream: TcpStream) -> Option<TcpStream> {
    Some(stream)
}

/// An accept loop serving each connection in its own task; stops on drop.
pub struct Server {
    /// The accept loop and every connection, so [`Server::stop`] can end
    /// them all (a kept-alive connection would outlive the loop).
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Server {
    /// Serves HTTP/1 on `listener`: each accepted stream goes through
    /// `handshake` (e.g. a TLS accept; `None` ends the connection, as a
    /// failed handshake should) and each request to `handler`.
    ///
    /// With `drop_while_down`, while it [`Faults::is_down`] new
    /// connections are dropped at accept and requests on kept-alive ones
    /// fail, so hyper drops those too: the double looks unreachable.
    pub fn start<W, WF, S, H, HF>(
        listener: TcpListener,
        drop_while_down: Option<Arc<Faults>>,
        handshake: W,
        handler: H,
    ) -> Server
    where
        W: Fn(TcpStream) -> WF + Send + Sync + 'static,
        WF: Future<Output = Option<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(Request<Incoming>) -> HF + Send + Sync + 'static,
        HF: Future<Output = Reply> + Send + 'static,
    {
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let handler = Arc::new(handler);
        let down = move || drop_while_down.as_ref().is_some_and(|f| f.is_down());
        let accept = {
            let tasks = tasks.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    if down() {
                        drop(stream);
                        continue;
                    }
                    let handshake = handshake(stream);
                    let (handler, down) = (handler.clone(), down.clone());
                    let connection = tokio::spawn(async move {
                        let Some(stream) = handshake.await else {
                            return;
                        };
                        let service = service_fn(move |request| {
                            let answer = (!down()).then(|| handler(request));
                            async move {
                                match answer {
                                    Some(answer) => answer.await,
                                    None => Err(std::io::Error::other("the double is down")),
                                }
                            }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                    tasks.lock().unwrap().push(connection.abort_handle());
                }
            })
        };
        tasks.lock().unwrap().push(accept.abort_handle());
        Server { tasks }
    }

    /// Stops listening and closes every connection.
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a handler reads of a request, its body collected.
pub struct RequestParts {
    pub method: Method,
    pub path: String,
    /// The query string, decoded by [`parse_query`].
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RequestParts {
    /// The body as JSON; an empty body is `null`.
    pub fn json(&self) -> serde_json::Result<serde_json::Value> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body)
    }
}

/// Splits `request` and collects its body (an error if the client stops
/// sending it).
pub async fn read_request(request: Request<Incoming>) -> std::io::Result<RequestParts> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(RequestParts {
        query: parse_query(parts.uri.query().unwrap_or("")),
        path: parts.uri.path().to_owned(),
        method: parts.method,
        headers: parts.headers,
        body,
    })
}

/// Decodes `a=1&b=x%20y` (a query or a form body): `+` is a space, a bad
/// `%` escape stays as it is, and a later repeated name wins.
pub fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query("a=x%20y+z&b&c=%zz%4&&d=%41");
        assert_eq!(q["a"], "x y z");
        assert_eq!(q["b"], "");
        assert_eq!(q["c"], "%zz%4");
        assert_eq!(q["d"], "A");
    }

    #[test]
    fn throttles_only_the_named_rpc_and_counts_every_call() {
        let faults = Faults::default();
        faults.throttle(1, Some("Decrypt"));
        assert!(!faults.count_and_throttle("Encrypt"));
        assert!(faults.count_and_throttle("Decrypt"));
        assert!(!faults.count_and_throttle("Decrypt"));
        faults.count("Challenge");
        assert_eq!((faults.calls("Decrypt"), faults.calls("Challenge")), (2, 1));
        faults.reset_calls();
        assert_eq!(faults.calls("Decrypt"), 0);
    }
}
