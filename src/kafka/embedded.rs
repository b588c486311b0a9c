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

use std::ffi::{CStr, CString};
use std::net::SocketAddr;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka_sys as rdsys;

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
