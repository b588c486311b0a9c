//! The services a run needs, reached and wired together: Postgres, Redis,
//! Kafka (embedded or given), and the fault proxy in front of them.
//!
//! [`Infra::start`] is done once per invocation; `compare` runs every
//! strategy on the same `Infra`, each in its own namespace.
//!
//! Wiring, with the built-in proxy (the default):
//!
//! ```text
//! app ──▶ proxy link `postgres`       ──▶ PostgreSQL (--database-url)
//! relay/connector ──▶ `postgres_relay` ──▶ PostgreSQL
//! app ──▶ `redis`                     ──▶ Redis (--redis-url)
//! every Kafka client ──▶ `kafka`      ──▶ the broker (embedded, or --brokers)
//! ```
//!
//! With `--toxiproxy URL` the proxies are that server's, taken as they are
//! (compose.yaml's Toxiproxy forwards to the containers): dualwrite creates
//! any that are missing from toxiproxy.json but never rewrites their upstreams.

use std::net::SocketAddr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::config::Services;
use crate::env::Links;
use crate::error::{Error, Result};
use crate::kafka::embedded::EmbeddedKafka;
use crate::links;
use crate::proxy::{ProxyConfig, ProxyInfo, ProxyServer, ToxiproxyClient};

/// The services, reached.
pub struct Infra {
    pub services: Services,
    /// Postgres, direct.
    pub db: PgConnectOptions,
    /// The fault proxy's API.
    pub proxy: ToxiproxyClient,
    /// The built-in proxy server, when no --toxiproxy was given.
    server: Option<ProxyServer>,
    /// The embedded broker, when no broker was given.
    pub embedded: Option<EmbeddedKafka>,
    pub links: Links,
    /// The Kafka bootstrap address every client uses: the `kafka` link.
    pub kafka: String,
    /// A line per service for the report's header.
    pub description: Vec<String>,
}

impl Infra {
    /// Reaches every service and sets up the proxies. Fails with a message
    /// naming the service, its address and the fix.
    pub async fn start(services: &Services) -> Result<Infra> {
        let db = crate::db::parse_url(&services.database_url)?;
        // Reach Postgres first: it is the store every strategy needs, and an
        // unreachable one should be reported before anything else is started.
        // A refused port is told at once: sqlx's pool would retry it until
        // its timeout.
        let address = crate::db::address(&db);
        if let Ok(Err(e)) = tokio::time::timeout(CHECK_TIMEOUT, tokio::net::TcpStream::connect(&address)).await {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                return Err(Error::unreachable("PostgreSQL", address, crate::db::FIX, e));
            }
        }
        crate::db::connect_direct(&db, None, 1).await?.close().await;
        check_logical_wal(&db).await;
        // A broker given by --brokers is reached directly, before any Kafka
        // client is built through the proxy: a client that cannot connect
        // retries (and logs) until its own timeouts, and would name the
        // proxy's port rather than the broker. (With --toxiproxy, --brokers
        // is not used; `config::reproduce::unused_flags` says so.)
        if let (Some(brokers), None) = (&services.brokers, &services.toxiproxy) {
            check_brokers(brokers).await?;
        }

        let mut description = Vec::new();
        let wanted = services.toxiproxy_config.proxies();
        let (proxy, server, embedded, infos) = match &services.toxiproxy {
            Some(url) => {
                let proxy = ToxiproxyClient::new(url)?.with_hint(
                    "start it with `dualwrite toxiproxy` or `docker compose up -d`, or omit --toxiproxy to use the built-in one",
                );
                // Bounded here too, so that a wrong address fails in seconds.
                tokio::time::timeout(CHECK_TIMEOUT, proxy.version()).await.map_err(|_| {
                    Error::unreachable(
                        "the fault proxy",
                        crate::redact::redact_url(url),
                        "is something else listening there? start one with `dualwrite toxiproxy`, or omit \
                         --toxiproxy to use the built-in one",
                        format!("no answer to GET /version within {CHECK_TIMEOUT:?}"),
                    )
                })??;
                let mut existing = proxy.proxies().await?;
                let missing: Vec<ProxyConfig> =
                    wanted.iter().filter(|c| !existing.contains_key(&c.name)).cloned().collect();
                if !missing.is_empty() {
                    for info in proxy.populate(&missing).await? {
                        existing.insert(info.name.clone(), info);
                    }
                }
                description.push(format!("fault proxy: Toxiproxy at {}", crate::redact::redact_url(url)));
                (proxy, None, None, existing.into_values().collect::<Vec<_>>())
            }
            None => {
                let server = ProxyServer::start("127.0.0.1:0".parse().expect("a valid address")).await?;
                let proxy = ToxiproxyClient::new(&server.url())?;
                let embedded = match &services.brokers {
                    Some(_) => None,
                    None => Some(
                        EmbeddedKafka::start()
                            .map_err(|e| Error::refused("Kafka", "in-process", "start the embedded broker", e))?,
                    ),
                };
                let configs = built_in_configs(&wanted, services, &db, embedded.as_ref())?;
                let infos = proxy.populate(&configs).await?;
                description.push(format!("fault proxy: built in, API at {}", server.url()));
                (proxy, Some(server), embedded, infos)
            }
        };

        let host = services.toxiproxy.as_deref().and_then(url_host).unwrap_or_else(|| "127.0.0.1".into());
        let proxy_source = match &services.toxiproxy {
            Some(url) => format!("the fault proxy at {}", crate::redact::redact_url(url)),
            None => "the built-in fault proxy".to_owned(),
        };
        let find = |name: &str| -> Result<SocketAddr> {
            let info = infos.iter().find(|i| i.name == name).ok_or_else(|| {
                Error::Config(format!(
                    "{proxy_source} has no proxy named {name:?}; toxiproxy.json must declare {}",
                    links::ALL.join(", ")
                ))
            })?;
            link_address(info, &host)
        };
        let links = Links {
            postgres: find(links::POSTGRES)?,
            postgres_relay: find(links::POSTGRES_RELAY)?,
            redis: find(links::REDIS)?,
            kafka: find(links::KAFKA)?,
        };
        let kafka = links.kafka.to_string();
        match (&embedded, &services.brokers) {
            (Some(broker), _) => {
                // All Kafka traffic follows the advertised address: make it the link.
                broker.advertise(links.kafka);
                description.push(format!(
                    "kafka: embedded (librdkafka mock cluster on {}), advertised as the proxy's {kafka}",
                    broker.listen_addr()
                ));
            }
            (None, Some(brokers)) => description.push(format!("kafka: {brokers} through the proxy's {kafka}")),
            (None, None) => description.push(format!("kafka: through the proxy's {kafka}")),
        }
        description.push(format!("postgres: {} through the proxy's {}", crate::db::address(&db), links.postgres));
        description.push(format!(
            "redis: {} through the proxy's {}",
            crate::redact::redact_url(&services.redis_url),
            links.redis
        ));

        let infra = Infra { services: services.clone(), db, proxy, server, embedded, links, kafka, description };
        infra.heal().await?;
        infra.check_advertised().await;
        Ok(infra)
    }

    /// Seeds the built-in proxy's random draws (latency jitter, slicer
    /// cuts) with the run's seed and restarts its connection count, so that
    /// the same seed gives the same draws. A real Toxiproxy's draws cannot
    /// be seeded: nothing to do then.
    pub async fn seed_proxy(&self, seed: u64) {
        if let Some(server) = &self.server {
            server.reseed(seed).await;
        }
    }

    /// Heals every link: removes every toxic and re-enables every proxy.
    pub async fn heal(&self) -> Result<()> {
        Ok(self.proxy.reset().await?)
    }

    /// Creates a run's topic.
    pub async fn create_topic(&self, topic: &str) -> Result<()> {
        match &self.embedded {
            Some(broker) => broker
                .create_topic(topic, crate::kafka::topic::PARTITIONS)
                .map_err(|e| Error::refused("Kafka", "in-process", format!("create topic {topic}"), e)),
            None => crate::kafka::topic::create_topic(&self.kafka, topic).await,
        }
    }

    /// Warns when the broker advertises an address other than the `kafka`
    /// link: clients would then bypass the proxy after bootstrapping, and
    /// Kafka faults would only reach the bootstrap connection.
    async fn check_advertised(&self) {
        let link = self.links.kafka;
        match crate::kafka::topic::advertised_brokers(&self.kafka).await {
            Ok(brokers) => {
                // An advertised name (`localhost:29092`) is the link if it resolves to it.
                use std::net::ToSocketAddrs;
                let through_link =
                    brokers.iter().any(|b| b.to_socket_addrs().is_ok_and(|mut addrs| addrs.any(|a| a == link)));
                if !through_link {
                    eprintln!(
                        "warning: the Kafka broker advertises {}, not the proxy's kafka link {link}; clients will \
                         bypass the proxy after bootstrapping, so Kafka faults only reach the bootstrap connection. \
                         Start the broker with its advertised listener set to {link}.",
                        brokers.join(", ")
                    );
                }
            }
            Err(e) => tracing::warn!("could not read the Kafka broker's metadata through {link}: {e}"),
        }
    }

    /// Stops the built-in proxy and the embedded broker.
    pub async fn shutdown(self) {
        if let Some(server) = self.server {
            server.shutdown().await;
        }
        drop(self.embedded);
    }
}

/// How long a check up front waits for one answer: a name to resolve, a
/// port to accept, a broker's metadata. A workshop laptop's services answer
/// in milliseconds; a check that waits longer only delays the error.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

const KAFKA_FIX: &str = "is the broker running? check --brokers / KAFKA_BROKERS, or omit it for the embedded broker";

/// Reaches every broker of a `--brokers` list directly (not through the
/// proxy): its name resolves, its port accepts a connection, and it answers
/// a metadata request — each within [`CHECK_TIMEOUT`], so a wrong address
/// fails in seconds, quietly, naming the broker.
pub async fn check_brokers(brokers: &str) -> Result<()> {
    for (host, port) in crate::config::broker_addresses(brokers)? {
        let address = format!("{host}:{port}");
        let resolved = tokio::time::timeout(CHECK_TIMEOUT, tokio::net::lookup_host((host.as_str(), port)))
            .await
            .map_err(|_| Error::unreachable("Kafka", &address, KAFKA_FIX, "its name did not resolve within 3 s"))?
            .map_err(|e| Error::unreachable("Kafka", &address, KAFKA_FIX, e))?
            .collect::<Vec<SocketAddr>>();
        let mut last = None;
        for addr in &resolved {
            match tokio::time::timeout(CHECK_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => {
                    last = None;
                    break;
                }
                Ok(Err(e)) => last = Some(Error::unreachable("Kafka", &address, KAFKA_FIX, e)),
                Err(_) => {
                    last = Some(Error::unreachable("Kafka", &address, KAFKA_FIX, "no answer within 3 s"));
                }
            }
        }
        if let Some(error) = last {
            return Err(error);
        }
        if resolved.is_empty() {
            return Err(Error::unreachable("Kafka", &address, KAFKA_FIX, "its name resolves to no address"));
        }
    }
    // The port answers; does a Kafka broker? librdkafka's client logs only
    // at debug level (`kafka::quiet`). The request's own timeout bounds the
    // blocking call, so no thread outlives the check (the process would wait
    // for it on exit).
    let config = crate::kafka::topic::consumer_config(brokers, "dualwrite-check");
    let metadata = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        let consumer: rdkafka::consumer::BaseConsumer<crate::kafka::quiet::Quiet> =
            config.create_with_context(crate::kafka::quiet::Quiet)?;
        consumer.fetch_metadata(None, CHECK_TIMEOUT).map(|m| m.brokers().len())
    })
    .await
    .map_err(|e| Error::refused("Kafka", brokers, "answer a metadata request", e))?;
    let fix = "something accepts connections there, but it does not answer as a Kafka broker; check --brokers";
    match metadata {
        Ok(_) => Ok(()),
        Err(rdkafka::error::KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::OperationTimedOut)) => {
            Err(Error::unreachable(
                "Kafka",
                brokers,
                fix,
                format!("no answer to a metadata request within {CHECK_TIMEOUT:?}"),
            ))
        }
        Err(e) => Err(Error::unreachable("Kafka", brokers, fix, e)),
    }
}

/// Reaches Redis directly before a run that uses it (cache-aside): a Redis
/// that is down, a wrong password or a database number it does not have is
/// a setup error, not a run full of failed cache calls.
pub async fn check_redis(url: &str) -> Result<()> {
    let cache = crate::cache::Cache::new(url, None, "dw_check:", CHECK_TIMEOUT)?;
    let address = cache.address().to_owned();
    let fix = "is Redis running? `make setup` starts it; or point --redis-url / REDIS_URL at yours";
    match cache.ping().await {
        Ok(()) => Ok(()),
        Err(crate::cache::CacheError::TimedOut(limit)) => {
            Err(Error::unreachable("Redis", address, fix, format!("no answer within {limit:?}")))
        }
        Err(error) => {
            // Redis answered and refused: AUTH or SELECT failed.
            let answered = match &error {
                crate::cache::CacheError::Connect { source, .. } | crate::cache::CacheError::Redis(source) => {
                    !(source.is_io_error() || source.is_timeout() || source.is_connection_refusal())
                }
                _ => false,
            };
            if answered {
                Err(Error::refused(
                    "Redis",
                    address,
                    "accept dualwrite's connection (check the password and database number in --redis-url)",
                    error,
                ))
            } else {
                Err(Error::unreachable("Redis", address, fix, error))
            }
        }
    }
}

/// The built-in proxy's configuration: toxiproxy.json's links, listening on
/// loopback and forwarding to the services dualwrite was pointed at. Ports are
/// ephemeral so that runs and tests never collide — except the `kafka` link
/// with --brokers: that broker must advertise the link's address, so the link
/// keeps the port toxiproxy.json gives it.
fn built_in_configs(
    wanted: &[ProxyConfig],
    services: &Services,
    db: &PgConnectOptions,
    embedded: Option<&EmbeddedKafka>,
) -> Result<Vec<ProxyConfig>> {
    let redis_upstream = crate::cache::parse_url(&services.redis_url)?.addr.to_string();
    let kafka_upstream = match (embedded, &services.brokers) {
        (Some(broker), _) => broker.listen_addr().to_string(),
        (None, Some(brokers)) => brokers.split(',').next().unwrap_or_default().trim().to_string(),
        (None, None) => unreachable!("either embedded or given"),
    };
    wanted
        .iter()
        .filter(|c| links::ALL.contains(&c.name.as_str()))
        .map(|c| {
            let upstream = match c.name.as_str() {
                links::POSTGRES | links::POSTGRES_RELAY => crate::db::address(db),
                links::REDIS => redis_upstream.clone(),
                _ => kafka_upstream.clone(),
            };
            let listen = if c.name == links::KAFKA && services.brokers.is_some() {
                match services.kafka_proxy_listen {
                    Some(addr) => addr.to_string(),
                    None => format!("127.0.0.1:{}", c.listen.rsplit(':').next().unwrap_or("0")),
                }
            } else {
                "127.0.0.1:0".to_string()
            };
            Ok(ProxyConfig { name: c.name.clone(), listen, upstream, enabled: true })
        })
        .collect()
}

/// The host of an http URL (`http://localhost:8474` → `localhost`), parsed
/// by the `url` crate.
fn url_host(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    // An IPv6 host without the brackets a URL needs, so it can be resolved.
    Some(parsed.host_str()?.trim_start_matches('[').trim_end_matches(']').to_owned())
}

/// Where a client reaches a proxy: its listen address, with an unspecified
/// host (0.0.0.0, as in a container) replaced by the proxy API's host.
fn link_address(info: &ProxyInfo, api_host: &str) -> Result<SocketAddr> {
    let (host, port) = info
        .listen
        .rsplit_once(':')
        .ok_or_else(|| Error::Config(format!("proxy {} listens on {:?}, which has no port", info.name, info.listen)))?;
    let port: u16 = port.parse().map_err(|e| {
        Error::input(format!("proxy {} listens on {:?}, which has no valid port", info.name, info.listen), e)
    })?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() || host == "0.0.0.0" || host == "::" { api_host } else { host };
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    use std::net::ToSocketAddrs;
    let what = || format!("cannot resolve {host}:{port}, the address of proxy {}", info.name);
    (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::input(what(), e))?
        .next()
        .ok_or_else(|| Error::Config(format!("{}: it resolves to no address", what())))
}

/// Warns when Postgres is not running with wal_level=logical (the CDC
/// strategies need it; the others do not).
async fn check_logical_wal(db: &PgConnectOptions) {
    let Ok(pool) = crate::db::connect_direct(db, None, 1).await else { return };
    let level: Option<String> = sqlx::query_scalar("SHOW wal_level").fetch_one(&pool).await.ok();
    pool.close().await;
    if let Some(level) = level.filter(|l| l != "logical") {
        tracing::warn!(
            "PostgreSQL runs with wal_level={level}; the cdc and outbox-cdc strategies need wal_level=logical (`make setup` sets it)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_addresses_from_listen_and_api_host() {
        let info = |listen: &str| ProxyInfo {
            name: "postgres".into(),
            listen: listen.into(),
            upstream: "postgres:5432".into(),
            enabled: true,
            toxics: vec![],
        };
        assert_eq!(link_address(&info("0.0.0.0:25432"), "127.0.0.1").unwrap(), "127.0.0.1:25432".parse().unwrap());
        assert_eq!(link_address(&info("[::]:25432"), "localhost").unwrap(), "127.0.0.1:25432".parse().unwrap());
        assert_eq!(link_address(&info("127.0.0.1:4000"), "elsewhere").unwrap(), "127.0.0.1:4000".parse().unwrap());
        assert!(link_address(&info("nonsense"), "127.0.0.1").is_err());
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("http://localhost:8474").as_deref(), Some("localhost"));
        assert_eq!(url_host("http://10.0.0.2:8474/").as_deref(), Some("10.0.0.2"));
        assert_eq!(url_host("http://[::1]:8474").as_deref(), Some("::1"));
        assert_eq!(url_host("http://user:pw@proxy.example:8474").as_deref(), Some("proxy.example"));
        assert_eq!(url_host("banana"), None);
    }
}
