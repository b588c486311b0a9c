//! Evidence before verdicts, against the real services: the snapshot's
//! topic read names what the broker deleted; the embedded broker's capacity
//! is checked before a run; a drain that times out gives `unknown` and exit
//! code 3 through the real binary, never a confident "lost".

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dualwrite::kafka::embedded::EmbeddedKafka;
use dualwrite::kafka::read::{read_all, read_to_end, TopicTail};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;

const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// An embedded broker with a new topic of `partitions`: the broker (kept
/// alive by the caller), its address and the topic's name.
fn embedded_topic(prefix: &str, partitions: i32) -> (EmbeddedKafka, String, String) {
    let kafka = EmbeddedKafka::start().expect("the embedded broker starts");
    let bootstrap = kafka.listen_addr().to_string();
    let topic = unique(prefix);
    kafka.create_topic(&topic, partitions).expect("a topic");
    (kafka, bootstrap, topic)
}

/// A producer that sends each record as a batch of its own.
fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .set("message.timeout.ms", "10000")
        .set("log_level", "3")
        .create()
        .expect("a producer")
}

async fn send(producer: &FutureProducer, topic: &str, partition: i32, payload: &[u8]) {
    producer
        .send(FutureRecord::to(topic).partition(partition).key("k").payload(payload), Duration::from_secs(10))
        .await
        .unwrap_or_else(|(e, _)| panic!("the embedded broker took the record: {e}"));
}

/// librdkafka's mock cluster deletes a partition's oldest records beyond
/// 5 MiB. The snapshot's read must say so, with the count, and must not
/// pass the survivors off as the whole partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_the_embedded_broker_deleted_are_named_with_their_count() {
    let (_kafka, bootstrap, topic) = embedded_topic("dw_evidence", 3);
    let producer = producer(&bootstrap);
    // 64 records of 100 KiB: 6.4 MiB on partition 0, past the mock's cap.
    let big = vec![b'x'; 100 * 1024];
    for _ in 0..64 {
        send(&producer, &topic, 0, &big).await;
    }
    // Partition 1 holds a little and keeps all of it.
    for _ in 0..3 {
        send(&producer, &topic, 1, b"small").await;
    }

    let read = read_to_end(&bootstrap, &topic, Duration::from_secs(20)).await.expect("the read begins");
    let p0 = read.partitions.iter().find(|p| p.partition == 0).expect("partition 0");
    assert!(p0.low > 0, "the mock deleted the oldest records: {p0:?}");
    assert_eq!(p0.high, 64, "every record was acknowledged and got an offset: {p0:?}");
    assert!(p0.end_signalled, "{p0:?}");
    assert_eq!(p0.next, 64);
    let survivors = read.records.iter().filter(|r| r.partition == 0).count() as i64;
    assert_eq!(survivors, p0.high - p0.low, "every record still held was read");

    let missing = read.missing();
    assert_eq!(missing.len(), 1, "only the deletion is missing: {missing:?}");
    assert_eq!(
        missing[0],
        format!(
            "the broker deleted {} records of partition 0 before the snapshot (its log starts at offset {})",
            p0.low, p0.low
        )
    );
    let p1 = read.partitions.iter().find(|p| p.partition == 1).expect("partition 1");
    assert_eq!((p1.low, p1.next, p1.final_watermarks, p1.end_signalled), (0, 3, Some((0, 3)), true));

    // The all-or-nothing reader refuses to hand out a partial topic.
    let err = read_all(&bootstrap, &topic, Duration::from_secs(20)).await.unwrap_err();
    assert!(err.contains("the broker deleted"), "{err}");
}

/// A run's read follows the topic from the run's start: the records sent
/// before it began, those sent while it followed, and those sent just
/// before it was asked to finish are all read, once each and in offset
/// order, and it ends on the broker's signal asked for at the finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_begun_with_the_run_reads_everything_sent_until_it_finishes() {
    let (_kafka, bootstrap, topic) = embedded_topic("dw_tail", 3);
    let producer = producer(&bootstrap);
    let mut sent = 0;
    for n in 0..6 {
        send(&producer, &topic, n % 3, format!("before {n}").as_bytes()).await;
        sent += 1;
    }
    let tail = TopicTail::start(&bootstrap, &topic).await.expect("the read begins");
    for n in 0..60 {
        send(&producer, &topic, n % 3, format!("while {n}").as_bytes()).await;
        sent += 1;
    }
    // Long enough for the read to have reached every partition's end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // These arrive after it has: only the finish's own reading sees them.
    for n in 0..7 {
        send(&producer, &topic, 2, format!("last {n}").as_bytes()).await;
        sent += 1;
    }
    let read = tail.finish(Duration::from_secs(20)).await.expect("the read finishes");

    assert_eq!(read.missing(), Vec::<String>::new());
    assert_eq!(read.records.len(), sent, "every record, once");
    for p in &read.partitions {
        let offsets: Vec<i64> = read.records.iter().filter(|r| r.partition == p.partition).map(|r| r.offset).collect();
        let expected: Vec<i64> = (0..p.next).collect();
        assert_eq!(offsets, expected, "partition {} in offset order from 0", p.partition);
        assert!(p.end_signalled, "{p:?}");
        assert_eq!(p.final_watermarks.map(|(_, high)| high), Some(p.next), "{p:?}");
    }
    assert_eq!(read.partitions.iter().map(|p| p.next).sum::<i64>(), sent as i64);
    assert_eq!(read.partitions.iter().find(|p| p.partition == 2).map(|p| p.next), Some(2 + 20 + 7));
}

/// The capacity check's arithmetic against the mock itself: a partition
/// holds every record of the count the check assumes, each as wide as the
/// load's widest event and sent as a message set of its own — and the cap
/// is real: twice as many and the oldest are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capacity_bound_holds_on_the_embedded_broker() {
    use dualwrite::kafka::embedded::{records_per_partition, Load};
    // The refused run's load: 1,600 orders/s for 60 s, 6 products.
    let load = Load::of_beats(8, Duration::from_millis(5), Duration::from_secs(60), 6, 1000);
    let fits = records_per_partition(&load);
    let (_kafka, bootstrap, topic) = embedded_topic("dw_evidence", 1);
    // The widest value, as the relay sends it (jsonb puts a space after
    // every colon and comma), one record per message set.
    let mut value = load.widest_event().to_json();
    value.extend_from_slice(b"         ");
    let key = load.products.to_string();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("batch.num.messages", "1")
        .set("message.timeout.ms", "30000")
        .set("log_level", "3")
        .create()
        .expect("a producer");
    let send_all = |n: u64| {
        let (producer, topic, key, value) = (&producer, &topic, &key, &value);
        async move {
            let sends = (0..n).map(|_| {
                producer.send(FutureRecord::to(topic).partition(0).key(key).payload(value), Duration::from_secs(30))
            });
            for sent in futures::future::join_all(sends).await {
                sent.unwrap_or_else(|(e, _)| panic!("the embedded broker took the record: {e}"));
            }
        }
    };
    send_all(fits).await;
    let marks = dualwrite::kafka::topic::watermarks(&bootstrap, &topic).await.unwrap();
    assert_eq!(marks[&0], (0, fits as i64), "{fits} records of {} bytes fit", load.widest_record_bytes());
    send_all(fits).await;
    let (low, high) = dualwrite::kafka::topic::watermarks(&bootstrap, &topic).await.unwrap()[&0];
    assert_eq!(high, 2 * fits as i64);
    assert!(low > 0, "the cap deletes: {low}..{high}");
    // Still holding at least what the check assumes, after deleting.
    println!("the mock holds {} of these records; the check assumes {fits}", high - low);
    assert!(high - low >= fits as i64, "{low}..{high}");
}

/// A topic the broker holds whole reads back whole, each partition to the
/// end the broker signalled, with nothing missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_topic_reads_to_its_signalled_end() {
    let (_kafka, bootstrap, topic) = embedded_topic("dw_evidence", 3);
    let producer = producer(&bootstrap);
    for i in 0..300 {
        send(&producer, &topic, i % 2, format!("record {i}").as_bytes()).await;
    }
    let read = read_to_end(&bootstrap, &topic, Duration::from_secs(20)).await.expect("the read begins");
    assert_eq!(read.missing(), Vec::<String>::new(), "{:?}", read.partitions);
    assert_eq!(read.records.len(), 300);
    assert_eq!(read.timed_out_after_ms, None);
    // Partition 2 is empty: its end is signalled at offset 0.
    let p2 = read.partitions.iter().find(|p| p.partition == 2).expect("partition 2");
    assert_eq!((p2.low, p2.high, p2.next, p2.end_signalled), (0, 0, 0, true));
}

fn dualwrite() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dualwrite"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("KAFKA_BROKERS")
        .env_remove("TOXIPROXY_URL")
        .stdin(Stdio::null());
    command
}

/// The run that reported 39,894 phantom losses on main: on the embedded
/// broker it is now refused before anything starts, with the limit and the
/// fix on one line.
#[test]
fn a_load_the_embedded_broker_cannot_hold_is_refused_up_front() {
    let started = Instant::now();
    let output = dualwrite()
        .args(["run", "naive", "--scenario", "calm", "--writers", "5ms", "--writer-tasks", "8", "--duration", "60s"])
        .output()
        .expect("run dualwrite");
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(took < Duration::from_secs(5), "refused up front, not after a run: {took:?}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    for needle in ["embedded Kafka broker", "deletes a partition's oldest records", "96008 orders", "--brokers"] {
        assert!(lines[0].contains(needle), "{:?} does not say {needle:?}", lines[0]);
    }
    assert!(lines[0].contains("--duration") && lines[0].contains("s or less"), "{}", lines[0]);
    assert!(String::from_utf8_lossy(&output.stdout).is_empty(), "no report for a run that never ran");
}

/// A drain that times out with the relay behind: verdict unknown, the
/// reason in words, `lost` not counted, exit code 3 — through the binary.
///
/// The relay is kept behind for certain, not by timing: once the run's
/// schema exists, this test locks some unpublished outbox rows with
/// `FOR UPDATE SKIP LOCKED`, as a second relay claiming them would. The
/// run's relay skips locked rows, so they stay unpublished until the lock
/// is released — after the run has ended (`--keep`: the schema stays for
/// the lock, and this test drops it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_times_out_is_unknown_with_exit_code_3() {
    let seed: u64 = rand::random::<u64>() % 1_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut child = dualwrite()
        .args(["run", "outbox", "--scenario", "calm", "--duration", "6s"])
        .args(["--writers", "20ms", "--writer-tasks", "2", "--drain-timeout", "1s", "--keep"])
        .args(["--seed", &seed.to_string(), "--json", json.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dualwrite");

    // Which schema is this run's: the one holding this seed's orders (the
    // seed is random, so no other run places them).
    let ours: HashSet<uuid::Uuid> = (0..2u32)
        .flat_map(|w| (0..50u64).map(move |k| dualwrite::workload::generate::order(seed, w, k, 6).order_id))
        .collect();
    let pool = PgPoolOptions::new().max_connections(2).connect(DATABASE_URL).await.expect("PostgreSQL");
    let started = Instant::now();
    let schema = 'found: loop {
        assert!(started.elapsed() < Duration::from_secs(20), "the run's schema never appeared");
        let schemas: Vec<String> =
            sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'dw_outbox_%'")
                .fetch_all(&pool)
                .await
                .unwrap();
        for schema in schemas {
            // Another run's tables may be dropped under us: errors are skipped.
            let ids: Vec<uuid::Uuid> = sqlx::query_scalar(&format!("SELECT order_id FROM \"{schema}\".orders"))
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
            if ids.iter().any(|id| ours.contains(id)) {
                break 'found schema;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Hold some unpublished rows, as a second relay would.
    let mut lock = pool.begin().await.unwrap();
    let claim = format!("SELECT id FROM \"{schema}\".outbox WHERE published_at IS NULL FOR UPDATE SKIP LOCKED");
    let mut held: HashSet<uuid::Uuid> = HashSet::new();
    while held.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(20), "no unpublished outbox row to hold");
        for row in sqlx::query(&claim).fetch_all(&mut *lock).await.unwrap() {
            held.insert(row.get("id"));
        }
    }

    // The run ends on its own: the drain gives up after 1 s.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    lock.rollback().await.unwrap();
    let output = child.wait_with_output().unwrap();
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(&pool).await.unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown with --nocapture, or when an assertion below fails.
    println!("{stdout}");
    assert_eq!(status.code(), Some(3), "exit 3, the evidence is incomplete\n{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let run = &report["runs"][0];
    assert_eq!(run["verdict"], "unknown", "{run:#}");
    assert_eq!(run["drain"]["completed"], false);
    assert_eq!(run["drain"]["published"], false);
    let reasons: Vec<&str> = run["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(
        reasons[0].starts_with("the drain phase timed out after")
            && reasons[0].contains("had not published everything"),
        "{reasons:?}"
    );
    // The held orders were committed and never published: in flight, not lost.
    assert_eq!(run["anomalies"]["lost"], serde_json::Value::Null, "{run:#}");
    let why = "the drain timed out before the relay or connector had published everything";
    assert_eq!(run["unknown"]["lost"]["reason"], why);
    // An absence proves nothing over incomplete evidence: not "at least N lost".
    assert_eq!(run["unknown"]["lost"]["at_least"], 0, "{run:#}");
    assert!(!stdout.contains("→ lost"), "no story of a loss that was not shown: {stdout}");
    // What the relay had not published is still said, as a fact of the snapshot.
    assert!(run["backlog_detail"]["outbox_unpublished"].as_u64().unwrap() >= held.len() as u64, "{run:#}");
    assert_eq!(run["unknown"]["backlog"]["reason"], why);
    // The text says it too: "?" in the table, the reason in the verdicts.
    assert!(stdout.contains("unknown"), "{stdout}");
    assert!(stdout.contains("the drain phase timed out"), "{stdout}");
}

/// Two idempotent producers writing one partition of a real broker at once
/// (on tansu 0.6.0's memory engine this once left a high watermark of 2,001
/// for 4,000 readable records). Whatever the broker reports, the read never
/// passes off a partial partition as whole: it reads every record the
/// broker serves, to the end its fetch signals; when the broker's
/// ListOffsets answer disagrees with what was read, that is named as a
/// finding about the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_on_a_real_broker_read_back_honestly() {
    let tansu = common::Tansu::start(None);
    let bootstrap = tansu.listen.to_string();
    let topic = unique("dw_evidence");
    dualwrite::kafka::topic::create_topic(&bootstrap, &topic).await.expect("a topic on tansu");
    let idempotent = || -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "20000")
            .set("log_level", "3")
            .create()
            .expect("a producer")
    };
    let (a, b) = (idempotent(), idempotent());
    let write = |producer: FutureProducer, name: &'static str| {
        let topic = topic.clone();
        async move {
            let sends: Vec<_> = (0..2_000)
                .map(|i| {
                    let payload = format!("{name} {i}");
                    let record = FutureRecord::to(&topic).partition(0).key(name).payload(&payload);
                    producer.send_result(record).expect("queued")
                })
                .collect();
            let mut acked = 0;
            for sent in sends {
                if matches!(sent.await, Ok(Ok(_))) {
                    acked += 1;
                }
            }
            acked
        }
    };
    let (acked_a, acked_b) = tokio::join!(write(a, "a"), write(b, "b"));
    assert_eq!(acked_a + acked_b, 4_000, "tansu acknowledged every record");

    let read = read_to_end(&bootstrap, &topic, Duration::from_secs(10)).await.expect("the read begins");
    let p0 = *read.partitions.iter().find(|p| p.partition == 0).expect("partition 0");
    let served = read.records.iter().filter(|r| r.partition == 0).count() as i64;
    let missing = read.missing();
    println!("tansu: {p0:?}, {served} records read, missing: {missing:?}");
    // Every record tansu acknowledged is read, whatever its watermark says
    // (a read that stopped at the first high watermark read only 2,001).
    assert_eq!(served, 4_000, "{p0:?}");
    assert_eq!(p0.next, 4_000);
    // The fetch signalled the end where the read stopped: nothing is
    // missing, whatever ListOffsets says.
    assert!(p0.end_signalled, "{p0:?}");
    assert!(missing.is_empty(), "{missing:?}");
    if p0.final_watermarks != Some((0, 4_000)) {
        // The broker's counts disagree: named as a finding about the broker.
        let notes = read.broker_notes();
        assert!(notes.iter().any(|n| n.starts_with("partition 0") && n.contains("ListOffsets")), "{notes:?}");
    }
}
