//! dualwrite's figures, recounted without dualwrite.
//!
//! The binary runs as a participant would run it against their own
//! services: a fault proxy in a separate process (`dualwrite toxiproxy`,
//! standing in for compose.yaml's Toxiproxy, reached with --toxiproxy), a
//! real Kafka-API broker (tansu, advertising the proxy's kafka link), and
//! --keep. Then the orders are counted with `psql` and the topic with
//! tansu's own console consumer (`tansu cat`, a Kafka client that shares no
//! code with librdkafka), and every figure must match the report.
//!
//! The same set-up shows that Ctrl-C in the middle of a fault window leaves
//! no fault behind.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, tansu_bin, Tansu};
use dualwrite::proxy::{ProxyConfig, ToxiproxyClient};

/// A `dualwrite toxiproxy` process with dualwrite's four links, and a tansu
/// broker behind its kafka link.
struct World {
    proxy: Child,
    api: String,
    client: ToxiproxyClient,
    kafka_link: SocketAddr,
    postgres_link: SocketAddr,
    _tansu: Tansu,
}

impl World {
    async fn start() -> World {
        let api_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let proxy = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
            .args(["toxiproxy", "--listen", &api_addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let api = format!("http://{api_addr}");
        let client = ToxiproxyClient::new(&api).unwrap();
        let started = Instant::now();
        while client.version().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "dualwrite toxiproxy did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // tansu must advertise the kafka link, so the link is made first,
        // pointing at the port tansu is about to listen on.
        let tansu_port = free_port();
        let infos = client
            .populate(&[
                ProxyConfig::new("postgres", "127.0.0.1:0", "127.0.0.1:5432"),
                ProxyConfig::new("postgres_relay", "127.0.0.1:0", "127.0.0.1:5432"),
                ProxyConfig::new("redis", "127.0.0.1:0", "127.0.0.1:6379"),
                ProxyConfig::new("kafka", "127.0.0.1:0", format!("127.0.0.1:{tansu_port}")),
            ])
            .await
            .unwrap();
        let link = |name: &str| infos.iter().find(|i| i.name == name).unwrap().listen_addr().unwrap();
        let kafka_link = link("kafka");
        let tansu = Tansu::start_on(tansu_port, kafka_link);
        World { proxy, api, client, kafka_link, postgres_link: link("postgres"), _tansu: tansu }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
}

fn psql(sql: &str) -> String {
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAqX", "-c", sql])
        .output()
        .expect("psql (postgresql-client) is installed");
    assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Every record of `topic`, read with `tansu cat consume` (one partition at
/// a time, through the proxy's kafka link): the order id of each.
fn console_consumer(broker: SocketAddr, topic: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for partition in 0..3 {
        let mut child = Command::new(tansu_bin())
            .args(["cat", "consume", topic, "--broker", &format!("tcp://{broker}")])
            .args(["--partition", &partition.to_string(), "--max-wait-time-ms", "500"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // It keeps polling for more; three seconds read a finished topic.
        std::thread::sleep(Duration::from_secs(3));
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(batch) = serde_json::from_str::<Vec<serde_json::Value>>(line) else { continue };
            for record in batch {
                ids.push(record["value"]["order_id"].as_str().expect("every value carries the order id").to_string());
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_figure_matches_psql_and_a_console_consumer() {
    let world = World::start().await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["run", "naive", "--scenario", "kafka-resets", "--seed", "1", "--duration", "10s"])
        .args(["--toxiproxy", &world.api, "--keep", "--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let run = &report["runs"][0];
    let schema = run["where"]["schema"].as_str().unwrap().to_string();
    let topic = run["where"]["topic"].as_str().unwrap();

    // The database, counted by psql.
    let committed: HashSet<String> =
        psql(&format!("SELECT order_id FROM \"{schema}\".orders")).lines().map(str::to_string).collect();
    assert_eq!(committed.len() as u64, run["orders"]["committed"].as_u64().unwrap());

    // The topic, counted by another Kafka client.
    let records = console_consumer(world.kafka_link, topic);
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for id in &records {
        *seen.entry(id).or_default() += 1;
    }
    let lost = committed.iter().filter(|id| !seen.contains_key(id.as_str())).count() as u64;
    let ghost = seen.keys().filter(|id| !committed.contains(**id)).count() as u64;
    let duplicate = records.len() as u64 - seen.len() as u64;
    let anomalies = &run["anomalies"];
    assert!(lost > 0, "kafka-resets should lose events: {anomalies}");
    assert_eq!(lost, anomalies["lost"].as_u64().unwrap(), "lost");
    assert_eq!(ghost, anomalies["ghost"].as_u64().unwrap(), "ghost");
    assert_eq!(duplicate, anomalies["duplicate"].as_u64().unwrap(), "duplicate");
    // The examples are real order ids of the class they illustrate.
    for example in run["examples"]["lost"].as_array().unwrap() {
        let id = example.as_str().unwrap();
        assert!(committed.contains(id) && !seen.contains_key(id), "{id}");
    }

    psql(&format!("DROP SCHEMA \"{schema}\" CASCADE"));
}

/// Ctrl-C during a fault window: the run heals the (external) proxy before
/// it exits, removes its namespace, and exits 130. A new connection through
/// the proxy is then healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_a_fault_window_leaves_no_fault_behind() {
    let world = World::start().await;
    let schemas = || -> HashSet<String> {
        psql("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'dw\\_publish\\_in\\_tx\\_%'")
            .lines()
            .map(str::to_string)
            .collect()
    };
    let before = schemas();
    let mut run = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["run", "publish-in-tx", "--scenario", "kafka-outage", "--seed", "1", "--duration", "20s"])
        .args(["--toxiproxy", &world.api])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

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
    let ours: Vec<String> = schemas().difference(&before).cloned().collect();
    assert_eq!(ours.len(), 1, "the run's schema: {ours:?}");
    // Add a toxic of our own too, as an instructor might mid-run: healing
    // means every toxic, not only the scenario's.
    use dualwrite::proxy::{Stream, Toxic, ToxicKind};
    let extra = Toxic::new(ToxicKind::Latency { latency: 2000, jitter: 0 }, Stream::Downstream);
    world.client.add_toxic("redis", &extra).await.unwrap();

    let status = Command::new("kill").args(["-INT", &run.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exited = Instant::now();
    let code = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status.code();
        }
        assert!(exited.elapsed() < Duration::from_secs(30), "the run did not exit after Ctrl-C");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    use std::io::Read;
    run.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(code, Some(130), "{stderr}");
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
    assert!(!schemas().contains(&ours[0]), "{} was left behind", ours[0]);
}
