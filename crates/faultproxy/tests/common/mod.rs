//! What the integration tests share: a server to talk to, upstreams on
//! loopback, and bounded socket helpers.
//!
//! Every test starts its own server and upstreams on ephemeral ports, so the
//! tests run in parallel; every wait is bounded.
//!
//! With `FAULTPROXY_TEST_TOXIPROXY=http://127.0.0.1:8474` set, the tests that
//! pin Toxiproxy's behaviour (`tests/fidelity.rs`) run against that server
//! instead of the built-in one, so the same assertions can be checked on a
//! real Toxiproxy side by side.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use faultproxy::{ProxyConfig, ProxyServer, Stream, Toxic, ToxicKind, ToxiproxyClient};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The upper bound of any single wait in these tests.
pub const BOUND: Duration = Duration::from_secs(5);

/// The environment variable naming an external Toxiproxy for `fidelity.rs`.
pub const EXTERNAL: &str = "FAULTPROXY_TEST_TOXIPROXY";

pub struct Harness {
    /// The built-in server; `None` when the tests drive an external one.
    pub server: Option<ProxyServer>,
    pub url: String,
    pub client: ToxiproxyClient,
    pub http: reqwest::Client,
    /// On an external server, proxy names are prefixed so that tests
    /// sharing it never collide; empty on a test's own server.
    prefix: String,
}

impl Harness {
    /// A built-in server of the test's own.
    pub async fn start() -> Harness {
        let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        Harness::with(Some(server), None)
    }

    /// The external Toxiproxy named by [`EXTERNAL`] if set, else a built-in
    /// server.
    pub async fn start_any() -> Harness {
        match std::env::var(EXTERNAL) {
            Ok(url) if !url.is_empty() => Harness::with(None, Some(url)),
            _ => Harness::start().await,
        }
    }

    fn with(server: Option<ProxyServer>, url: Option<String>) -> Harness {
        let url = url.unwrap_or_else(|| server.as_ref().unwrap().url());
        let client = ToxiproxyClient::new(&url).unwrap();
        let http = reqwest::Client::builder().timeout(BOUND).build().unwrap();
        let prefix = match server {
            Some(_) => String::new(),
            None => format!("t{}_{}_", std::process::id(), next_suffix()),
        };
        Harness { server, url, client, http, prefix }
    }

    /// Which server the test ran against, for messages.
    pub fn which(&self) -> &'static str {
        if self.server.is_some() {
            "built-in"
        } else {
            "external"
        }
    }

    /// The full name of a test's proxy.
    pub fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A proxy named `name` in front of `upstream`; returns its listen address.
    pub async fn proxy(&self, name: &str, upstream: SocketAddr) -> SocketAddr {
        let config = ProxyConfig::new(self.name(name), "127.0.0.1:0", upstream.to_string());
        let info = self.client.create_proxy(&config).await.unwrap();
        info.listen_addr().unwrap()
    }

    pub async fn add(&self, proxy: &str, kind: ToxicKind, stream: Stream) -> Toxic {
        self.client.add_toxic(&self.name(proxy), &Toxic::new(kind, stream)).await.unwrap()
    }

    pub async fn remove(&self, proxy: &str, toxic: &Toxic) {
        self.client.remove_toxic(&self.name(proxy), &toxic.name).await.unwrap();
    }

    /// A raw API call: (status, body as JSON or `Null`).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Shuts the built-in server down, or deletes the test's proxies on an
    /// external one.
    pub async fn finish(self) {
        match self.server {
            Some(server) => server.shutdown().await,
            None => {
                for name in self.client.proxies().await.unwrap().into_keys() {
                    if name.starts_with(&self.prefix) {
                        let _ = self.client.delete_proxy(&name).await;
                    }
                }
            }
        }
    }
}

fn next_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An upstream that echoes every byte back.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

pub async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = tokio::time::timeout(BOUND, TcpStream::connect(addr)).await.unwrap().unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads exactly `n` bytes, or panics after `within`.
pub async fn read_n(stream: &mut TcpStream, n: usize, within: Duration) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(within, stream.read_exact(&mut buf)).await.expect("read timed out").unwrap();
    buf
}

/// Sends `msg` through an echo link and times its return.
pub async fn roundtrip(stream: &mut TcpStream, msg: &[u8]) -> Duration {
    let start = Instant::now();
    stream.write_all(msg).await.unwrap();
    let back = read_n(stream, msg.len(), BOUND).await;
    assert_eq!(back, msg);
    start.elapsed()
}

/// Does anything arrive within `within`? (`false` = the stream is quiet.)
pub async fn arrives_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, stream.peek(&mut byte)).await {
        Err(_) => false,
        Ok(Ok(n)) => n > 0,
        Ok(Err(e)) => panic!("unexpected read error: {e}"),
    }
}

/// How a connection ended, as its reader saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// An orderly close: the peer's FIN (a read returned 0).
    Eof,
    /// "Connection reset by peer": an RST.
    Reset,
    /// Some other error.
    Other(std::io::ErrorKind),
}

/// Reads until EOF or error within `within`; returns the bytes and how it ended.
pub async fn read_to_end(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, End) {
    let mut data = Vec::new();
    let end = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return End::Eof,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return End::Reset,
                Err(e) => return End::Other(e.kind()),
            }
        }
    })
    .await
    .expect("the connection did not end in time");
    (data, end)
}
