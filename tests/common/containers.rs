//! The third test backend: every service in a container of its own —
//! PostgreSQL (`wal_level=logical`), Redis, Redpanda and Toxiproxy — started
//! with testcontainers on a Docker network of the test's own, wired as
//! compose.yaml wires them.
//!
//! Built with `--features testcontainers`; it needs a Docker engine. The
//! machines this project is developed on have none, so there this module is
//! only compiled (`cargo build --features testcontainers --tests`), never run:
//! the README says so.
//!
//! ```text
//! test ──▶ Toxiproxy (API 8474) ──▶ postgres:5432, redis:6379, redpanda:9092
//!                                     (container names on the network)
//! ```
//!
//! Each Toxiproxy link listens inside its container on the same port number
//! the host maps to it, so the address the proxy reports (`0.0.0.0:N`) is
//! also where the test reaches it (`127.0.0.1:N`) — as compose.yaml's fixed
//! ports do. Redpanda's listener behind the proxy advertises the kafka
//! link's host address, so every Kafka client comes back through the proxy.

use std::time::Duration;

use dualwrite::config::{ProxyConfigSource, Services};
use dualwrite::proxy::{ProxyConfig, ToxiproxyClient};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::free_port;

/// The images, pinned (compose.yaml's).
const POSTGRES: (&str, &str) = ("postgres", "16");
const REDIS: (&str, &str) = ("redis", "7");
const REDPANDA: (&str, &str) = ("docker.redpanda.com/redpandadata/redpanda", "v24.2.7");
const TOXIPROXY: (&str, &str) = ("ghcr.io/shopify/toxiproxy", "2.12.0");

/// The running containers; removed when dropped (testcontainers' drop).
pub struct Stack {
    _postgres: ContainerAsync<GenericImage>,
    _redis: ContainerAsync<GenericImage>,
    _redpanda: ContainerAsync<GenericImage>,
    _toxiproxy: ContainerAsync<GenericImage>,
    database_url: String,
    redis_url: String,
    toxiproxy_api: String,
}

impl Stack {
    pub async fn start() -> Stack {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let network = format!("dualwrite-test-{id}");
        let name = |service: &str| format!("dw-{service}-{id}");

        let postgres = GenericImage::new(POSTGRES.0, POSTGRES.1)
            .with_wait_for(WaitFor::message_on_stderr("database system is ready to accept connections"))
            .with_exposed_port(5432.tcp())
            .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
            .with_cmd([
                "postgres",
                "-c",
                "wal_level=logical",
                "-c",
                "max_connections=500",
                "-c",
                "max_replication_slots=64",
                "-c",
                "max_wal_senders=64",
            ])
            .with_network(&network)
            .with_container_name(name("postgres"))
            .with_startup_timeout(Duration::from_secs(120))
            .start()
            .await
            .expect("start the PostgreSQL container (is a Docker engine running?)");
        let redis = GenericImage::new(REDIS.0, REDIS.1)
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
            .with_exposed_port(6379.tcp())
            .with_cmd(["redis-server", "--save", "", "--appendonly", "no"])
            .with_network(&network)
            .with_container_name(name("redis"))
            .start()
            .await
            .expect("start the Redis container");

        // The proxy's ports are chosen first: Redpanda must advertise the kafka link.
        let api = free_port();
        let links: Vec<(&str, u16, String)> = vec![
            ("postgres", free_port(), format!("{}:5432", name("postgres"))),
            ("postgres_relay", free_port(), format!("{}:5432", name("postgres"))),
            ("redis", free_port(), format!("{}:6379", name("redis"))),
            ("kafka", free_port(), format!("{}:9092", name("redpanda"))),
        ];
        let kafka_link = links.iter().find(|(n, _, _)| *n == "kafka").unwrap().1;

        let redpanda = GenericImage::new(REDPANDA.0, REDPANDA.1)
            .with_wait_for(WaitFor::message_on_either_std("Successfully started Redpanda!"))
            .with_exposed_port(9092.tcp())
            .with_cmd([
                "redpanda".to_string(),
                "start".into(),
                "--mode".into(),
                "dev-container".into(),
                "--smp".into(),
                "1".into(),
                "--memory".into(),
                "512M".into(),
                "--kafka-addr".into(),
                "internal://0.0.0.0:9092".into(),
                "--advertise-kafka-addr".into(),
                format!("internal://127.0.0.1:{kafka_link}"),
            ])
            .with_network(&network)
            .with_container_name(name("redpanda"))
            .with_startup_timeout(Duration::from_secs(120))
            .start()
            .await
            .expect("start the Redpanda container");

        let mut toxiproxy = GenericImage::new(TOXIPROXY.0, TOXIPROXY.1)
            .with_wait_for(WaitFor::message_on_either_std("Starting Toxiproxy"))
            .with_cmd(["-host=0.0.0.0"])
            .with_network(&network)
            .with_container_name(name("toxiproxy"))
            .with_mapped_port(api, 8474.tcp());
        for (_, port, _) in &links {
            toxiproxy = toxiproxy.with_mapped_port(*port, port.tcp());
        }
        let toxiproxy = toxiproxy.start().await.expect("start the Toxiproxy container");
        let toxiproxy_api = format!("http://127.0.0.1:{api}");
        let client = ToxiproxyClient::new(&toxiproxy_api).expect("a valid URL");
        let configs: Vec<ProxyConfig> = links
            .iter()
            .map(|(link, port, upstream)| ProxyConfig::new(*link, format!("0.0.0.0:{port}"), upstream.clone()))
            .collect();
        client.populate(&configs).await.expect("create Toxiproxy's links");

        let pg_port = postgres.get_host_port_ipv4(5432.tcp()).await.expect("PostgreSQL's host port");
        let redis_port = redis.get_host_port_ipv4(6379.tcp()).await.expect("Redis's host port");
        let database_url = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres");
        // The image logs "ready" once during its init and again after its
        // restart: wait until a query really works.
        let started = std::time::Instant::now();
        loop {
            match sqlx::PgPool::connect(&database_url).await {
                Ok(pool) if sqlx::query("SELECT 1").execute(&pool).await.is_ok() => break,
                _ if started.elapsed() > Duration::from_secs(60) => {
                    panic!("PostgreSQL at {database_url} never answered")
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Stack {
            database_url,
            redis_url: format!("redis://127.0.0.1:{redis_port}"),
            toxiproxy_api,
            _postgres: postgres,
            _redis: redis,
            _redpanda: redpanda,
            _toxiproxy: toxiproxy,
        }
    }

    /// Where a run finds these services (`--toxiproxy`: Kafka is the kafka link).
    pub fn services(&self) -> Services {
        Services {
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            brokers: None,
            kafka_proxy_listen: None,
            toxiproxy: Some(self.toxiproxy_api.clone()),
            toxiproxy_config: ProxyConfigSource::BuiltIn,
        }
    }
}
