//! The embedded Kafka: librdkafka's mock cluster, in-process.
//!
//! The mock cluster speaks the real Kafka protocol on a loopback port, so
//! every client in dualwrite uses it exactly as it would use a real broker.
//! It is not Kafka (no disk, no replication that can lag), which is why the
//! integration tests also run against a real Kafka-API broker (tansu).
//!
//! rdkafka's `MockCluster` wrapper does not expose the cluster handle that
//! `rd_kafka_mock_broker_set_host_port` needs, so this module drives the three
//! C functions it uses through `rdkafka-sys` directly. Everything else about
//! the mock stays behind librdkafka's own API.
//!
//! **Its capacity.** The mock keeps at most 5 MiB or 100,000 message sets
//! per partition and deletes the oldest beyond that, without telling anyone
//! (`rd_kafka_mock_msgset_new` in librdkafka 2.12's `rdkafka_mock.c`; the
//! limits are set in `rd_kafka_mock_partition_init`, and no API, setter or
//! configuration property changes them). A run that outgrew it would show
//! acknowledged events as lost. So [`capacity_check`] refuses, before the
//! run, a workload that could outgrow it; and whatever this check lets
//! through, the snapshot reads each partition's low watermark and the
//! reconciler calls deleted records unknown, never lost.

use std::ffi::{CStr, CString};
use std::net::SocketAddr;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka_sys as rdsys;

use crate::event::{EventKey, StockChanged};

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedKafkaError {
    #[error("could not create the client that hosts the embedded Kafka broker")]
    Client(#[source] rdkafka::error::KafkaError),
    #[error("librdkafka refused to create the embedded Kafka broker")]
    Create,
    #[error("the embedded Kafka broker refused to create topic {topic:?}: {code}")]
    Topic { topic: String, code: String },
    #[error("the embedded Kafka broker reported an unreadable bootstrap address {0:?}")]
    Bootstrap(String),
}

/// Bytes of message sets the mock keeps per partition before it deletes the
/// oldest (`mpart->max_size` in librdkafka 2.12's `rdkafka_mock.c`).
pub const MOCK_PARTITION_MAX_BYTES: u64 = 5 * 1024 * 1024;
/// Message sets the mock keeps per partition (`mpart->max_cnt`).
pub const MOCK_PARTITION_MAX_MESSAGE_SETS: u64 = 100_000;

/// A RecordBatch's header (magic 2): base offset 8, batch length 4, leader
/// epoch 4, magic 1, CRC 4, attributes 2, last offset delta 4, first and
/// max timestamps 8 + 8, producer id 8, epoch 2, base sequence 4, record
/// count 4. The mock stores and counts each batch whole.
const BATCH_HEADER_BYTES: u64 = 61;
/// A record's fields other than its key and value, at their widest: length
/// (varint, ≤ 5), attributes 1, timestamp delta (varlong, ≤ 10), offset
/// delta (≤ 5), key length (≤ 5), value length (≤ 5), header count 1.
const RECORD_FIELD_BYTES: u64 = 32;
/// The outbox relay publishes a row's payload as PostgreSQL prints `jsonb`:
/// a space after each of the event's five colons and four commas.
const JSONB_SPACING_BYTES: u64 = 9;
/// Share of the capacity kept free for records beyond one per order: a relay
/// or connector that crashes publishes again what it had not confirmed.
/// Their number depends on timing, so it cannot be bounded exactly; the
/// low-watermark check in the snapshot catches whatever this room misses.
const REDELIVERY_ROOM: f64 = 0.2;
/// Standard deviations of the seeded product draw allowed for when bounding
/// the busiest partition's share of the orders.
const DRAW_SIGMAS: f64 = 6.0;

/// The most a run can publish, for [`capacity_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Orders the run can place, at most.
    pub orders: u64,
    /// Products (the record key): they decide how orders share partitions.
    pub products: u32,
    /// Units each product starts with (bounds the width of a quantity).
    pub initial_stock: i64,
    /// What the record key is: products share partitions unevenly, orders
    /// spread evenly over them.
    pub key: EventKey,
}

impl Load {
    /// The orders `writer_tasks` writers place on a beat of `every` for
    /// `duration`: each writer's tick `k` is due at `k × every` (plus its
    /// stagger, less than `every`), and the ticks due before the end are
    /// placed.
    pub fn of_beats(writer_tasks: u32, every: Duration, duration: Duration, products: u32, initial_stock: i64) -> Load {
        let per_writer = (duration.as_nanos() / every.as_nanos().max(1)) as u64 + 1;
        Load { orders: per_writer.saturating_mul(writer_tasks as u64), products, initial_stock, key: EventKey::Product }
    }

    /// The same load with its events keyed by `key`.
    pub fn keyed_by(self, key: EventKey) -> Load {
        Load { key, ..self }
    }

    /// The widest event of this load, as JSON: the value at its longest.
    pub fn widest_event(&self) -> StockChanged {
        StockChanged {
            order_id: uuid::Uuid::max(),
            product_id: self.products as i32,
            delta: -5,
            // The longest a quantity can be written: the initial stock, or
            // every order of the run taking 5 units from one product.
            quantity: (self.orders.saturating_mul(5) as i64).saturating_neg().min(-self.initial_stock.abs()),
            version: self.orders as i64,
        }
    }

    /// The widest message set one event of this load can take: a batch of
    /// that one record, with its key and value at their longest.
    pub fn widest_record_bytes(&self) -> u64 {
        let widest = self.widest_event();
        let value = widest.to_json().len() as u64 + JSONB_SPACING_BYTES;
        BATCH_HEADER_BYTES + RECORD_FIELD_BYTES + widest.key(self.key).len() as u64 + value
    }

    /// An upper bound on the orders that land on the busiest of
    /// `partitions`: products are drawn uniformly by the seeded generator,
    /// so a partition holding `k` of `products` keys receives a binomial
    /// share of the orders; this allows for [`DRAW_SIGMAS`] deviations.
    /// Keyed by order, every order is a key of its own: the busiest
    /// partition's share is one partition's.
    fn busiest_partition_orders(&self, partitions: i32) -> u64 {
        let share = match self.key {
            EventKey::Product => self.busiest_share_of_products(partitions),
            EventKey::Order => 1.0 / partitions.max(1) as f64,
        };
        let n = self.orders as f64;
        let bound = n * share + DRAW_SIGMAS * (n * share * (1.0 - share)).sqrt() + DRAW_SIGMAS;
        (bound.ceil() as u64).min(self.orders)
    }

    /// The share of the products whose key lands on the busiest partition.
    fn busiest_share_of_products(&self, partitions: i32) -> f64 {
        let mut keys_on = vec![0u32; partitions.max(1) as usize];
        for product in 1..=self.products as i32 {
            keys_on[partition_of(product.to_string().as_bytes(), partitions) as usize] += 1;
        }
        *keys_on.iter().max().unwrap_or(&0) as f64 / self.products.max(1) as f64
    }
}

/// A run the embedded broker could not hold whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the embedded Kafka broker (librdkafka's mock cluster) deletes a partition's oldest records beyond 5 MiB or \
     100,000 message sets, which leaves room for {capacity} of this run's events per partition, but this run can \
     place {orders} orders, up to {busiest} on one partition: use --brokers with a real Kafka-API broker for this \
     load, or place fewer orders ({})", advice(.longest)
)]
pub struct CapacityError {
    /// Records per partition the check allows (capacity less the room kept
    /// for redeliveries).
    pub capacity: u64,
    pub orders: u64,
    pub busiest: u64,
    /// The longest run at the same rate that fits, if the caller knows the
    /// rate ([`longest_duration`]).
    pub longest: Option<Duration>,
}

/// How to place fewer orders, in words.
fn advice(longest: &Option<Duration>) -> String {
    match longest {
        Some(d) => format!("at this rate, --duration {}s or less; or a slower --writers", d.as_secs()),
        None => "a slower --writers, fewer --writer-tasks or a shorter --duration".into(),
    }
}

/// Whether the embedded broker can hold every event of `load` on a topic of
/// `partitions` partitions, with room to spare for redeliveries. Pure.
///
/// The bound is deliberately pessimistic: every record counted at its widest,
/// as a message set of its own (so both the byte and the count limit hold),
/// the busiest partition at six standard deviations above its expected share.
/// `Err` says which limit and how to stay within it.
pub fn capacity_check(load: &Load, partitions: i32) -> Result<(), CapacityError> {
    let capacity = allowed_per_partition(load);
    let busiest = load.busiest_partition_orders(partitions);
    if busiest <= capacity {
        return Ok(());
    }
    Err(CapacityError { capacity, orders: load.orders, busiest, longest: None })
}

/// Records of `load` a partition of the mock holds for certain: each at
/// its widest, as a message set of its own.
pub fn records_per_partition(load: &Load) -> u64 {
    (MOCK_PARTITION_MAX_BYTES / load.widest_record_bytes()).min(MOCK_PARTITION_MAX_MESSAGE_SETS)
}

/// Records per partition the check allows for `load`: what a partition
/// holds, less the room kept for redeliveries.
fn allowed_per_partition(load: &Load) -> u64 {
    (records_per_partition(load) as f64 * (1.0 - REDELIVERY_ROOM)) as u64
}

/// The longest run at the same rate that [`capacity_check`] accepts, for the
/// refusal's advice: `of_load(duration)` builds the load of a run lasting
/// `duration`. `None` when not even a second fits.
pub fn longest_duration(partitions: i32, of_load: impl Fn(Duration) -> Load) -> Option<Duration> {
    let fits = |seconds: u64| capacity_check(&of_load(Duration::from_secs(seconds)), partitions).is_ok();
    if !fits(1) {
        return None;
    }
    // The load grows with the duration: bisect on whole seconds.
    let (mut good, mut bad) = (1u64, 2u64);
    while fits(bad) {
        good = bad;
        bad = bad.saturating_mul(2);
        if bad > 365 * 24 * 3600 {
            return Some(Duration::from_secs(good));
        }
    }
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if fits(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Some(Duration::from_secs(good))
}

/// The partition librdkafka's default partitioner (`consistent_random`)
/// gives a non-empty `key`: CRC-32 (IEEE) of the key, modulo the partitions
/// (`rd_kafka_msg_partitioner_consistent` in `rdkafka_msg.c`). Checked
/// against librdkafka's own function in the tests below.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    let mut crc: u32 = 0xFFFF_FFFF;
    for byte in key {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    ((crc ^ 0xFFFF_FFFF) % partitions.max(1) as u32) as i32
}

/// A one-broker mock Kafka cluster living as long as this value.
pub struct EmbeddedKafka {
    cluster: *mut rdsys::rd_kafka_mock_cluster_t,
    /// The broker's own listening address (not the advertised one).
    listen: SocketAddr,
    /// The client handle the mock cluster runs on; dropped after the cluster.
    _host: BaseProducer,
}

// SAFETY: the mock cluster runs on its own thread; librdkafka's mock API
// functions post operations to that thread and are safe to call from any
// thread. The pointer is only dereferenced by librdkafka.
unsafe impl Send for EmbeddedKafka {}
unsafe impl Sync for EmbeddedKafka {}

/// The mock broker's id (librdkafka numbers mock brokers from 1).
const BROKER_ID: i32 = 1;

impl EmbeddedKafka {
    /// Starts a one-broker cluster listening on an ephemeral loopback port.
    pub fn start() -> Result<EmbeddedKafka, EmbeddedKafkaError> {
        let host: BaseProducer =
            ClientConfig::new().set("log_level", "3").create().map_err(EmbeddedKafkaError::Client)?;
        // SAFETY: `host`'s native handle is valid for as long as `host` lives,
        // and `host` outlives the cluster (see Drop).
        let cluster = unsafe { rdsys::rd_kafka_mock_cluster_new(host.client().native_ptr(), 1) };
        if cluster.is_null() {
            return Err(EmbeddedKafkaError::Create);
        }
        // SAFETY: the cluster is valid; the returned string is owned by it.
        let bootstrap =
            unsafe { CStr::from_ptr(rdsys::rd_kafka_mock_cluster_bootstraps(cluster)) }.to_string_lossy().into_owned();
        match bootstrap.split(',').next().and_then(|a| a.parse::<SocketAddr>().ok()) {
            Some(listen) => Ok(EmbeddedKafka { cluster, listen, _host: host }),
            None => {
                // SAFETY: created above and not yet owned by anything else.
                unsafe { rdsys::rd_kafka_mock_cluster_destroy(cluster) };
                Err(EmbeddedKafkaError::Bootstrap(bootstrap))
            }
        }
    }

    /// The address the broker really listens on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Makes the broker advertise `addr` in its metadata instead of its own
    /// address, so that clients, after bootstrapping, connect to `addr` — the
    /// fault proxy's `kafka` link — for every request.
    pub fn advertise(&self, addr: SocketAddr) {
        let host = CString::new(addr.ip().to_string()).expect("an IP address has no NUL byte");
        // SAFETY: the cluster is valid; librdkafka copies the host string.
        unsafe {
            rdsys::rd_kafka_mock_broker_set_host_port(self.cluster, BROKER_ID, host.as_ptr(), i32::from(addr.port()))
        };
    }

    /// Creates a topic (the mock would auto-create one with its own defaults;
    /// dualwrite always creates topics explicitly, as real brokers require).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), EmbeddedKafkaError> {
        let name = CString::new(topic).map_err(|_| EmbeddedKafkaError::Topic {
            topic: topic.to_string(),
            code: "topic name contains a NUL byte".into(),
        })?;
        // SAFETY: the cluster is valid; librdkafka copies the name.
        let code = unsafe { rdsys::rd_kafka_mock_topic_create(self.cluster, name.as_ptr(), partitions, 1) };
        if code == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Ok(())
        } else {
            Err(EmbeddedKafkaError::Topic { topic: topic.to_string(), code: format!("{code:?}") })
        }
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        // SAFETY: created in `start`, destroyed once, before `_host` drops.
        unsafe { rdsys::rd_kafka_mock_cluster_destroy(self.cluster) };
    }
}

impl std::fmt::Debug for EmbeddedKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedKafka").field("listen", &self.listen).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_is_the_one_librdkafka_picks() {
        for partitions in 1..=12 {
            for product in 1..=500 {
                let key = product.to_string();
                // SAFETY: the consistent partitioner reads only the key
                // (`rd_crc32(key, keylen) % partition_cnt`); the topic and
                // opaque pointers are never dereferenced.
                let theirs = unsafe {
                    rdsys::rd_kafka_msg_partitioner_consistent(
                        std::ptr::null(),
                        key.as_ptr().cast(),
                        key.len(),
                        partitions,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
                assert_eq!(partition_of(key.as_bytes(), partitions), theirs, "key {key}, {partitions} partitions");
            }
        }
    }

    fn load(orders_per_s: u64, seconds: u64, products: u32) -> Load {
        Load { orders: orders_per_s * seconds, products, initial_stock: 1000, key: EventKey::Product }
    }

    #[test]
    fn a_default_run_fits_easily() {
        // 4 writers at 1 s for a 15 s scenario.
        assert_eq!(
            capacity_check(&Load::of_beats(4, Duration::from_secs(1), Duration::from_secs(15), 6, 1000), 3),
            Ok(())
        );
    }

    #[test]
    fn the_measured_phantom_loss_is_refused() {
        // `--writers 5ms --writer-tasks 8 --duration 60s`: 1,600 orders/s.
        // On main it reported 39,894 acknowledged events lost.
        let load = Load::of_beats(8, Duration::from_millis(5), Duration::from_secs(60), 6, 1000);
        assert_eq!(load.orders, 8 * 12_001);
        let err = capacity_check(&load, 3).unwrap_err();
        assert!(err.busiest > err.capacity, "{err:?}");
        let text = err.to_string();
        assert!(text.contains("--brokers"), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
    }

    #[test]
    fn the_bound_is_pessimistic_about_record_size() {
        // Real events at this size are about 180 bytes as one-record batches;
        // the check counts each at its widest.
        let l = load(1600, 60, 6);
        let widest = l.widest_record_bytes();
        assert!((180..=300).contains(&widest), "{widest}");
        // The message-set limit binds only for tiny records, never here.
        assert!(MOCK_PARTITION_MAX_BYTES / widest < MOCK_PARTITION_MAX_MESSAGE_SETS);
    }

    #[test]
    fn one_product_puts_every_order_on_one_partition() {
        let l = load(100, 10, 1);
        assert_eq!(l.busiest_partition_orders(3), 1000);
    }

    #[test]
    fn the_busiest_partition_is_above_its_fair_share() {
        let l = load(1000, 10, 6);
        let busiest = l.busiest_partition_orders(3);
        let mut keys_on = [0u64; 3];
        for p in 1..=6 {
            keys_on[partition_of(p.to_string().as_bytes(), 3) as usize] += 1;
        }
        let expected = 10_000 * keys_on.iter().max().unwrap() / 6;
        assert!(busiest > expected && busiest < expected + 500, "{busiest} vs {expected}");
    }

    #[test]
    fn the_longest_duration_is_the_edge_of_the_check() {
        let of = |d: Duration| Load::of_beats(8, Duration::from_millis(5), d, 6, 1000);
        let longest = longest_duration(3, of).expect("a second fits");
        assert!(capacity_check(&of(longest), 3).is_ok());
        assert!(capacity_check(&of(longest + Duration::from_secs(1)), 3).is_err());
        assert!(longest < Duration::from_secs(60), "{longest:?}");
    }
}
