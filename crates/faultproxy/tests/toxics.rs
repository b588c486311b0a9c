//! Every toxic on connections opened *before* it was added — the situation
//! of a pooled connection in a running workload — and the end of its effect
//! when it is removed, through an echo server on loopback.
//!
//! Like `fidelity.rs`, these run against a real Toxiproxy instead when
//! `FAULTPROXY_TEST_TOXIPROXY` names one.

mod common;

use std::time::{Duration, Instant};

use common::{arrives_within, connect, echo_server, read_n, read_to_end, roundtrip, Harness, BOUND};
use faultproxy::{Stream, Toxic, ToxicKind};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn latency_hits_a_live_connection_and_ends_with_removal() {
    let h = Harness::start_any().await;
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
            &format!("/proxies/{}/toxics/{}", h.name("p"), toxic.name),
            Some(json!({"attributes": {"latency": 400}})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(roundtrip(&mut conn, b"slower").await >= Duration::from_millis(395));
    h.finish().await;
}

#[tokio::test]
async fn latency_keeps_order_and_does_not_add_up_along_a_stream() {
    let h = Harness::start_any().await;
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
    h.finish().await;
}

/// Toxiproxy 2.x: a `timeout` of 0 is a black hole — data is dropped, the
/// connection stays open while the toxic lasts, and is closed when it goes.
#[tokio::test]
async fn timeout_zero_swallows_data_and_closes_the_connection_when_removed() {
    let h = Harness::start_any().await;
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
    h.finish().await;
}

#[tokio::test]
async fn timeout_closes_an_idle_connection_after_its_delay() {
    let h = Harness::start_any().await;
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
    h.finish().await;
}

#[tokio::test]
async fn bandwidth_paces_a_live_connection_and_survives_large_chunks() {
    let h = Harness::start_any().await;
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
    h.finish().await;
}

#[tokio::test]
async fn slicer_cuts_data_into_delayed_pieces() {
    let h = Harness::start_any().await;
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
    h.finish().await;
}

#[tokio::test]
async fn limit_data_closes_after_the_limit() {
    let h = Harness::start_any().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    roundtrip(&mut conn, b"before the toxic").await;
    // Counted from when the toxic is added, not from the connection's start.
    h.add("p", ToxicKind::LimitData { bytes: 10 }, Stream::Downstream).await;
    conn.write_all(&[7u8; 100]).await.unwrap();
    let (data, _) = read_to_end(&mut conn, BOUND).await;
    assert_eq!(data, vec![7u8; 10]);
    h.finish().await;
}

#[tokio::test]
async fn slow_close_delays_the_eof() {
    let h = Harness::start_any().await;
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
    h.finish().await;
}

#[tokio::test]
async fn toxicity_decides_per_connection() {
    let h = Harness::start_any().await;
    let listen = h.proxy("p", echo_server().await).await;
    let mut conn = connect(listen).await;
    let mut toxic = Toxic::new(ToxicKind::Latency { latency: 400, jitter: 0 }, Stream::Downstream);
    toxic.toxicity = 0.0;
    h.client.add_toxic(&h.name("p"), &toxic).await.unwrap();
    assert!(roundtrip(&mut conn, b"spared").await < Duration::from_millis(200));
    // An update re-rolls, as Toxiproxy restarts the toxic on every link.
    let (status, _) = h
        .call(
            reqwest::Method::PATCH,
            &format!("/proxies/{}/toxics/latency_downstream", h.name("p")),
            Some(json!({"toxicity": 1.0})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(roundtrip(&mut conn, b"hit").await >= Duration::from_millis(395));
    h.finish().await;
}

/// The property the whole design is for: on one long-lived connection, every
/// add takes effect and every removal ends it, round after round.
#[tokio::test]
async fn fifty_rounds_of_add_and_remove_on_one_connection() {
    let h = Harness::start_any().await;
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
    h.finish().await;
}
