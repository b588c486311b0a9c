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

use sqlx::postgres::PgConnectOptions;

use crate::config::{ProxyConfigSource, Services, BUILTIN_TOXIPROXY_JSON};
use crate::error::{Error, Result};
use crate::kafka::embedded::EmbeddedKafka;
use crate::links;
use crate::proxy::{ProxyConfig, ProxyInfo, ProxyServer, ToxiproxyClient};
use crate::strategy::Links;

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
        crate::db::connect_direct(&db, None, 1).await?.close().await;
        check_logical_wal(&db).await;

        let mut description = Vec::new();
        let wanted = proxy_configs(&services.toxiproxy_config)?;
        let (proxy, server, embedded, infos) = match &services.toxiproxy {
            Some(url) => {
                let proxy = ToxiproxyClient::new(url)?.with_hint(
                    "start it with `dualwrite toxiproxy` or `docker compose up -d`, or omit --toxiproxy to use the built-in one",
                );
                proxy.version().await?;
                if services.brokers.is_some() {
                    tracing::warn!(
                        "--brokers is ignored with --toxiproxy: Kafka is whatever that proxy's `kafka` link forwards to"
                    );
                }
                let mut existing = proxy.proxies().await?;
                let missing: Vec<ProxyConfig> =
                    wanted.iter().filter(|c| !existing.contains_key(&c.name)).cloned().collect();
                if !missing.is_empty() {
                    for info in proxy.populate(&missing).await? {
                        existing.insert(info.name.clone(), info);
                    }
                }
                description.push(format!("fault proxy: Toxiproxy at {url}"));
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
        let find = |name: &str| -> Result<SocketAddr> {
            let info = infos.iter().find(|i| i.name == name).ok_or_else(|| {
                Error::Config(format!(
                    "the fault proxy has no proxy named {name:?}; toxiproxy.json must declare {}",
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
        description.push(format!("redis: {} through the proxy's {}", services.redis_url, links.redis));

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

/// The proxies toxiproxy.json declares.
fn proxy_configs(source: &ProxyConfigSource) -> Result<Vec<ProxyConfig>> {
    let configs: Vec<ProxyConfig> = match source {
        ProxyConfigSource::BuiltIn => serde_json::from_str(BUILTIN_TOXIPROXY_JSON)
            .map_err(|e| Error::Config(format!("the built-in toxiproxy.json is invalid: {e}")))?,
        ProxyConfigSource::File(path) => crate::proxy::load_config(path)?,
    };
    for name in links::ALL {
        if !configs.iter().any(|c| c.name == name) {
            return Err(Error::Config(format!(
                "the proxy configuration declares no proxy named {name:?}; dualwrite needs {}",
                links::ALL.join(", ")
            )));
        }
    }
    Ok(configs)
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
    let redis_info: redis::ConnectionInfo = services.redis_url.parse().map_err(|e: redis::RedisError| {
        Error::Config(format!("--redis-url {:?} is not a Redis URL ({e})", services.redis_url))
    })?;
    let redis_upstream = match &redis_info.addr {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => return Err(Error::Config(format!("--redis-url must be a TCP address, not {other}"))),
    };
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

/// The host of an http URL (`http://localhost:8474` → `localhost`).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority);
    Some(host.trim_start_matches('[').trim_end_matches(']').to_string())
}

/// Where a client reaches a proxy: its listen address, with an unspecified
/// host (0.0.0.0, as in a container) replaced by the proxy API's host.
fn link_address(info: &ProxyInfo, api_host: &str) -> Result<SocketAddr> {
    let (host, port) = info
        .listen
        .rsplit_once(':')
        .ok_or_else(|| Error::Config(format!("proxy {} listens on {:?}, which has no port", info.name, info.listen)))?;
    let port: u16 = port
        .parse()
        .map_err(|_| Error::Config(format!("proxy {} listens on {:?}, which has no port", info.name, info.listen)))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() || host == "0.0.0.0" || host == "::" { api_host } else { host };
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Config(format!("cannot resolve {host}:{port}, the address of proxy {}", info.name)))
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
    }

    #[test]
    fn the_built_in_toxiproxy_json_declares_every_link() {
        let configs = proxy_configs(&ProxyConfigSource::BuiltIn).unwrap();
        for name in links::ALL {
            assert!(configs.iter().any(|c| c.name == name), "{name}");
        }
    }
}
