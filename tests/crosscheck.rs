//! dualwrite's figures, recounted without dualwrite.
//!
//! The binary runs as a participant would run it against their own
//! services: a fault proxy in a separate process (`dualwrite toxiproxy`,
//! standing in for compose.yaml's Toxiproxy, reached with --toxiproxy), a
//! real Kafka-API broker (tansu, advertising the proxy's kafka link), and
//! --keep. Then the orders are counted with `psql` and the topic with a
//! Kafka client that is not dualwrite's — confluent-kafka from PyPI
//! (`tests/recount.py`), reading every partition until the broker reports
//! its end — and every figure must match the report.
//!
//! Four runs, one per kind of anomaly the recount must see: naive under
//! kafka-resets (lost events), publish-in-tx under postgres-resets (ghosts),
//! outbox under relay-crash (duplicates), naive under wrong-key
//! (reorderings, and every record's key). Each asserts that its anomaly did
//! occur, so a run that happened to show none cannot pass for a recount.
//!
//! The same set-up shows that Ctrl-C in the middle of a fault window leaves
//! no fault behind.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::Dualwrite;
use common::ExternalProxy;

fn psql(sql: &str) -> String {
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAqX", "-c", sql])
        .output()
        .expect("psql (postgresql-client) is installed");
    assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// The Python that has confluent-kafka: `DUALWRITE_PYTHON`, else the
/// virtualenv `make setup-tests` makes (`target/py`), else `python3`.
fn python() -> String {
    if let Ok(python) = std::env::var("DUALWRITE_PYTHON") {
        return python;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/target/py/bin/python3");
    if std::path::Path::new(venv).exists() {
        return venv.to_string();
    }
    "python3".to_string()
}

/// One record as the console consumer printed it.
struct Recounted {
    partition: i64,
    offset: i64,
    key: String,
    order_id: String,
    product_id: i64,
    version: i64,
}

/// Every record of `topic`, read by `tests/recount.py` (confluent-kafka)
/// through the proxy's kafka link from offset 0 until every partition
/// reported its end, in partition and offset order.
fn console_consumer(broker: SocketAddr, topic: &str) -> Vec<Recounted> {
    let started = Instant::now();
    let output = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/recount.py"))
        .args(["--broker", &broker.to_string(), "--topic", topic, "--timeout", "60"])
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "recount.py could not read {topic} to its end (is confluent-kafka installed? `make setup-tests`): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut records = Vec::new();
    let mut ended = false;
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("recount.py prints JSON lines");
        if let Some(end) = record.get("end") {
            ended = true;
            eprintln!("recount: {topic}: {} records, ends {end}, in {:?}", records.len(), started.elapsed());
            continue;
        }
        let value = &record["value"];
        records.push(Recounted {
            partition: record["partition"].as_i64().unwrap(),
            offset: record["offset"].as_i64().unwrap(),
            key: record["key"].as_str().unwrap_or_default().to_string(),
            order_id: value["order_id"].as_str().expect("every value carries the order id").to_string(),
            product_id: value["product_id"].as_i64().expect("and the product id"),
            version: value["version"].as_i64().expect("and the version"),
        });
    }
    assert!(ended, "recount.py did not report the partitions' ends");
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// Reorderings, recounted: walking the records partition by partition, first
/// deliveries whose version is below one already seen for the product.
fn reordered(records: &[Recounted]) -> u64 {
    let mut first = HashSet::new();
    let mut highest: HashMap<i64, i64> = HashMap::new();
    let mut count = 0;
    for r in records {
        if !first.insert(r.order_id.as_str()) {
            continue;
        }
        let top = highest.entry(r.product_id).or_insert(i64::MIN);
        if r.version < *top {
            count += 1;
        } else {
            *top = r.version;
        }
    }
    count
}

/// Runs `dualwrite run` against `world`, then recounts lost, ghost and
/// duplicate from psql and the console consumer and compares them with the
/// report. Returns the report's anomalies.
fn run_and_recount(world: &ExternalProxy, args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .arg("run")
        .args(args)
        .args(["--toxiproxy", &world.api, "--keep", "--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "dualwrite run {args:?}:\n{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let run = &report["runs"][0];
    let schema = run["where"]["schema"].as_str().unwrap().to_string();
    let topic = run["where"]["topic"].as_str().unwrap();

    // The database, counted by psql.
    let committed: HashSet<String> =
        psql(&format!("SELECT order_id FROM \"{schema}\".orders")).lines().map(str::to_string).collect();
    assert_eq!(committed.len() as u64, run["orders"]["committed"].as_u64().unwrap(), "committed, {args:?}");

    // The topic, counted by another Kafka client.
    let records = console_consumer(world.kafka_link, topic);
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for r in &records {
        *seen.entry(&r.order_id).or_default() += 1;
    }
    let lost = committed.iter().filter(|id| !seen.contains_key(id.as_str())).count() as u64;
    let ghost = seen.keys().filter(|id| !committed.contains(**id)).count() as u64;
    let duplicate = records.len() as u64 - seen.len() as u64;
    let anomalies = run["anomalies"].clone();
    let reordered = reordered(&records);
    eprintln!(
        "{args:?}: psql {} committed; recount {} records: lost {lost}, ghost {ghost}, duplicate {duplicate}, \
         reordered {reordered}; dualwrite: {anomalies}",
        committed.len(),
        records.len()
    );
    // The key each record was given: the product, or the order (wrong-key).
    let by_order = args.contains(&"wrong-key");
    for r in &records {
        let expected = if by_order { r.order_id.clone() } else { r.product_id.to_string() };
        assert_eq!(r.key, expected, "the key of partition {} offset {}, {args:?}", r.partition, r.offset);
    }
    assert_eq!(lost, anomalies["lost"].as_u64().unwrap(), "lost, {args:?}");
    assert_eq!(reordered, anomalies["reordered"].as_u64().unwrap(), "reordered, {args:?}");
    assert_eq!(ghost, anomalies["ghost"].as_u64().unwrap(), "ghost, {args:?}");
    assert_eq!(duplicate, anomalies["duplicate"].as_u64().unwrap(), "duplicate, {args:?}");
    // The examples are real order ids of the class they illustrate.
    for example in run["examples"]["lost"].as_array().into_iter().flatten() {
        let id = example.as_str().unwrap();
        assert!(committed.contains(id) && !seen.contains_key(id), "lost example {id}");
    }
    for example in run["examples"]["ghost"].as_array().into_iter().flatten() {
        let id = example.as_str().unwrap();
        assert!(!committed.contains(id) && seen.contains_key(id), "ghost example {id}");
    }
    for example in run["examples"]["duplicate"].as_array().into_iter().flatten() {
        let id = example.as_str().unwrap();
        assert!(seen.get(id).is_some_and(|n| *n > 1), "duplicate example {id}");
    }

    psql(&format!("DROP SCHEMA \"{schema}\" CASCADE"));
    anomalies
}

/// naive under kafka-resets: events lost, and the recount finds the same ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_events_match_psql_and_a_console_consumer() {
    let world = ExternalProxy::start().await;
    let anomalies = tokio::task::spawn_blocking(move || {
        let anomalies =
            run_and_recount(&world, &["naive", "--scenario", "kafka-resets", "--seed", "1", "--duration", "10s"]);
        drop(world);
        anomalies
    })
    .await
    .unwrap();
    assert!(anomalies["lost"].as_u64().unwrap() > 0, "kafka-resets should lose naive's events: {anomalies}");
}

/// The Ctrl-C test finds its run's schema as the one new `dw_publish_in_tx_*`
/// schema; the ghost test creates one too, so the two take turns.
static PUBLISH_IN_TX: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// publish-in-tx under postgres-resets: ghosts (published, never committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghosts_match_psql_and_a_console_consumer() {
    let _turn = PUBLISH_IN_TX.lock().await;
    let world = ExternalProxy::start().await;
    let anomalies = tokio::task::spawn_blocking(move || {
        let anomalies = run_and_recount(
            &world,
            &["publish-in-tx", "--scenario", "postgres-resets", "--seed", "3", "--duration", "15s"],
        );
        drop(world);
        anomalies
    })
    .await
    .unwrap();
    assert!(anomalies["ghost"].as_u64().unwrap() > 0, "postgres-resets should leave publish-in-tx ghosts: {anomalies}");
}

/// outbox under relay-crash: duplicates (published, the mark lost with the relay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_match_psql_and_a_console_consumer() {
    let world = ExternalProxy::start().await;
    let anomalies = tokio::task::spawn_blocking(move || {
        let anomalies =
            run_and_recount(&world, &["outbox", "--scenario", "relay-crash", "--seed", "1", "--duration", "15s"]);
        drop(world);
        anomalies
    })
    .await
    .unwrap();
    assert!(anomalies["duplicate"].as_u64().unwrap() > 0, "relay-crash should duplicate outbox events: {anomalies}");
    assert_eq!(anomalies["lost"].as_u64(), Some(0), "the outbox loses nothing: {anomalies}");
}

/// naive under wrong-key, on tansu: events keyed by order, reorderings the
/// recount finds too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorderings_match_a_console_consumer() {
    let world = ExternalProxy::start().await;
    let anomalies = tokio::task::spawn_blocking(move || {
        let anomalies = run_and_recount(&world, &["naive", "--scenario", "wrong-key", "--seed", "1"]);
        drop(world);
        anomalies
    })
    .await
    .unwrap();
    assert!(anomalies["reordered"].as_u64().unwrap() > 0, "wrong-key should reorder naive's events: {anomalies}");
    assert_eq!(anomalies["projection_drift"].as_u64(), Some(0), "the version check absorbs it: {anomalies}");
}

/// Ctrl-C during a fault window: the run heals the (external) proxy before
/// it exits, removes its namespace, and exits 130. A new connection through
/// the proxy is then healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_a_fault_window_leaves_no_fault_behind() {
    let _turn = PUBLISH_IN_TX.lock().await;
    let world = ExternalProxy::start().await;
    let schemas = || -> HashSet<String> {
        psql("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'dw\\_publish\\_in\\_tx\\_%'")
            .lines()
            .map(str::to_string)
            .collect()
    };
    // `-v` logs the run's namespace: other runs (other tests, other users of
    // the server) may have publish-in-tx schemas of their own meanwhile.
    let run = Dualwrite::start(&[
        "run",
        "publish-in-tx",
        "--scenario",
        "kafka-outage",
        "--seed",
        "1",
        "--duration",
        "20s",
        "--toxiproxy",
        &world.api,
    ]);
    let ours = tokio::task::block_in_place(|| run.namespace());

    // Wait until the outage window is on: the kafka proxy disabled.
    let started = Instant::now();
    loop {
        let proxies = world.client.proxies().await.unwrap();
        if !proxies["kafka"].enabled {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the fault window never began");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(schemas().contains(&ours), "the run's schema {ours} exists during the outage");
    // Add a toxic of our own too, as an instructor might mid-run: healing
    // means every toxic, not only the scenario's.
    use dualwrite::proxy::{Stream, Toxic, ToxicKind};
    let extra = Toxic::new(ToxicKind::Latency { latency: 2000, jitter: 0 }, Stream::Downstream);
    world.client.add_toxic("redis", &extra).await.unwrap();

    run.signal("INT");
    let finished = tokio::task::spawn_blocking(move || run.wait(Duration::from_secs(30))).await.unwrap();
    let stderr = finished.stderr;
    assert_eq!(finished.code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");

    // Healed: every proxy enabled, no toxic anywhere.
    let proxies = world.client.proxies().await.unwrap();
    for (name, proxy) in &proxies {
        assert!(proxy.enabled && proxy.toxics.is_empty(), "{name} still faulty: {proxy:?}");
    }
    // A new connection through the proxy works.
    let url = format!("postgres://postgres@{}/postgres", world.postgres_link);
    let pool = sqlx::PgPool::connect(&url).await.expect("a new connection through the postgres link");
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
    assert_eq!(one, 1);
    let kafka = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(world.kafka_link)).await;
    assert!(matches!(kafka, Ok(Ok(_))), "the kafka link refuses connections: {kafka:?}");
    // The interrupted run removed its schema.
    assert!(!schemas().contains(&ours), "{ours} was left behind");
}
