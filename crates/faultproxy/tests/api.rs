//! The HTTP API of the built-in server against Toxiproxy 2.12's: status
//! codes, JSON shapes and error texts, checked with raw HTTP calls, with this
//! crate's own client and with an independent one (`toxiproxy_rust`); the
//! guard that keeps web pages out; where the server listens; `serve` with a
//! `-config` file.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{arrives_within, connect, echo_server, read_to_end, roundtrip, Harness, BOUND};
use faultproxy::{
    BindPolicy, ProxyConfig, ProxyError, ProxyServer, ProxyUpdate, ServeOptions, ServerOptions, Stream, ToxicKind,
    ToxiproxyClient,
};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------
// Routes, shapes and refusals
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
    h.finish().await;
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
    h.finish().await;
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
    h.finish().await;
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
    h.finish().await;
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
    h.finish().await;
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
    h.finish().await;
}

#[tokio::test]
async fn browsers_are_refused() {
    let h = Harness::start().await;
    let response = h
        .http
        .get(format!("{}/proxies", h.url))
        .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    h.finish().await;
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
        format!("the fault proxy at {} refused GET /proxies/missing with HTTP 404: proxy not found", h.url)
    );
    h.finish().await;
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
// `serve`: the server populated from a -config file
// ---------------------------------------------------------------------------

/// A loopback address whose port was free a moment ago (`serve` does not
/// report a port 0 back, so the test picks one).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn serve_options(config: &Path) -> ServeOptions {
    ServeOptions {
        server: ServerOptions { api_listen: free_addr(), ..Default::default() },
        config: Some(config.to_path_buf()),
    }
}

#[tokio::test]
async fn serve_populates_from_a_config_file() {
    let upstream = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toxiproxy.json");
    let config = json!([{"name": "echo", "listen": "127.0.0.1:0", "upstream": upstream.to_string()}]);
    std::fs::write(&path, config.to_string()).unwrap();
    let api = free_addr();
    let options = ServeOptions { server: ServerOptions { api_listen: api, ..Default::default() }, config: Some(path) };
    let serving = tokio::spawn(faultproxy::serve(options));

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
    let err = tokio::time::timeout(BOUND, faultproxy::serve(serve_options(&bad))).await.unwrap().unwrap_err();
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
    let err = tokio::time::timeout(BOUND, faultproxy::serve(serve_options(&busy))).await.unwrap().unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.starts_with("cannot create the proxies declared in "), "{chain}");
    assert!(chain.contains(&format!("listen tcp {port}: ")), "{chain}");
}
// ---------------------------------------------------------------------------
// Toxiproxy 2.12's edge cases
// ---------------------------------------------------------------------------

/// `stream` is parsed without regard to case but kept as written, `""` is
/// refused, a negative attribute is accepted and `noop` is a type: what
/// Toxiproxy 2.12's `AddToxicJson` does.
#[tokio::test]
async fn toxic_creation_edge_cases_match_toxiproxy() {
    let h = Harness::start().await;
    h.proxy("p", echo_server().await).await;
    let toxics = "/proxies/p/toxics";
    let (status, body) =
        h.call(reqwest::Method::POST, toxics, Some(json!({"type": "timeout", "stream": "UPSTREAM"}))).await;
    assert_eq!(status, 200);
    assert_eq!((body["name"].clone(), body["stream"].clone()), (json!("timeout_UPSTREAM"), json!("UPSTREAM")));
    // Listed (and so read back by a client) as written.
    let listed = h.client.toxics("p").await.unwrap();
    assert_eq!((listed[0].stream, listed[0].stream_as_written()), (Stream::Upstream, "UPSTREAM"));

    let (status, body) = h.call(reqwest::Method::POST, toxics, Some(json!({"type": "latency", "stream": ""}))).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "stream was invalid, can be either upstream or downstream", "status": 400}))
    );
    let (status, body) = h
        .call(
            reqwest::Method::POST,
            toxics,
            Some(json!({"type": "latency", "attributes": {"latency": -100, "jitter": -5}})),
        )
        .await;
    assert_eq!((status, body["attributes"].clone()), (200, json!({"latency": -100, "jitter": -5})));
    let (status, body) =
        h.call(reqwest::Method::POST, toxics, Some(json!({"type": "noop", "stream": "upstream"}))).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"name": "noop_upstream", "type": "noop", "stream": "upstream", "toxicity": 1.0, "attributes": {}})
    );
    let (status, body) = h.call(reqwest::Method::POST, toxics, Some(json!({"type": "Latency"}))).await;
    assert_eq!((status, body), (400, json!({"error": "invalid toxic type", "status": 400})));
    // A taken name is refused before bad attributes are noticed.
    let (status, body) =
        h.call(reqwest::Method::POST, toxics, Some(json!({"type": "latency", "attributes": {"latency": 1.5}}))).await;
    assert_eq!((status, body), (409, json!({"error": "toxic already exists", "status": 409})));
    h.finish().await;
}

/// A populate that fails part-way keeps what it made, and says so beside
/// the error, as Toxiproxy does.
#[tokio::test]
async fn populate_reports_the_proxies_made_before_an_error() {
    let h = Harness::start().await;
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap();
    let (status, body) = h
        .call(
            reqwest::Method::POST,
            "/populate",
            Some(json!([
                {"name": "first", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
                {"name": "second", "listen": port.to_string(), "upstream": "127.0.0.1:1"}
            ])),
        )
        .await;
    assert_eq!(status, 500);
    assert!(body["error"].as_str().unwrap().starts_with(&format!("listen tcp {port}: ")), "{body}");
    assert_eq!(body["proxies"].as_array().unwrap().len(), 1);
    assert_eq!(body["proxies"][0]["name"], "first");
    assert!(h.client.get_proxy("first").await.is_ok());
    h.finish().await;
}

// ---------------------------------------------------------------------------
// Web pages are kept out (beyond Toxiproxy: it checks only the User-Agent)
// ---------------------------------------------------------------------------

/// A page on any site can make a browser send a "simple" cross-origin POST
/// (`Content-Type: text/plain`) to a loopback address. It is refused, with a
/// Toxiproxy-style JSON error, and changes nothing.
#[tokio::test]
async fn a_cross_origin_text_plain_post_is_refused() {
    let h = Harness::start().await;
    h.proxy("p", echo_server().await).await;
    let response = h
        .http
        .post(format!("{}/proxies/p/toxics", h.url))
        .header("Origin", "http://evil.example")
        .header("Content-Type", "text/plain")
        .body(r#"{"type": "timeout", "attributes": {"timeout": 0}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 403);
    assert!(body["error"].as_str().unwrap().contains("does not answer web pages"), "{body}");
    assert!(h.client.toxics("p").await.unwrap().is_empty(), "the refused request added a toxic");

    // Another page on this very machine is another origin too.
    let api_port = h.server.as_ref().unwrap().api_addr().port();
    let response = h
        .http
        .post(format!("{}/reset", h.url))
        .header("Origin", format!("http://localhost:{}", api_port.wrapping_add(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    h.finish().await;
}

/// DNS rebinding: a page whose name now resolves to 127.0.0.1 still sends its
/// own name as `Host`.
#[tokio::test]
async fn a_foreign_host_name_is_refused() {
    let h = Harness::start().await;
    let response = h.http.get(format!("{}/proxies", h.url)).header("Host", "evil.example:8474").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().starts_with("Host \"evil.example:8474\" is not allowed"), "{body}");
    h.finish().await;
}

/// What `toxiproxy-cli` and curl send — no `Origin`, `Host` the address they
/// dialled or `localhost` — still works.
#[tokio::test]
async fn command_line_clients_are_let_in() {
    let h = Harness::start().await;
    let port = h.server.as_ref().unwrap().api_addr().port();
    for (i, host) in [format!("127.0.0.1:{port}"), format!("localhost:{port}")].into_iter().enumerate() {
        let response = h
            .http
            .post(format!("{}/proxies", h.url))
            .header("Host", &host)
            .header("User-Agent", "Go-http-client/1.1")
            .body(json!({"name": format!("cli_{i}"), "upstream": "127.0.0.1:1"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201, "Host {host}");
    }
    // The API's own origin is the API.
    let response = h
        .http
        .get(format!("{}/proxies", h.url))
        .header("Origin", format!("http://127.0.0.1:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    h.finish().await;
}

// ---------------------------------------------------------------------------
// Where the server listens
// ---------------------------------------------------------------------------

/// `toxiproxy.json` says `0.0.0.0:PORT` for the compose container; outside
/// one, the server binds that on loopback unless told to listen anywhere.
#[tokio::test]
async fn unspecified_addresses_are_bound_on_loopback_unless_told_otherwise() {
    let port = free_addr().port();
    let config = ProxyConfig::new("everywhere", format!("0.0.0.0:{port}"), "127.0.0.1:1");
    let server = ProxyServer::start("0.0.0.0:0".parse().unwrap()).await.unwrap();
    assert!(server.api_addr().ip().is_loopback(), "API on {}", server.api_addr());
    let client = ToxiproxyClient::new(&server.url()).unwrap();
    let info = client.create_proxy(&config).await.unwrap();
    assert_eq!(info.listen, format!("127.0.0.1:{port}"));
    // Populating the same file again leaves the proxy alone: its address
    // is compared where it would be bound.
    let toxic = faultproxy::Toxic::new(ToxicKind::Latency { latency: 1, jitter: 0 }, Stream::Downstream);
    client.add_toxic("everywhere", &toxic).await.unwrap();
    let again = client.populate(std::slice::from_ref(&config)).await.unwrap();
    assert_eq!(again[0].toxics.len(), 1, "populate replaced a proxy whose address had not changed");
    server.shutdown().await;

    let options = ServerOptions { api_listen: "0.0.0.0:0".parse().unwrap(), bind: BindPolicy::Any, seed: 0 };
    let server = ProxyServer::start_with(options).await.unwrap();
    assert!(server.api_addr().ip().is_unspecified());
    let client = ToxiproxyClient::new(&server.url()).unwrap();
    let info = client.create_proxy(&config).await.unwrap();
    assert_eq!(info.listen, format!("0.0.0.0:{port}"));
    server.shutdown().await;
}

/// A reseed restarts each proxy's connection count, so the same seed gives
/// connections the same draws: shown by the slicer's cuts, which the
/// upstream sees as the sizes of its reads.
#[tokio::test]
async fn the_same_seed_cuts_the_same_slices() {
    async fn cuts(server: &ProxyServer, client: &ToxiproxyClient, seed: u64) -> Vec<usize> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut socket, _) = listener.accept().await.unwrap();
            let (mut sizes, mut total, mut buf) = (Vec::new(), 0, [0u8; 4096]);
            while total < 600 {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0);
                sizes.push(n);
                total += n;
            }
            sizes
        });
        let _ = client.delete_proxy("sliced").await;
        let info = client.create_proxy(&ProxyConfig::new("sliced", "127.0.0.1:0", upstream.to_string())).await.unwrap();
        // 100 ms between pieces: each piece is a read of its own, even on a
        // busy machine.
        let slicer = ToxicKind::Slicer { average_size: 100, size_variation: 60, delay: 100_000 };
        client.add_toxic("sliced", &faultproxy::Toxic::new(slicer, Stream::Upstream)).await.unwrap();
        server.reseed(seed).await;
        let mut conn = connect(info.listen_addr().unwrap()).await;
        conn.write_all(&[1u8; 600]).await.unwrap();
        tokio::time::timeout(BOUND * 2, reader).await.unwrap().unwrap()
    }
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = ToxiproxyClient::new(&server.url()).unwrap();
    let (a, b, c) = (cuts(&server, &client, 5).await, cuts(&server, &client, 5).await, cuts(&server, &client, 6).await);
    assert_eq!(a, b, "the same seed cut differently");
    assert_ne!(a, c, "another seed cut the same way");
    assert_eq!(a.iter().sum::<usize>(), 600);
    server.shutdown().await;
}
