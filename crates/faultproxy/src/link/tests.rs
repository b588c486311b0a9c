//! The pump's timed behaviour, under paused time, over in-memory pipes.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::draw::{name_key, DrawKey};
use super::pump::Pump;
use crate::toxic_set::{Chain, LiveToxic};
use crate::wire::{Stream, Toxic, ToxicKind};

/// A chain of the given toxics, published now, with ids from `first_id`.
fn chain_from(first_id: u64, kinds: &[ToxicKind]) -> Chain {
    Arc::new(
        kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| LiveToxic {
                id: first_id + i as u64,
                revision: 0,
                since: Instant::now(),
                toxic: Toxic::new(kind.clone(), Stream::Downstream),
            })
            .collect(),
    )
}

fn chain(kinds: &[ToxicKind]) -> Chain {
    chain_from(1, kinds)
}

struct Rig {
    chain: watch::Sender<Chain>,
    /// Bytes written here reach the pump's source.
    input: DuplexStream,
    /// What the pump writes comes out here.
    output: DuplexStream,
    task: JoinHandle<()>,
}

/// A pump from one pipe to another, seeded with `seed`.
fn rig_seeded(kinds: &[ToxicKind], seed: u64) -> Rig {
    let (chain_tx, chain_rx) = watch::channel(chain(kinds));
    let (mut source, input) = tokio::io::duplex(256 * 1024);
    let (mut dest, output) = tokio::io::duplex(256 * 1024);
    let key = DrawKey { seed, proxy: name_key("p"), connection: 0 };
    let task = tokio::spawn(async move {
        let peer_ended = AtomicBool::new(false);
        let mut pump = Pump::new(chain_rx, key.stream(Stream::Downstream), false);
        pump.run(&mut source, &mut dest, &peer_ended).await;
    });
    Rig { chain: chain_tx, input, output, task }
}

fn rig(kinds: &[ToxicKind]) -> Rig {
    rig_seeded(kinds, 0)
}

async fn read_exactly(output: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    output.read_exact(&mut buf).await.unwrap();
    buf
}

#[tokio::test(start_paused = true)]
async fn latency_delays_exactly_and_removal_releases_a_waiting_chunk() {
    let mut r = rig(&[ToxicKind::Latency { latency: 1000, jitter: 0 }]);
    let start = Instant::now();
    r.input.write_all(b"a").await.unwrap();
    assert_eq!(read_exactly(&mut r.output, 1).await, b"a");
    assert_eq!(start.elapsed(), Duration::from_millis(1000));

    let start = Instant::now();
    r.input.write_all(b"b").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    r.chain.send(chain(&[])).unwrap();
    assert_eq!((read_exactly(&mut r.output, 1).await, start.elapsed()), (b"b".to_vec(), Duration::from_millis(300)));

    // Back in pass-through: no delay, nothing lost, order kept.
    r.input.write_all(b"cd").await.unwrap();
    assert_eq!(read_exactly(&mut r.output, 2).await, b"cd");
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn a_toxic_added_to_an_idle_pass_through_meets_the_next_bytes() {
    let mut r = rig(&[]);
    r.input.write_all(b"fast").await.unwrap();
    assert_eq!(read_exactly(&mut r.output, 4).await, b"fast");
    r.chain.send(chain(&[ToxicKind::Latency { latency: 500, jitter: 0 }])).unwrap();
    let start = Instant::now();
    r.input.write_all(b"slow").await.unwrap();
    assert_eq!(read_exactly(&mut r.output, 4).await, b"slow");
    assert_eq!(start.elapsed(), Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn negative_latency_subtracts_from_the_others() {
    let mut r = rig(&[ToxicKind::Latency { latency: 300, jitter: 0 }, ToxicKind::Latency { latency: -100, jitter: 0 }]);
    let start = Instant::now();
    r.input.write_all(b"x").await.unwrap();
    read_exactly(&mut r.output, 1).await;
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    r.chain.send(chain_from(3, &[ToxicKind::Latency { latency: -100, jitter: 0 }])).unwrap();
    let start = Instant::now();
    r.input.write_all(b"y").await.unwrap();
    read_exactly(&mut r.output, 1).await;
    assert_eq!(start.elapsed(), Duration::ZERO, "a negative total is no delay");
}

#[tokio::test(start_paused = true)]
async fn bandwidth_paces_in_hundred_millisecond_pieces() {
    let mut r = rig(&[ToxicKind::Bandwidth { rate: 10 }]);
    let start = Instant::now();
    r.input.write_all(&[1u8; 2500]).await.unwrap();
    read_exactly(&mut r.output, 2500).await;
    // 2500 bytes at 10 KB/s: 250 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn timeout_zero_drops_data_and_its_removal_closes_the_link() {
    let mut r = rig(&[]);
    r.chain.send(chain(&[ToxicKind::Timeout { timeout: 0 }])).unwrap();
    tokio::task::yield_now().await;
    r.input.write_all(b"swallowed").await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!r.task.is_finished(), "a timeout of 0 never closes on its own");
    // Removing the toxic closes the connection (Toxiproxy's Cleanup), and
    // the swallowed bytes never arrive.
    r.chain.send(chain(&[])).unwrap();
    r.task.await.unwrap();
    let mut rest = Vec::new();
    r.output.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test(start_paused = true)]
async fn timeout_is_an_idle_timeout_every_chunk_restarts_it() {
    let mut r = rig(&[]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    r.chain.send(chain(&[ToxicKind::Timeout { timeout: 500 }])).unwrap();
    // A chunk every 300 ms keeps the connection open past 500 ms...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        r.input.write_all(b"held").await.unwrap();
    }
    assert!(!r.task.is_finished(), "closed while data kept arriving");
    // ...and it closes 500 ms after the last one.
    let last = Instant::now();
    r.task.await.unwrap();
    assert_eq!(last.elapsed(), Duration::from_millis(500));
    let mut rest = Vec::new();
    r.output.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing gets through a black hole");
}

#[tokio::test(start_paused = true)]
async fn timeout_closes_an_idle_link_on_time() {
    let r = rig(&[]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let added = Instant::now();
    r.chain.send(chain(&[ToxicKind::Timeout { timeout: 500 }])).unwrap();
    r.task.await.unwrap();
    assert_eq!(added.elapsed(), Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn slow_close_delays_the_close() {
    let mut r = rig(&[ToxicKind::SlowClose { delay: 700 }]);
    let start = Instant::now();
    r.input.write_all(b"last").await.unwrap();
    r.input.shutdown().await.unwrap();
    let mut got = Vec::new();
    r.output.read_to_end(&mut got).await.unwrap();
    assert_eq!((got.as_slice(), start.elapsed()), (&b"last"[..], Duration::from_millis(700)));
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_eof_without_toxics_closes_at_once() {
    let mut r = rig(&[]);
    r.input.write_all(b"bye").await.unwrap();
    r.input.shutdown().await.unwrap();
    let mut got = Vec::new();
    r.output.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"bye");
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn slicer_writes_bisected_pieces_with_a_pause_after_each() {
    let mut r = rig(&[ToxicKind::Slicer { average_size: 100, size_variation: 0, delay: 10_000 }]);
    let start = Instant::now();
    r.input.write_all(&[9u8; 400]).await.unwrap();
    // 400 bytes → 4 pieces of 100, each followed by 10 ms.
    let mut arrivals = Vec::new();
    let mut got = 0;
    while got < 400 {
        let mut buf = [0u8; 1024];
        let n = r.output.read(&mut buf).await.unwrap();
        got += n;
        arrivals.push((n, start.elapsed()));
    }
    let ms = |n| Duration::from_millis(n);
    assert_eq!(arrivals, [(100, ms(0)), (100, ms(10)), (100, ms(20)), (100, ms(30))]);
}

#[tokio::test(start_paused = true)]
async fn limit_data_counts_from_the_toxic_and_closes() {
    let mut r = rig(&[]);
    r.input.write_all(b"before").await.unwrap();
    assert_eq!(read_exactly(&mut r.output, 6).await, b"before");
    r.chain.send(chain(&[ToxicKind::LimitData { bytes: 4 }])).unwrap();
    tokio::task::yield_now().await;
    r.input.write_all(b"0123456789").await.unwrap();
    let mut got = Vec::new();
    r.output.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"0123");
    r.task.await.unwrap();
}

/// Two pumps with the same seed and key see the same jitter, chunk for chunk.
#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_delays() {
    async fn delays(seed: u64) -> Vec<Duration> {
        let mut r = rig_seeded(&[ToxicKind::Latency { latency: 100, jitter: 50 }], seed);
        let mut delays = Vec::new();
        for _ in 0..10 {
            let start = Instant::now();
            r.input.write_all(b"x").await.unwrap();
            read_exactly(&mut r.output, 1).await;
            delays.push(start.elapsed());
        }
        delays
    }
    let (a, b, c) = (delays(42).await, delays(42).await, delays(43).await);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|d| *d >= Duration::from_millis(50) && *d < Duration::from_millis(150)), "{a:?}");
}
