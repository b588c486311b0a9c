//! The checker's read of a big topic (part 6): N of a run's records
//! produced to a fresh topic of a run's three partitions, then read the two
//! ways a run can read them — the tail begun before the first record (what
//! a run does: the snapshot only finishes it) and a read begun once every
//! record is in (the worst case: the whole topic at the end). The record
//! count is the broker's: the read must be complete and hold all N, or the
//! figure is `unknown` with the reason.
//!
//! The embedded broker keeps about 5 MiB per partition and drops the
//! oldest records beyond it (about 19,500 of these), so it is measured at
//! what it holds; 1 M records need a real broker (tansu, when installed).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dualwrite::event::{EventKey, StockChanged};
use dualwrite::history::{Order, StockAfter};
use dualwrite::kafka::embedded::EmbeddedKafka;
use dualwrite::kafka::read::{read_to_end, TopicTail};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use uuid::Uuid;

use crate::tansu::{self, NotStarted, Tansu};

/// A run's partitions, on either broker.
const PARTITIONS: i32 = dualwrite::kafka::topic::PARTITIONS;
/// The workload's products.
const PRODUCTS: u64 = 6;
/// The longest either read may take before it is `unknown`.
const READ_LIMIT: Duration = Duration::from_secs(300);

/// What one read of a big topic measured.
pub struct Measured {
    pub broker: &'static str,
    pub records: u64,
    /// Producing every record, acknowledged.
    pub produce: Duration,
    /// The tail's finish, once every record was in (the run's snapshot).
    pub tail_finish: Result<Duration, String>,
    /// A read of the whole topic begun at the end.
    pub whole: Result<Duration, String>,
}

/// Starts `bin` on a port of its own, advertising itself.
fn start_tansu(bin: &PathBuf) -> Result<Tansu, String> {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("a loopback address");
    Tansu::start_with(bin, port, listen).map_err(|e| match e {
        NotStarted::Exited => format!("tansu exited before listening on {listen}"),
        NotStarted::Failed(why) => why,
    })
}

/// Measures the embedded broker at `records`, and tansu at `tansu_records`
/// when it is installed (else, in the second place, why it was not measured).
pub async fn measure(records: u64, tansu_records: u64) -> (Measured, Result<Measured, String>) {
    let embedded = EmbeddedKafka::start().expect("the embedded broker starts");
    let bootstrap = embedded.listen_addr().to_string();
    embedded.create_topic("dw_bench_topic", PARTITIONS).expect("the embedded broker creates a topic");
    let on_embedded = read_both("embedded", &bootstrap, "dw_bench_topic", records).await;

    let on_tansu = match tansu::installed() {
        None => Err("tansu is not installed (make setup-tests builds it)".to_string()),
        Some(bin) => match start_tansu(&bin) {
            Err(e) => Err(e),
            Ok(tansu) => {
                let bootstrap = tansu.listen.to_string();
                match dualwrite::kafka::topic::create_topic(&bootstrap, "dw_bench_topic").await {
                    Err(e) => Err(format!("tansu would not create the topic: {e}")),
                    Ok(()) => Ok(read_both("tansu", &bootstrap, "dw_bench_topic", tansu_records).await),
                }
            }
        },
    };
    (on_embedded, on_tansu)
}

/// Starts a tail, produces `records`, then finishes the tail and reads the
/// whole topic again from its start.
async fn read_both(broker: &'static str, bootstrap: &str, topic: &str, records: u64) -> Measured {
    let tail = TopicTail::start(bootstrap, topic).await;
    let started = Instant::now();
    let produced = produce(bootstrap, topic, records).await;
    let produce_time = started.elapsed();
    let checked = |read: Result<dualwrite::snapshot::TopicRead, String>, took: Duration| {
        let read = read?;
        let missing = read.missing();
        if !missing.is_empty() {
            return Err(format!("the read was not complete: {}", missing.join("; ")));
        }
        if read.records.len() as u64 != records {
            return Err(format!("read {} records of the {records} produced", read.records.len()));
        }
        Ok(took)
    };
    if let Err(e) = produced {
        return Measured { broker, records, produce: produce_time, tail_finish: Err(e.clone()), whole: Err(e) };
    }
    let tail_finish = match tail {
        Err(e) => Err(e),
        Ok(tail) => {
            let started = Instant::now();
            let read = tail.finish(READ_LIMIT).await;
            checked(read, started.elapsed())
        }
    };
    let started = Instant::now();
    let read = read_to_end(bootstrap, topic, READ_LIMIT).await;
    let whole = checked(read, started.elapsed());
    Measured { broker, records, produce: produce_time, tail_finish, whole }
}

/// Produces `records` of the run's own events, product by product in turn,
/// one product's to one partition, and waits for every acknowledgement.
async fn produce(bootstrap: &str, topic: &str, records: u64) -> Result<(), String> {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("log_level", "3")
            .set("linger.ms", "10")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "500000")
            .create()
            .map_err(|e| format!("cannot create a producer: {e}"))?;
        let mut quantity = [1_000_000_000i64; PRODUCTS as usize];
        for n in 0..records {
            let p = (n % PRODUCTS) as usize;
            let order = Order {
                order_id: Uuid::from_u64_pair(n, n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                product_id: p as i32 + 1,
                delta: -1,
                writer: (n % 4) as u32,
                seq: n / 4,
            };
            quantity[p] -= 1;
            let after = StockAfter { quantity: quantity[p], version: (n / PRODUCTS + 1) as i64 };
            let event = StockChanged::new(&order, after);
            let (key, payload) = (event.key(EventKey::Product), event.to_json());
            let partition = p as i32 % PARTITIONS;
            let mut record = BaseRecord::to(&topic).key(&key).payload(&payload).partition(partition);
            // A full queue waits for the broker to take some, then tries again.
            while let Err((e, back)) = producer.send(record) {
                if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                    return Err(format!("the producer refused record {n}: {e}"));
                }
                std::thread::sleep(Duration::from_millis(5));
                record = back;
            }
        }
        producer.flush(Duration::from_secs(120)).map_err(|e| format!("not every record was acknowledged: {e}"))?;
        Ok(())
    })
    .await
    .map_err(|e| format!("the producer's thread failed: {e}"))?
}
