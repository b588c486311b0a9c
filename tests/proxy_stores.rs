//! The built-in fault proxy between real clients and real stores.
//!
//! Postgres (sqlx), Redis (redis-rs) and Kafka (rdkafka against the embedded
//! broker) each talk through a proxy of their own on the test's own server.
//! Every connection under test is opened *before* the toxic is added — the
//! situation of a pooled connection in a running workload — and each test
//! checks the effect while the toxic is on and its end after removal or
//! `/reset`. Isolation: ephemeral ports, unique Redis keys and Kafka topics;
//! Postgres is only asked `SELECT n`. Every wait is bounded.
//!
//! Needs Postgres on 127.0.0.1:5432 (user postgres, trust auth) and Redis on
//! 127.0.0.1:6379.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dualwrite::kafka::embedded::EmbeddedKafka;
use dualwrite::proxy::{ProxyConfig, ProxyServer, Stream, Toxic, ToxicKind, ToxiproxyClient};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const POSTGRES: &str = "127.0.0.1:5432";
const REDIS: &str = "127.0.0.1:6379";
/// The upper bound of any single wait in these tests.
const BOUND: Duration = Duration::from_secs(10);

struct Harness {
    server: ProxyServer,
    client: ToxiproxyClient,
}

impl Harness {
    async fn start() -> Harness {
        let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let client = ToxiproxyClient::new(&server.url()).unwrap();
        Harness { server, client }
    }

    async fn proxy(&self, name: &str, upstream: &str) -> SocketAddr {
        let info = self.client.create_proxy(&ProxyConfig::new(name, "127.0.0.1:0", upstream)).await.unwrap();
        info.listen_addr().unwrap()
    }

    async fn add(&self, proxy: &str, kind: ToxicKind, stream: Stream) -> Toxic {
        self.client.add_toxic(proxy, &Toxic::new(kind, stream)).await.unwrap()
    }

    async fn remove(&self, proxy: &str, toxic: &Toxic) {
        self.client.remove_toxic(proxy, &toxic.name).await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// Postgres
// ---------------------------------------------------------------------------

fn pg_options(addr: SocketAddr) -> PgConnectOptions {
    PgConnectOptions::new()
        .host(&addr.ip().to_string())
        .port(addr.port())
        .username("postgres")
        .database("postgres")
        .ssl_mode(PgSslMode::Disable)
}

async fn pg(addr: SocketAddr) -> PgConnection {
    timeout(BOUND, PgConnection::connect_with(&pg_options(addr))).await.expect("connect timed out").unwrap()
}

/// Times `SELECT n` and checks its answer.
async fn timed_select(conn: &mut PgConnection, n: i32) -> Duration {
    let start = Instant::now();
    let got: i32 = timeout(BOUND, sqlx::query_scalar(&format!("SELECT {n}")).fetch_one(&mut *conn))
        .await
        .expect("query timed out")
        .unwrap();
    assert_eq!(got, n);
    start.elapsed()
}

#[tokio::test]
async fn postgres_latency_added_and_removed_on_a_live_connection() {
    let h = Harness::start().await;
    let listen = h.proxy("postgres", POSTGRES).await;
    let mut conn = pg(listen).await;
    let before = timed_select(&mut conn, 1).await;
    assert!(before < Duration::from_millis(200), "before: {before:?}");

    let toxic = h.add("postgres", ToxicKind::Latency { latency: 300, jitter: 0 }, Stream::Downstream).await;
    let during = timed_select(&mut conn, 2).await;
    assert!(during >= Duration::from_millis(295), "during: {during:?}");

    h.remove("postgres", &toxic).await;
    let after = timed_select(&mut conn, 3).await;
    assert!(after < Duration::from_millis(200), "after: {after:?}");
    h.server.shutdown().await;
}

/// `reset_peer` as Toxiproxy 2.12 has it: a pooled connection, opened before
/// the toxic, is closed with a FIN (sqlx reads an unexpected EOF); a
/// connection opened while the toxic is in place is reset (Toxiproxy sets
/// `SO_LINGER 0` only on links that start with `reset_peer` in their chain).
#[tokio::test]
async fn postgres_reset_peer_closes_a_pooled_connection_and_resets_a_new_one() {
    let h = Harness::start().await;
    let listen = h.proxy("postgres", POSTGRES).await;
    let mut conn = pg(listen).await;
    timed_select(&mut conn, 1).await;

    let toxic = h.add("postgres", ToxicKind::ResetPeer { timeout: 0 }, Stream::Downstream).await;
    let err = timeout(BOUND, sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&mut conn))
        .await
        .expect("query timed out")
        .unwrap_err();
    match &err {
        sqlx::Error::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::UnexpectedEof, "{io}"),
        other => panic!("expected the connection closed under the query, got {other:?}"),
    }

    // Opened under the toxic: the first answer (to the startup message)
    // triggers it, and the client is reset.
    let err = timeout(BOUND, PgConnection::connect_with(&pg_options(listen))).await.expect("connect timed out");
    match err {
        Err(sqlx::Error::Io(io)) => assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset, "{io}"),
        other => panic!("expected an I/O reset, got {other:?}"),
    }

    // Healed: a new connection works.
    h.remove("postgres", &toxic).await;
    let mut fresh = pg(listen).await;
    timed_select(&mut fresh, 2).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn postgres_blackhole_stalls_a_query_and_its_connection_does_not_survive() {
    let h = Harness::start().await;
    let listen = h.proxy("postgres", POSTGRES).await;
    let mut conn = pg(listen).await;
    timed_select(&mut conn, 1).await;

    let toxic = h.add("postgres", ToxicKind::Timeout { timeout: 0 }, Stream::Upstream).await;
    let stalled =
        timeout(Duration::from_millis(500), sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&mut conn)).await;
    assert!(stalled.is_err(), "the query completed through a black hole: {stalled:?}");

    // The request fell into the black hole; removing the toxic closes the
    // connection (as Toxiproxy does), so the old connection fails and a new
    // one is healthy.
    h.remove("postgres", &toxic).await;
    let after = timeout(BOUND, sqlx::query_scalar::<_, i32>("SELECT 7").fetch_one(&mut conn)).await.unwrap();
    assert!(after.is_err(), "the black-holed connection survived: {after:?}");
    let mut fresh = pg(listen).await;
    let took = timed_select(&mut fresh, 7).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn postgres_down_kills_live_connections_and_refuses_new_ones() {
    let h = Harness::start().await;
    let listen = h.proxy("postgres", POSTGRES).await;
    let mut conn = pg(listen).await;
    timed_select(&mut conn, 1).await;

    h.client.set_enabled("postgres", false).await.unwrap();
    let broken = timeout(BOUND, sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&mut conn)).await.unwrap();
    assert!(broken.is_err());
    let refused = timeout(BOUND, PgConnection::connect_with(&pg_options(listen))).await.unwrap();
    assert!(refused.is_err());

    h.client.reset().await.unwrap();
    let mut fresh = pg(listen).await;
    timed_select(&mut fresh, 2).await;
    h.server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

async fn redis_conn(addr: SocketAddr) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    timeout(BOUND, client.get_multiplexed_async_connection()).await.expect("connect timed out").unwrap()
}

async fn timed_ping(conn: &mut redis::aio::MultiplexedConnection) -> Duration {
    let start = Instant::now();
    let pong: String = timeout(BOUND, redis::cmd("PING").query_async(conn)).await.expect("PING timed out").unwrap();
    assert_eq!(pong, "PONG");
    start.elapsed()
}

fn unique_key() -> String {
    format!("dualwrite-test:proxy:{}", uuid::Uuid::new_v4())
}

#[tokio::test]
async fn redis_latency_added_and_removed_on_a_live_connection() {
    let h = Harness::start().await;
    let listen = h.proxy("redis", REDIS).await;
    let mut conn = redis_conn(listen).await;
    assert!(timed_ping(&mut conn).await < Duration::from_millis(200));

    let toxic = h.add("redis", ToxicKind::Latency { latency: 300, jitter: 0 }, Stream::Upstream).await;
    let during = timed_ping(&mut conn).await;
    assert!(during >= Duration::from_millis(295), "during: {during:?}");

    h.remove("redis", &toxic).await;
    let after = timed_ping(&mut conn).await;
    assert!(after < Duration::from_millis(200), "after: {after:?}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn redis_reset_peer_fails_the_command() {
    let h = Harness::start().await;
    let listen = h.proxy("redis", REDIS).await;
    let mut conn = redis_conn(listen).await;
    timed_ping(&mut conn).await;

    let toxic = h.add("redis", ToxicKind::ResetPeer { timeout: 0 }, Stream::Downstream).await;
    let err =
        timeout(BOUND, redis::cmd("PING").query_async::<String>(&mut conn)).await.expect("PING timed out").unwrap_err();
    assert!(err.is_io_error() || err.is_connection_dropped(), "{err:?}");

    h.remove("redis", &toxic).await;
    let mut fresh = redis_conn(listen).await;
    timed_ping(&mut fresh).await;
    h.server.shutdown().await;
}

/// A black hole (`timeout` 0) swallows requests and replies; when it is
/// removed the connection is closed, as Toxiproxy does, so no client can read
/// a late reply as the answer to a later request. A client must open a new
/// connection (dualwrite's cache client drops one after any timeout).
#[tokio::test]
async fn redis_black_hole_swallows_commands_and_closes_the_connection() {
    let h = Harness::start().await;
    let listen = h.proxy("redis", REDIS).await;
    let key = unique_key();

    let mut conn = redis_conn(listen).await;
    let () = redis::cmd("SET").arg(&key).arg("v1").arg("EX").arg(60).query_async(&mut conn).await.unwrap();
    let toxic = h.add("redis", ToxicKind::Timeout { timeout: 0 }, Stream::Upstream).await;
    // The DEL never reaches Redis: the client times out.
    let stalled = timeout(Duration::from_millis(300), redis::cmd("DEL").arg(&key).query_async::<i64>(&mut conn)).await;
    assert!(stalled.is_err(), "DEL answered through a black hole");
    h.remove("redis", &toxic).await;
    // The old connection is gone...
    let broken = timeout(BOUND, redis::cmd("PING").query_async::<String>(&mut conn)).await.unwrap();
    assert!(broken.is_err(), "the black-holed connection survived");
    // ...and the key is still there: the swallowed DEL never ran.
    let mut fresh = redis_conn(listen).await;
    let got: Option<String> =
        timeout(BOUND, redis::cmd("GET").arg(&key).query_async(&mut fresh)).await.unwrap().unwrap();
    assert_eq!(got.as_deref(), Some("v1"));

    // A raw RESP socket: no late reply ever arrives; the socket is closed.
    let mut raw = tokio::net::TcpStream::connect(listen).await.unwrap();
    let toxic = h.add("redis", ToxicKind::Timeout { timeout: 0 }, Stream::Downstream).await;
    raw.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    assert!(timeout(Duration::from_millis(300), raw.read(&mut buf)).await.is_err(), "reply leaked through");
    h.remove("redis", &toxic).await;
    let n = timeout(BOUND, raw.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "a late reply arrived: {:?}", &buf[..n]);

    // Like Toxiproxy's Cleanup, the removal closed every connection of the
    // proxy the toxic was on, idle ones included: clean up on a new one.
    let mut last = redis_conn(listen).await;
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut last).await.unwrap();
    h.server.shutdown().await;
}

#[tokio::test]
async fn redis_down_kills_live_connections_and_refuses_new_ones() {
    let h = Harness::start().await;
    let listen = h.proxy("redis", REDIS).await;
    let mut conn = redis_conn(listen).await;
    timed_ping(&mut conn).await;

    h.client.set_enabled("redis", false).await.unwrap();
    let broken = timeout(BOUND, redis::cmd("PING").query_async::<String>(&mut conn)).await.unwrap();
    assert!(broken.is_err());
    let client = redis::Client::open(format!("redis://{listen}/")).unwrap();
    assert!(timeout(BOUND, client.get_multiplexed_async_connection()).await.unwrap().is_err());

    h.client.set_enabled("redis", true).await.unwrap();
    let mut fresh = redis_conn(listen).await;
    timed_ping(&mut fresh).await;
    h.server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Kafka
// ---------------------------------------------------------------------------

/// A producer bootstrapped through the proxy, with the embedded broker
/// advertising the proxy: every request crosses it. It delivers, stalls
/// under a black hole on the responses, and delivers again after `/reset`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_producer_stalls_under_a_toxic_and_recovers_after_reset() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

    let kafka = EmbeddedKafka::start().unwrap();
    let h = Harness::start().await;
    let listen = h.proxy("kafka", &kafka.listen_addr().to_string()).await;
    kafka.advertise(listen);
    let topic = format!("dualwrite-test-proxy-{}", uuid::Uuid::new_v4());
    kafka.create_topic(&topic, 1).unwrap();

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", listen.to_string())
        .set("message.timeout.ms", "3000")
        .set("request.timeout.ms", "1500")
        .set("socket.timeout.ms", "2000")
        .set("log_level", "3")
        .create()
        .unwrap();
    let send = |payload: &'static str| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move { producer.send(FutureRecord::to(&topic).key("p1").payload(payload), Duration::ZERO).await }
    };

    let delivered = timeout(BOUND, send("before")).await.expect("first delivery timed out");
    assert!(delivered.is_ok(), "{delivered:?}");

    // The broker told the producer to use the proxy, not its own port.
    let metadata =
        tokio::task::block_in_place(|| producer.client().fetch_metadata(Some(&topic), Duration::from_secs(5))).unwrap();
    let broker = &metadata.brokers()[0];
    assert_eq!((broker.host(), broker.port()), (listen.ip().to_string().as_str(), i32::from(listen.port())));

    // Responses held: the delivery fails (message timeout) or stays stuck.
    h.add("kafka", ToxicKind::Timeout { timeout: 0 }, Stream::Downstream).await;
    let started = Instant::now();
    let during = timeout(Duration::from_secs(8), send("during")).await;
    eprintln!("under the black hole after {:?}: {during:?}", started.elapsed());
    assert!(!matches!(during, Ok(Ok(_))), "delivered through a black hole: {during:?}");

    h.client.reset().await.unwrap();
    let started = Instant::now();
    let after = timeout(Duration::from_secs(20), send("after")).await.expect("no delivery after /reset");
    eprintln!("after /reset, delivered in {:?}", started.elapsed());
    assert!(after.is_ok(), "{after:?}");

    // Only the responses were held: the broker had appended "during" all
    // along. The producer's failure was an Unknown outcome, not a Fail —
    // the dual-write lesson, read back through the proxy.
    let payloads = tokio::task::block_in_place(|| read_topic(&listen.to_string(), &topic, "after"));
    eprintln!("topic: {payloads:?}");
    assert_eq!(payloads.first().map(String::as_str), Some("before"));
    assert!(payloads.iter().any(|p| p == "during"), "{payloads:?}");
    h.server.shutdown().await;
    drop(producer);
    drop(kafka);
}

/// Every payload of partition 0 of `topic`, from the beginning until
/// `last` has been read (bounded).
fn read_topic(bootstrap: &str, topic: &str, last: &str) -> Vec<String> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("dualwrite-test-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&partitions).unwrap();
    let deadline = Instant::now() + BOUND;
    let mut payloads = Vec::new();
    while Instant::now() < deadline && payloads.last().map(String::as_str) != Some(last) {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            payloads.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    payloads
}
