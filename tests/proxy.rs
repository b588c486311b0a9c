//! The built-in fault proxy, over raw sockets and raw HTTP.
//!
//! Two halves:
//! - **API compatibility**: status codes, JSON shapes and error texts of
//!   Toxiproxy's HTTP API, checked with raw `reqwest` calls, with dualwrite's
//!   own `ToxiproxyClient`, and with an independent client (`toxiproxy_rust`).
//! - **Toxics on live connections**: every toxic's effect on a connection
//!   opened *before* the toxic was added, and the end of the effect when it is
//!   removed, through an echo server on loopback.
//!
//! Every test starts its own server and upstreams on ephemeral ports, so the
//! tests run in parallel; every wait is bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dualwrite::proxy::{ProxyConfig, ProxyError, ProxyServer, ProxyUpdate, Stream, Toxic, ToxicKind, ToxiproxyClient};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The upper bound of any single wait in these tests.
const BOUND: Duration = Duration::from_secs(5);

struct Harness {
    server: ProxyServer,
    client: ToxiproxyClient,
    http: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let client = ToxiproxyClient::new(&server.url()).unwrap();
        let http = reqwest::Client::builder().timeout(BOUND).build().unwrap();
        Harness { server, client, http }
    }

    /// A proxy named `name` in front of `upstream`; returns its listen address.
    async fn proxy(&self, name: &str, upstream: SocketAddr) -> SocketAddr {
        let info =
            self.client.create_proxy(&ProxyConfig::new(name, "127.0.0.1:0", upstream.to_string())).await.unwrap();
        info.listen_addr().unwrap()
    }

    async fn add(&self, proxy: &str, kind: ToxicKind, stream: Stream) -> Toxic {
        self.client.add_toxic(proxy, &Toxic::new(kind, stream)).await.unwrap()
    }

    async fn remove(&self, proxy: &str, toxic: &Toxic) {
        self.client.remove_toxic(proxy, &toxic.name).await.unwrap();
    }

    /// A raw API call: (status, body as JSON or `Null`).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.server.url()));
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// An upstream that echoes every byte back.
async fn echo_server() -> SocketAddr {
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

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = tokio::time::timeout(BOUND, TcpStream::connect(addr)).await.unwrap().unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads exactly `n` bytes, or panics after `within`.
async fn read_n(stream: &mut TcpStream, n: usize, within: Duration) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(within, stream.read_exact(&mut buf)).await.expect("read timed out").unwrap();
    buf
}

/// Sends `msg` through an echo link and times its return.
async fn roundtrip(stream: &mut TcpStream, msg: &[u8]) -> Duration {
    let start = Instant::now();
    stream.write_all(msg).await.unwrap();
    let back = read_n(stream, msg.len(), BOUND).await;
    assert_eq!(back, msg);
    start.elapsed()
}

/// Does anything arrive within `within`? (`false` = the stream is quiet.)
async fn arrives_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, stream.peek(&mut byte)).await {
        Err(_) => false,
        Ok(Ok(n)) => n > 0,
        Ok(Err(e)) => panic!("unexpected read error: {e}"),
    }
}

/// Reads until EOF or error within `within`; returns the bytes and how it ended.
async fn read_to_end(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Result<(), std::io::ErrorKind>) {
    let mut data = Vec::new();
    let result = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e.kind()),
            }
        }
    })
    .await
    .expect("the connection did not end in time");
    (data, result)
}

// ---------------------------------------------------------------------------
// API compatibility
// ---------------------------------------------------------------------------

#[tokio::test]
async fn version_and_empty_index() {
    let h = Harness::start().await;
    let (status, body) = h.call(reqwest::Method::GET, "/version", None).await;
    assert_eq!(status, 200);
    assert!(body["version"].is_string(), "{body}");
    assert_eq!(h.client.version().await.unwrap(), body["version"].as_str().unwrap());
    let (status, body) = h.call(reqwest::Method::GET, "/proxies", None).await;
    assert_eq!((status, body), (200, json!({})));
    h.server.shutdown().await;
}

#[tokio::test]
async fn proxies_are_created_shown_and_refused_like_toxiproxy() {
    let h = Harness::start().await;
    let upstream = echo_server().await;
    let new = json!({"name": "pg", "listen": "127.0.0.1:0", "upstream": upstream.to_string()});
    let (status, body) = h.call(reqwest::Method::POST, "/proxies", Some(new.clone())).await;
    assert_eq!(status, 201);
    // Port 0 is reported as the real bound port.
    let listen: SocketAddr = body["listen"].as_str().unwrap().parse().unwrap();
    assert_ne!(listen.port(), 0);
    assert_eq!(
        body,
        json!({"name": "pg", "listen": listen.to_string(), "upstream": upstream.to_string(), "enabled": true, "toxics": []})
    );
    let (status, body) = h.call(reqwest::Method::POST, "/proxies", Some(new)).await;
    assert_eq!((status, body), (409, json!({"error": "proxy already exists", "status": 409})));
    let (status, body) = h.call(reqwest::Method::POST, "/proxies", Some(json!({"upstream": "127.0.0.1:1"}))).await;
    assert_eq!((status, body), (400, json!({"error": "missing required field: name", "status": 400})));
    let (status, body) = h.call(reqwest::Method::POST, "/proxies", Some(json!({"name": "x"}))).await;
    assert_eq!((status, body), (400, json!({"error": "missing required field: upstream", "status": 400})));
    let (status, body) = h.call(reqwest::Method::POST, "/proxies", Some(json!("{oops"))).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().starts_with("bad request body: "), "{body}");
    // Created disabled: not listening, listen kept as given.
    let (status, body) = h
        .call(
            reqwest::Method::POST,
            "/proxies",
            Some(json!({"name": "off", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "enabled": false})),
        )
        .await;
    assert_eq!((status, body["enabled"].clone(), body["listen"].clone()), (201, json!(false), json!("127.0.0.1:0")));

    let (status, body) = h.call(reqwest::Method::GET, "/proxies/pg", None).await;
    assert_eq!((status, body["name"].clone()), (200, json!("pg")));
    let (status, body) = h.call(reqwest::Method::GET, "/proxies/nope", None).await;
    assert_eq!((status, body), (404, json!({"error": "proxy not found", "status": 404})));
    let (status, body) = h.call(reqwest::Method::GET, "/proxies", None).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), ["off", "pg"]);

    // Deleting closes the port.
    let (status, _) = h.call(reqwest::Method::DELETE, "/proxies/pg", None).await;
    assert_eq!(status, 204);
    assert!(TcpStream::connect(listen).await.is_err());
    let (status, _) = h.call(reqwest::Method::DELETE, "/proxies/pg", None).await;
    assert_eq!(status, 404);
    h.server.shutdown().await;
}

#[tokio::test]
async fn toxics_are_created_shown_updated_and_removed_like_toxiproxy() {
    let h = Harness::start().await;
    h.proxy("p", echo_server().await).await;
    let toxics = "/proxies/p/toxics";

    // No attributes at all, no name, no stream: Toxiproxy's defaults.
    let (status, body) = h.call(reqwest::Method::POST, toxics, Some(json!({"type": "timeout"}))).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"name": "timeout_downstream", "type": "timeout", "stream": "downstream", "toxicity": 1.0, "attributes": {"timeout": 0}})
    );
    let (status, body) = h.call(reqwest::Method::POST, toxics, Some(json!({"type": "timeout"}))).await;
    assert_eq!((status, body), (409, json!({"error": "toxic already exists", "status": 409})));
    let (status, body) = h.call(reqwest::Method::POST, toxics, Some(json!({"type": "gremlins"}))).await;
    assert_eq!((status, body), (400, json!({"error": "invalid toxic type", "status": 400})));
    let (status, body) =
        h.call(reqwest::Method::POST, toxics, Some(json!({"type": "latency", "stream": "sideways"}))).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "stream was invalid, can be either upstream or downstream", "status": 400}))
    );
    let (status, body) = h
        .call(
            reqwest::Method::POST,
            toxics,
            Some(json!({"name": "slow", "type": "latency", "stream": "upstream", "toxicity": 0.5, "attributes": {"latency": 100, "jitter": 10}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["attributes"], json!({"latency": 100, "jitter": 10}));

    // Listed upstream first, as Toxiproxy does.
    let (status, body) = h.call(reqwest::Method::GET, toxics, None).await;
    assert_eq!(status, 200);
    let names: Vec<_> = body.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["slow", "timeout_downstream"]);
    let (_, body) = h.call(reqwest::Method::GET, "/proxies/p", None).await;
    assert_eq!(body["toxics"].as_array().unwrap().len(), 2);

    // An update changes only what it names.
    let (status, body) =
        h.call(reqwest::Method::PATCH, "/proxies/p/toxics/slow", Some(json!({"attributes": {"latency": 250}}))).await;
    assert_eq!(status, 200);
    assert_eq!(body["attributes"], json!({"latency": 250, "jitter": 10}));
    assert_eq!(body["toxicity"], json!(0.5));
    let (status, body) = h.call(reqwest::Method::POST, "/proxies/p/toxics/slow", Some(json!({"toxicity": 1.0}))).await;
    assert_eq!((status, body["toxicity"].clone(), body["stream"].clone()), (200, json!(1.0), json!("upstream")));
    let (status, body) = h.call(reqwest::Method::GET, "/proxies/p/toxics/slow", None).await;
    assert_eq!((status, body["attributes"]["latency"].clone()), (200, json!(250)));

    let (status, _) = h.call(reqwest::Method::DELETE, "/proxies/p/toxics/slow", None).await;
    assert_eq!(status, 204);
    let (status, body) = h.call(reqwest::Method::GET, "/proxies/p/toxics/slow", None).await;
    assert_eq!((status, body), (404, json!({"error": "toxic not found", "status": 404})));
    let (status, _) = h.call(reqwest::Method::DELETE, "/proxies/p/toxics/slow", None).await;
    assert_eq!(status, 404);
    let (status, body) = h.call(reqwest::Method::POST, "/proxies/nope/toxics", Some(json!({"type": "latency"}))).await;
    assert_eq!((status, body), (404, json!({"error": "proxy not found", "status": 404})));
    h.server.shutdown().await;
}

#[tokio::test]
async fn populate_creates_keeps_and_replaces_by_name() {
    let h = Harness::start().await;
    let (a, b) = (echo_server().await, echo_server().await);
    let (status, body) = h
        .call(
            reqwest::Method::POST,
            "/populate",
            Some(json!([
                {"name": "one", "listen": "127.0.0.1:0", "upstream": a.to_string()},
                {"name": "two", "listen": "127.0.0.1:0", "upstream": b.to_string(), "enabled": false}
            ])),
        )
        .await;
    assert_eq!(status, 201);
    let proxies = body["proxies"].as_array().unwrap();
    assert_eq!(proxies.len(), 2);
    assert_eq!((proxies[0]["enabled"].clone(), proxies[1]["enabled"].clone()), (json!(true), json!(false)));
    let one_listen = proxies[0]["listen"].as_str().unwrap().to_string();
    h.add("one", ToxicKind::Latency { latency: 10, jitter: 0 }, Stream::Downstream).await;

    // Same listen and upstream: left alone, toxic and all.
    let same = [ProxyConfig::new("one", one_listen.clone(), a.to_string())];
    let kept = h.client.populate(&same).await.unwrap();
    assert_eq!(kept[0].toxics.len(), 1);
    assert_eq!(kept[0].listen, one_listen);
    // Another upstream: replaced, toxics gone.
    let other = [ProxyConfig::new("one", one_listen.clone(), b.to_string())];
    let replaced = h.client.populate(&other).await.unwrap();
    assert_eq!((replaced[0].toxics.len(), replaced[0].upstream.clone()), (0, b.to_string()));

    // Refused as a whole, with Toxiproxy's message and a null proxy list.
    let (status, body) =
        h.call(reqwest::Method::POST, "/populate", Some(json!([{"name": "three", "listen": "127.0.0.1:0"}]))).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "missing required field: upstream at proxy 1", "status": 400, "proxies": null}))
    );
    assert!(h.client.get_proxy("three").await.is_err());
    h.server.shutdown().await;
}

#[tokio::test]
async fn down_refuses_new_connections_and_kills_existing_ones() {
    let h = Harness::start().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut live = connect(listen).await;
    roundtrip(&mut live, b"hello").await;

    h.client.set_enabled("p", false).await.unwrap();
    assert!(!h.client.get_proxy("p").await.unwrap().enabled);
    // The API answers once the port is closed and the connection is gone.
    let refused = TcpStream::connect(listen).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let (data, _) = read_to_end(&mut live, BOUND).await;
    assert!(data.is_empty());

    // Up again on the same port.
    h.client.set_enabled("p", true).await.unwrap();
    assert_eq!(h.client.get_proxy("p").await.unwrap().listen_addr(), Some(listen));
    let mut again = connect(listen).await;
    roundtrip(&mut again, b"back").await;

    // Moving the proxy restarts it elsewhere.
    let moved = h
        .client
        .update_proxy("p", &ProxyUpdate { listen: Some("127.0.0.1:0".into()), ..Default::default() })
        .await
        .unwrap();
    assert_ne!(moved.listen_addr(), Some(listen));
    let mut moved_conn = connect(moved.listen_addr().unwrap()).await;
    roundtrip(&mut moved_conn, b"moved").await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn reset_heals_toxics_on_both_streams_and_disabled_proxies() {
    let h = Harness::start().await;
    let a = h.proxy("a", echo_server().await).await;
    let b = h.proxy("b", echo_server().await).await;
    let mut live = connect(a).await;
    roundtrip(&mut live, b"before").await;
    h.add("a", ToxicKind::Timeout { timeout: 0 }, Stream::Upstream).await;
    h.add("a", ToxicKind::Latency { latency: 5000, jitter: 0 }, Stream::Downstream).await;
    h.add("b", ToxicKind::ResetPeer { timeout: 0 }, Stream::Upstream).await;
    h.client.set_enabled("b", false).await.unwrap();
    live.write_all(b"held").await.unwrap();
    assert!(!arrives_within(&mut live, Duration::from_millis(200)).await);

    let (status, body) = h.call(reqwest::Method::POST, "/reset", None).await;
    assert_eq!((status, body), (204, Value::Null));

    let proxies = h.client.proxies().await.unwrap();
    assert!(proxies.values().all(|p| p.enabled && p.toxics.is_empty()), "{proxies:?}");
    // The black-holed connection does not survive the reset (Toxiproxy
    // closes what a timeout toxic touched); a new one is clean and fast.
    let (data, _) = read_to_end(&mut live, BOUND).await;
    assert!(data.is_empty(), "swallowed bytes came back: {data:?}");
    let mut fresh = connect(a).await;
    assert!(roundtrip(&mut fresh, b"after").await < Duration::from_secs(1));
    let mut on_b = connect(b).await;
    roundtrip(&mut on_b, b"b is back").await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn browsers_are_refused() {
    let h = Harness::start().await;
    let response = h
        .http
        .get(format!("{}/proxies", h.server.url()))
        .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    h.server.shutdown().await;
}

#[tokio::test]
async fn client_errors_carry_status_and_toxiproxys_text() {
    let h = Harness::start().await;
    let err = h.client.get_proxy("missing").await.unwrap_err();
    match &err {
        ProxyError::Api { status, message, .. } => assert_eq!((*status, message.as_str()), (404, "proxy not found")),
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("the fault proxy at {} refused GET /proxies/missing with HTTP 404: proxy not found", h.server.url())
    );
    h.server.shutdown().await;
}

/// `toxiproxy_rust` is a blocking client (reqwest's blocking API runs its own
/// runtime), so this test is a plain `#[test]` and runs our server on a
/// runtime of its own.
#[test]
fn an_independent_client_drives_our_server() {
    use toxiproxy_rust::proxy::ProxyPack;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (server, upstream) = runtime
        .block_on(async { (ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap(), echo_server().await) });
    let client = toxiproxy_rust::client::Client::new(server.api_addr());
    assert!(client.is_running());
    assert!(client.version().unwrap().contains("version"));

    let proxies =
        client.populate(vec![ProxyPack::new("echo".into(), "127.0.0.1:0".into(), upstream.to_string())]).unwrap();
    assert_eq!(proxies.len(), 1);
    let listen: SocketAddr = proxies[0].proxy_pack.listen.parse().unwrap();
    assert!(client.all().unwrap().contains_key("echo"));

    // A blocking connection opened before any toxic.
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(listen).unwrap();
    conn.set_read_timeout(Some(BOUND)).unwrap();
    let mut timed_echo = |msg: &[u8]| {
        let start = Instant::now();
        conn.write_all(msg).unwrap();
        let mut back = vec![0; msg.len()];
        conn.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
        start.elapsed()
    };
    assert!(timed_echo(b"fast") < Duration::from_millis(200));

    let proxy = client.find_proxy("echo").unwrap();
    proxy.with_latency("downstream".into(), 300, 0, 1.0);
    let toxics = proxy.toxics().unwrap();
    assert_eq!(toxics.len(), 1);
    assert_eq!((toxics[0].name.as_str(), toxics[0].attributes["latency"]), ("latency_downstream", 300));
    assert!(timed_echo(b"slow") >= Duration::from_millis(290));
    proxy.delete_all_toxics().unwrap();
    assert!(timed_echo(b"fast again") < Duration::from_millis(200));

    proxy.with_limit_data("upstream".into(), 4, 1.0).with_slicer("downstream".into(), 2, 1, 10, 1.0);
    assert_eq!(client.find_proxy("echo").unwrap().proxy_pack.toxics.len(), 2);

    proxy.disable().unwrap();
    assert!(std::net::TcpStream::connect(listen).is_err());
    client.reset().unwrap();
    let after = client.find_proxy("echo").unwrap();
    assert!(after.proxy_pack.enabled && after.proxy_pack.toxics.is_empty());
    let mut fresh = std::net::TcpStream::connect(listen).unwrap();
    fresh.set_read_timeout(Some(BOUND)).unwrap();
    fresh.write_all(b"ok").unwrap();
    let mut back = [0u8; 2];
    fresh.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ok");

    // toxiproxy_rust cannot create `reset_peer`; raw HTTP can, and gets 200.
    let response = runtime
        .block_on(
            reqwest::Client::new()
                .post(format!("{}/proxies/echo/toxics", server.url()))
                .body(r#"{"type": "reset_peer", "attributes": {"timeout": 0}}"#)
                .send(),
        )
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    proxy.delete().unwrap();
    assert!(client.all().unwrap().is_empty());
    runtime.block_on(server.shutdown());
}

// ---------------------------------------------------------------------------
// Toxics on connections opened before the toxic
// ---------------------------------------------------------------------------

#[tokio::test]
async fn latency_hits_a_live_connection_and_ends_with_removal() {
    let h = Harness::start().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    assert!(roundtrip(&mut conn, b"warm").await < Duration::from_millis(100));

    for stream in [Stream::Downstream, Stream::Upstream] {
        let toxic = h.add("p", ToxicKind::Latency { latency: 300, jitter: 0 }, stream).await;
        let slow = roundtrip(&mut conn, b"slow").await;
        assert!(slow >= Duration::from_millis(295) && slow < Duration::from_secs(2), "{stream}: {slow:?}");
        h.remove("p", &toxic).await;
        let fast = roundtrip(&mut conn, b"fast").await;
        assert!(fast < Duration::from_millis(100), "{stream}: {fast:?}");
    }

    // An update applies to the live connection too.
    let toxic = h.add("p", ToxicKind::Latency { latency: 100, jitter: 0 }, Stream::Downstream).await;
    let (status, _) = h
        .call(
            reqwest::Method::PATCH,
            &format!("/proxies/p/toxics/{}", toxic.name),
            Some(json!({"attributes": {"latency": 400}})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(roundtrip(&mut conn, b"slower").await >= Duration::from_millis(395));
    h.server.shutdown().await;
}

#[tokio::test]
async fn latency_keeps_order_and_does_not_add_up_along_a_stream() {
    let h = Harness::start().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"warm").await;
    h.add("p", ToxicKind::Latency { latency: 200, jitter: 50 }, Stream::Downstream).await;
    let start = Instant::now();
    let mut expected = Vec::new();
    for i in 0..20u8 {
        conn.write_all(&[i]).await.unwrap();
        expected.push(i);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let back = read_n(&mut conn, 20, BOUND).await;
    // Order kept despite the jitter; each byte delayed ~200 ms from its own
    // arrival, so 20 bytes take well under 20 × 200 ms.
    assert_eq!(back, expected);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(2), "{took:?}");
    h.server.shutdown().await;
}

/// Toxiproxy 2.x: a `timeout` of 0 is a black hole — data is dropped, the
/// connection stays open while the toxic lasts, and is closed when it goes.
#[tokio::test]
async fn timeout_zero_swallows_data_and_closes_the_connection_when_removed() {
    let h = Harness::start().await;
    let listen = h.proxy("p", echo_server().await).await;
    for stream in [Stream::Upstream, Stream::Downstream] {
        let mut conn = connect(listen).await;
        roundtrip(&mut conn, b"warm").await;
        let toxic = h.add("p", ToxicKind::Timeout { timeout: 0 }, stream).await;
        conn.write_all(b"lost").await.unwrap();
        assert!(!arrives_within(&mut conn, Duration::from_millis(300)).await, "{stream}: data leaked through");
        h.remove("p", &toxic).await;
        // Dropped, not held: nothing comes back, and the connection is closed.
        let (data, _) = read_to_end(&mut conn, BOUND).await;
        assert!(data.is_empty(), "{stream}: swallowed bytes came back: {data:?}");
        // A new connection is healthy.
        let mut fresh = connect(listen).await;
        assert!(roundtrip(&mut fresh, b"fresh").await < Duration::from_secs(1));
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn timeout_closes_an_idle_connection_after_its_delay() {
    let h = Harness::start().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"warm").await;
    // No traffic at all after the toxic is added: the countdown still runs.
    let added = Instant::now();
    h.add("p", ToxicKind::Timeout { timeout: 300 }, Stream::Downstream).await;
    let (data, _) = read_to_end(&mut conn, BOUND).await;
    let took = added.elapsed();
    assert!(data.is_empty());
    assert!(took >= Duration::from_millis(280) && took < Duration::from_secs(2), "{took:?}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn reset_peer_resets_the_client() {
    let h = Harness::start().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"warm").await;
    h.add("p", ToxicKind::ResetPeer { timeout: 0 }, Stream::Downstream).await;
    conn.write_all(b"boom").await.unwrap();
    let (data, end) = read_to_end(&mut conn, BOUND).await;
    assert!(data.is_empty());
    assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset));

    // With a timeout, the reset comes that long after the data.
    let mut conn = connect(listen).await;
    h.client.remove_toxic("p", "reset_peer_downstream").await.unwrap();
    roundtrip(&mut conn, b"warm").await;
    h.add("p", ToxicKind::ResetPeer { timeout: 300 }, Stream::Upstream).await;
    let sent = Instant::now();
    conn.write_all(b"boom").await.unwrap();
    let (_, end) = read_to_end(&mut conn, BOUND).await;
    assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset));
    assert!(sent.elapsed() >= Duration::from_millis(280), "{:?}", sent.elapsed());
    h.server.shutdown().await;
}

#[tokio::test]
async fn bandwidth_paces_a_live_connection_and_survives_large_chunks() {
    let h = Harness::start().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"warm").await;

    // 50 kB at 100 KB/s: about half a second.
    let toxic = h.add("p", ToxicKind::Bandwidth { rate: 100 }, Stream::Downstream).await;
    let payload: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
    let took = roundtrip(&mut conn, &payload).await;
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(3), "{took:?}");

    // 4 MB at 40 MB/s: large chunks, cut into 100 ms pieces, no panic.
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    h.remove("p", &toxic).await;
    h.add("p", ToxicKind::Bandwidth { rate: 40_000 }, Stream::Upstream).await;
    let (mut r, mut w) = conn.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&big).await.unwrap();
        w
    });
    let mut back = vec![0u8; 4_000_000];
    let start = Instant::now();
    tokio::time::timeout(BOUND, r.read_exact(&mut back)).await.unwrap().unwrap();
    let took = start.elapsed();
    writer.await.unwrap();
    assert!(back.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    assert!(took >= Duration::from_millis(50), "{took:?}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn slicer_cuts_data_into_delayed_pieces() {
    let h = Harness::start().await;
    // An upstream that acknowledges one warm-up byte, then reports how many
    // reads it took to get 1000 bytes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (reads_tx, reads_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut warm = [0u8; 1];
        socket.read_exact(&mut warm).await.unwrap();
        socket.write_all(&warm).await.unwrap();
        let mut got = Vec::new();
        let mut reads = 0;
        let mut buf = [0u8; 4096];
        while got.len() < 1000 {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
            reads += 1;
        }
        let _ = reads_tx.send((reads, got));
    });
    let listen = h.proxy("p", upstream).await;
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"w").await;
    h.add("p", ToxicKind::Slicer { average_size: 100, size_variation: 20, delay: 10_000 }, Stream::Upstream).await;
    let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let start = Instant::now();
    conn.write_all(&payload).await.unwrap();
    let (reads, got) = tokio::time::timeout(BOUND, reads_rx).await.unwrap().unwrap();
    let took = start.elapsed();
    assert_eq!(got, payload);
    // At least 1000 / 120 = 9 pieces, 10 ms apart (reads may merge a few).
    assert!(reads >= 5, "{reads} reads");
    assert!(took >= Duration::from_millis(70), "{took:?}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn limit_data_closes_after_the_limit() {
    let h = Harness::start().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"before the toxic").await;
    // Counted from when the toxic is added, not from the connection's start.
    h.add("p", ToxicKind::LimitData { bytes: 10 }, Stream::Downstream).await;
    conn.write_all(&[7u8; 100]).await.unwrap();
    let (data, _) = read_to_end(&mut conn, BOUND).await;
    assert_eq!(data, vec![7u8; 10]);
    h.server.shutdown().await;
}

#[tokio::test]
async fn slow_close_delays_the_eof() {
    let h = Harness::start().await;
    // An upstream that answers "ping" with "ping", and anything else with
    // "bye" before it closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 16];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    if &buf[..n] != b"ping" {
                        let _ = socket.write_all(b"bye").await;
                        return;
                    }
                    let _ = socket.write_all(b"ping").await;
                }
            });
        }
    });
    let listen = h.proxy("p", upstream).await;

    let mut quick = connect(listen).await;
    let start = Instant::now();
    quick.write_all(b"x").await.unwrap();
    let (data, _) = read_to_end(&mut quick, BOUND).await;
    assert_eq!((data.as_slice(), start.elapsed() < Duration::from_millis(200)), (&b"bye"[..], true));

    let mut slow = connect(listen).await;
    roundtrip(&mut slow, b"ping").await;
    h.add("p", ToxicKind::SlowClose { delay: 400 }, Stream::Downstream).await;
    let start = Instant::now();
    slow.write_all(b"x").await.unwrap();
    assert_eq!(read_n(&mut slow, 3, BOUND).await, b"bye");
    let (rest, _) = read_to_end(&mut slow, BOUND).await;
    assert!(rest.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(380), "{:?}", start.elapsed());
    h.server.shutdown().await;
}

#[tokio::test]
async fn toxicity_decides_per_connection() {
    let h = Harness::start().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    let mut toxic = Toxic::new(ToxicKind::Latency { latency: 400, jitter: 0 }, Stream::Downstream);
    toxic.toxicity = 0.0;
    h.client.add_toxic("p", &toxic).await.unwrap();
    assert!(roundtrip(&mut conn, b"spared").await < Duration::from_millis(200));
    // An update re-rolls, as Toxiproxy restarts the toxic on every link.
    let (status, _) =
        h.call(reqwest::Method::PATCH, "/proxies/p/toxics/latency_downstream", Some(json!({"toxicity": 1.0}))).await;
    assert_eq!(status, 200);
    assert!(roundtrip(&mut conn, b"hit").await >= Duration::from_millis(395));
    h.server.shutdown().await;
}

/// The property the whole design is for: on one long-lived connection, every
/// add takes effect and every removal ends it, round after round.
#[tokio::test]
async fn fifty_rounds_of_add_and_remove_on_one_connection() {
    let h = Harness::start().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    for round in 0..50u32 {
        let msg = format!("round {round:02}");
        let (kind, stream) = match round % 3 {
            0 => (ToxicKind::Latency { latency: 100, jitter: 0 }, Stream::Upstream),
            1 => (ToxicKind::Latency { latency: 100, jitter: 0 }, Stream::Downstream),
            // 1 KB/s: the 8-byte message alone takes 8 ms; pad it to 100 ms.
            _ => (ToxicKind::Bandwidth { rate: 1 }, Stream::Downstream),
        };
        let payload = if round % 3 == 2 { vec![b'x'; 100] } else { msg.clone().into_bytes() };
        let toxic = h.add("p", kind, stream).await;
        let slow = roundtrip(&mut conn, &payload).await;
        assert!(slow >= Duration::from_millis(95), "round {round}: toxic not applied ({slow:?})");
        h.remove("p", &toxic).await;
        let fast = roundtrip(&mut conn, b"clean").await;
        assert!(fast < Duration::from_millis(80), "round {round}: effect outlived its toxic ({fast:?})");
    }
    h.server.shutdown().await;
}

// ---------------------------------------------------------------------------
// `dualwrite toxiproxy`: the server populated from a -config file
// ---------------------------------------------------------------------------

/// A loopback address whose port was free a moment ago (`serve` does not
/// report a port 0 back, so the test picks one).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[tokio::test]
async fn serve_populates_from_a_config_file() {
    let upstream = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toxiproxy.json");
    let config = json!([{"name": "echo", "listen": "127.0.0.1:0", "upstream": upstream.to_string()}]);
    std::fs::write(&path, config.to_string()).unwrap();
    let api = free_addr();
    let serving = tokio::spawn(async move { dualwrite::proxy::serve(api, Some(&path)).await });

    let client = ToxiproxyClient::new(&format!("http://{api}")).unwrap();
    let start = Instant::now();
    let proxies = loop {
        match client.proxies().await {
            Ok(proxies) if !proxies.is_empty() => break proxies,
            _ if start.elapsed() < BOUND => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("the server did not come up: {other:?}"),
        }
    };
    let listen = proxies["echo"].listen_addr().unwrap();
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"through the configured proxy").await;
    assert!(!serving.is_finished());
    serving.abort();
}

#[tokio::test]
async fn serve_refuses_a_bad_config_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"postgres": "127.0.0.1:5432"}"#).unwrap();
    let err = tokio::time::timeout(BOUND, dualwrite::proxy::serve(free_addr(), Some(&bad))).await.unwrap().unwrap_err();
    assert!(matches!(err, ProxyError::ConfigParse { .. }), "{err:?}");

    // A listen port already taken: the error names the file and the port.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap();
    let busy = dir.path().join("busy.json");
    std::fs::write(
        &busy,
        json!([{"name": "pg", "listen": port.to_string(), "upstream": "127.0.0.1:5432"}]).to_string(),
    )
    .unwrap();
    let err =
        tokio::time::timeout(BOUND, dualwrite::proxy::serve(free_addr(), Some(&busy))).await.unwrap().unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.starts_with("cannot create the proxies declared in "), "{chain}");
    assert!(chain.contains(&format!("listen tcp {port}: ")), "{chain}");
}
