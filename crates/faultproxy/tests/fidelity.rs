//! Toxiproxy 2.12's behaviour where it is easy to get wrong, pinned at the
//! socket: what a client and an upstream see. Each test says which line of
//! Toxiproxy's Go sources makes it so.
//!
//! These tests run against the built-in server; with
//! `FAULTPROXY_TEST_TOXIPROXY=http://HOST:PORT` they run the same assertions
//! against that server instead (a real `toxiproxy-server`), to check the
//! pins side by side.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{connect, echo_server, read_to_end, roundtrip, End, Harness, BOUND};
use faultproxy::{Stream, Toxic, ToxicKind};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// `reset_peer` on a connection opened *before* the toxic: a FIN. Toxiproxy
/// sets `SO_LINGER 0` only in `ToxicLink.Start`, for the toxics already in
/// the chain when the connection starts; `AddToxic` does not, so the
/// toxic's `stub.Close()` ends in a plain `Close()`.
#[tokio::test]
async fn reset_peer_on_an_open_connection_closes_it_with_a_fin() {
    let h = Harness::start_any().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"warm").await;
    h.add("p", ToxicKind::ResetPeer { timeout: 0 }, Stream::Downstream).await;
    conn.write_all(b"boom").await.unwrap();
    let (data, end) = read_to_end(&mut conn, BOUND).await;
    assert_eq!((data.as_slice(), end), (&b""[..], End::Eof), "{}", h.which());
    h.finish().await;
}

/// `reset_peer` present when the connection opens: an RST, on both
/// streams' toxics. The linger set at start makes the close abortive.
#[tokio::test]
async fn reset_peer_on_a_new_connection_resets_it() {
    let h = Harness::start_any().await;
    let listen = h.proxy("p", echo_server().await).await;
    let toxic = h.add("p", ToxicKind::ResetPeer { timeout: 0 }, Stream::Downstream).await;
    let mut conn = connect(listen).await;
    conn.write_all(b"boom").await.unwrap();
    let (data, end) = read_to_end(&mut conn, BOUND).await;
    assert_eq!((data.as_slice(), end), (&b""[..], End::Reset), "{}: downstream", h.which());
    h.remove("p", &toxic).await;

    // Upstream, with a delay: the reset comes that long after the data.
    h.add("p", ToxicKind::ResetPeer { timeout: 300 }, Stream::Upstream).await;
    let mut conn = connect(listen).await;
    let sent = Instant::now();
    conn.write_all(b"boom").await.unwrap();
    let (_, end) = read_to_end(&mut conn, BOUND).await;
    assert_eq!(end, End::Reset, "{}: upstream", h.which());
    assert!(sent.elapsed() >= Duration::from_millis(280), "{:?}", sent.elapsed());
    h.finish().await;
}

/// `timeout > 0` is an idle timeout: `TimeoutToxic.Pipe` runs
/// `time.After(timeout)` afresh on every loop, and every chunk it drops ends
/// a loop. Data every 200 ms keeps a 500 ms timeout from firing.
#[tokio::test]
async fn timeout_counts_from_the_last_chunk() {
    let h = Harness::start_any().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"warm").await;
    let added = Instant::now();
    h.add("p", ToxicKind::Timeout { timeout: 500 }, Stream::Upstream).await;
    let mut last_write = Instant::now();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        conn.write_all(b"tick").await.unwrap();
        last_write = Instant::now();
    }
    let mut byte = [0u8; 1];
    let still_open = tokio::time::timeout(Duration::from_millis(50), conn.peek(&mut byte)).await.is_err();
    assert!(still_open, "{}: closed after {:?} though data kept arriving", h.which(), added.elapsed());
    let (data, _) = read_to_end(&mut conn, BOUND).await;
    // The proxy saw the last tick after it was written, so its count ended
    // no earlier than 500 ms after that.
    let idle = last_write.elapsed();
    assert!(data.is_empty());
    assert!(idle >= Duration::from_millis(480) && idle < Duration::from_millis(1500), "{}: {idle:?}", h.which());
    h.finish().await;
}

/// An upstream that reports the size of every read, in order.
async fn read_sizes_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sizes, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.read(&mut buf).await {
            if n == 0 || sizes.send(n).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// `slicer` halves a chunk recursively (`SlicerToxic.chunk`): 300 bytes with
/// an average of 100 and no variation is 150 + 150, then 75 × 4 — not
/// 100 × 3.
#[tokio::test]
async fn slicer_bisects_recursively() {
    let h = Harness::start_any().await;
    let (upstream, mut sizes) = read_sizes_upstream().await;
    let listen = h.proxy("p", upstream).await;
    // 100 ms after each piece, so that the upstream reads each on its own.
    h.add("p", ToxicKind::Slicer { average_size: 100, size_variation: 0, delay: 100_000 }, Stream::Upstream).await;
    let mut conn = connect(listen).await;
    conn.write_all(&[7u8; 300]).await.unwrap();
    let mut got = Vec::new();
    while got.iter().sum::<usize>() < 300 {
        got.push(tokio::time::timeout(BOUND, sizes.recv()).await.unwrap().unwrap());
    }
    assert_eq!(got, [75, 75, 75, 75], "{}", h.which());
    h.finish().await;
}

/// An upstream that answers "pong" only after the client's EOF.
async fn replies_after_eof() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                if socket.read_to_end(&mut request).await.is_ok() {
                    // The write may fail: the proxy closed this socket.
                    let _ = socket.write_all(b"pong").await;
                }
            });
        }
    });
    addr
}

/// A client's half-close (`shutdown(SHUT_WR)`) tears the whole connection
/// down: the upstream link's `io.Copy` ends on EOF and `dest.Close()` closes
/// the upstream socket entirely, so a reply sent after the EOF never comes
/// back. (Straight to the upstream, it would.)
#[tokio::test]
async fn a_half_close_ends_the_whole_connection() {
    let upstream = replies_after_eof().await;
    let mut direct = connect(upstream).await;
    direct.write_all(b"ping").await.unwrap();
    direct.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut direct, BOUND).await, (b"pong".to_vec(), End::Eof), "the upstream is not as meant");

    let h = Harness::start_any().await;
    let listen = h.proxy("p", upstream).await;
    let mut conn = connect(listen).await;
    conn.write_all(b"ping").await.unwrap();
    conn.shutdown().await.unwrap();
    let (data, end) = read_to_end(&mut conn, BOUND).await;
    assert!(data.is_empty(), "{}: the reply after the half-close came through: {data:?}", h.which());
    assert_eq!(end, End::Eof, "{}", h.which());
    h.finish().await;
}

/// `stream` in any case acts on that stream (`stream.ParseDirection`
/// lowercases) and is kept as written; `""` is refused.
#[tokio::test]
async fn stream_is_case_insensitive_but_kept_as_written() {
    let h = Harness::start_any().await;
    let (upstream, mut sizes) = read_sizes_upstream().await;
    let listen = h.proxy("p", upstream).await;
    let mut conn = connect(listen).await;
    let path = format!("/proxies/{}/toxics", h.name("p"));
    let (status, body) =
        h.call(reqwest::Method::POST, &path, Some(json!({"type": "timeout", "stream": "UPSTREAM"}))).await;
    assert_eq!(status, 200, "{}: {body}", h.which());
    assert_eq!((body["name"].clone(), body["stream"].clone()), (json!("timeout_UPSTREAM"), json!("UPSTREAM")));
    // It black-holes the client's bytes: the upstream reads nothing.
    conn.write_all(b"lost").await.unwrap();
    let read = tokio::time::timeout(Duration::from_millis(300), sizes.recv()).await;
    assert!(read.is_err(), "{}: the upstream read {read:?}", h.which());

    let (status, body) = h.call(reqwest::Method::POST, &path, Some(json!({"type": "latency", "stream": ""}))).await;
    assert_eq!((status, body["status"].clone()), (400, json!(400)), "{}", h.which());
    h.finish().await;
}

/// A negative latency is accepted and delays nothing (`time.After` of a
/// negative duration fires at once); `noop` passes data through.
#[tokio::test]
async fn negative_latency_and_noop_pass_data_at_once() {
    let h = Harness::start_any().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"warm").await;
    h.add("p", ToxicKind::Latency { latency: -1000, jitter: 0 }, Stream::Downstream).await;
    h.add("p", ToxicKind::Noop {}, Stream::Upstream).await;
    let took = roundtrip(&mut conn, b"quick").await;
    assert!(took < Duration::from_millis(300), "{}: {took:?}", h.which());
    let names: Vec<String> = h.client.toxics(&h.name("p")).await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["noop_upstream", "latency_downstream"], "{}", h.which());
    h.finish().await;
}

/// Removing a `timeout` closes the connections it was on, even one whose
/// toxicity roll spared it: `RemoveToxic` calls `Cleanup` on every link.
#[tokio::test]
async fn removing_a_timeout_closes_even_spared_connections() {
    let h = Harness::start_any().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"warm").await;
    let mut toxic = Toxic::new(ToxicKind::Timeout { timeout: 0 }, Stream::Upstream);
    toxic.toxicity = 0.0;
    let toxic = h.client.add_toxic(&h.name("p"), &toxic).await.unwrap();
    // Spared: data flows.
    roundtrip(&mut conn, b"spared").await;
    h.remove("p", &toxic).await;
    let (data, end) = read_to_end(&mut conn, BOUND).await;
    assert_eq!((data.as_slice(), end), (&b""[..], End::Eof), "{}", h.which());
    h.finish().await;
}
