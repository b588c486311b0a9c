//! Redis, the cache: a client that never reuses a connection after a timeout,
//! and what a cache error means for an order ([`classify`]).
//!
//! Why rebuild: after a black hole (Toxiproxy's `timeout` toxic) a Redis
//! connection can be left out of step — the reply to a request that timed out
//! arrives later and is read as the reply to the *next* request, so a GET
//! returns another key's value. A connection that timed out or failed is
//! therefore dropped, and the next command opens a fresh one.

use std::net::SocketAddr;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use tokio::sync::Mutex;

use crate::error::{Chain, Error, Result};
use crate::history::{StockAfter, Told};

/// Why a cache call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Could not open a connection: nothing was sent.
    #[error("cannot connect to Redis at {address}")]
    Connect {
        address: String,
        #[source]
        source: redis::RedisError,
    },
    /// No reply within the bound; the request may have been executed.
    #[error("no reply from Redis within {0:?}")]
    TimedOut(Duration),
    /// The request failed on the wire, or Redis answered with an error.
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    /// A cached value dualwrite cannot read.
    #[error("unreadable cached value {0:?}")]
    Corrupt(String),
}

/// What a failed cache write (cache-aside's delete) means: the one place
/// that decides.
///
/// | error                                   | outcome   | why |
/// |-----------------------------------------|-----------|-----|
/// | could not connect                       | `Fail`    | nothing was sent |
/// | Redis answered with an error            | `Fail`    | Redis refused it |
/// | timeout, reset, I/O error after sending | `Unknown` | the command may have been executed; only the reply was lost |
pub fn classify(error: &CacheError) -> Told {
    match error {
        // The history keeps the error with its causes (why the connect
        // failed, not only that it did).
        CacheError::Connect { .. } | CacheError::Corrupt(_) => Told::fail(Chain(error)),
        CacheError::Redis(e) if e.kind() == redis::ErrorKind::ResponseError => Told::fail(Chain(error)),
        CacheError::Redis(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
            Told::unknown(Chain(error))
        }
        CacheError::Redis(_) => Told::fail(Chain(error)),
        CacheError::TimedOut(_) => Told::unknown(Chain(error)),
    }
}

/// A Redis client for one run's keys.
pub struct Cache {
    client: redis::Client,
    address: String,
    prefix: String,
    timeout: Duration,
    /// The current connection; `None` after a failure, until the next command.
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("address", &self.address).field("prefix", &self.prefix).finish()
    }
}

/// Parses a `redis://` URL: TCP only, because dualwrite reaches Redis
/// through its fault proxy. The error quotes it with its password hidden.
pub fn parse_url(url: &str) -> Result<redis::ConnectionInfo> {
    let shown = crate::redact::redact_url(url);
    let example = "expected e.g. redis://127.0.0.1:6379 (or redis://:password@host:6379/0)";
    let info: redis::ConnectionInfo =
        url.parse().map_err(|e| Error::input(format!("--redis-url {shown:?} is not a Redis URL ({example})"), e))?;
    let kind = match &info.addr {
        redis::ConnectionAddr::Tcp(host, _) if !host.is_empty() => return Ok(info),
        redis::ConnectionAddr::Tcp(..) => "a TCP address without a host",
        redis::ConnectionAddr::Unix(_) => "a Unix socket",
        _ => "a TLS connection",
    };
    Err(Error::Config(format!(
        "--redis-url {shown:?} is {kind}; dualwrite reaches Redis over plain TCP through its fault proxy: {example}"
    )))
}

impl Cache {
    /// A client for `url`, reaching it through `via` (a proxy link) if given.
    pub fn new(url: &str, via: Option<SocketAddr>, prefix: &str, timeout: Duration) -> Result<Cache> {
        let mut info = parse_url(url)?;
        if let Some(via) = via {
            info.addr = redis::ConnectionAddr::Tcp(via.ip().to_string(), via.port());
        }
        let address = info.addr.to_string();
        let client = redis::Client::open(info)
            .map_err(|e| Error::input(format!("--redis-url {:?} cannot be used", crate::redact::redact_url(url)), e))?;
        Ok(Cache { client, address, prefix: prefix.to_string(), timeout, connection: Mutex::new(None) })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The key holding a product's cached stock.
    pub fn key(&self, product_id: i32) -> String {
        format!("{}stock:{product_id}", self.prefix)
    }

    /// The current connection, opening one if there is none.
    async fn connection(&self) -> Result<MultiplexedConnection, CacheError> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config =
            redis::AsyncConnectionConfig::new().set_connection_timeout(self.timeout).set_response_timeout(self.timeout);
        // Bounded by the caller (`run`), which times out the whole command.
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|source| CacheError::Connect { address: self.address.clone(), source })?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Runs one command, bounded as a whole — waiting for a connection (which
    /// another command may be re-opening) included, so that a command never
    /// outlives its timeout and lands late. On a timeout or a wire error the
    /// connection is dropped, so no later command can read this one's late
    /// reply.
    async fn run<T, F, Fut>(&self, command: F) -> Result<T, CacheError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        // Whether the command was handed to a connection: before that,
        // nothing can have reached Redis.
        let mut sent = false;
        let attempt = async {
            let conn = self.connection().await?;
            sent = true;
            command(conn).await.map_err(CacheError::Redis)
        };
        let error = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e,
            Err(_) if !sent => CacheError::Connect {
                address: self.address.clone(),
                source: redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", self.timeout),
                )),
            },
            Err(_) => CacheError::TimedOut(self.timeout),
        };
        let server_answered = matches!(&error, CacheError::Redis(e) if e.kind() == redis::ErrorKind::ResponseError);
        if !server_answered {
            // Without waiting: if another command holds the slot, it is
            // opening a fresh connection already, and waiting for it would
            // stretch this command past its timeout.
            if let Ok(mut slot) = self.connection.try_lock() {
                *slot = None;
            }
        }
        Err(error)
    }

    /// A product's cached stock, `None` on a miss.
    pub async fn get(&self, product_id: i32) -> Result<Option<StockAfter>, CacheError> {
        let key = self.key(product_id);
        let raw: Option<String> = self.run(|mut c| async move { c.get(key).await }).await?;
        raw.map(|text| decode(&text)).transpose()
    }

    /// Caches a product's stock, with an expiry if `ttl` is given.
    pub async fn set(&self, product_id: i32, value: StockAfter, ttl: Option<Duration>) -> Result<(), CacheError> {
        let key = self.key(product_id);
        let text = encode(value);
        match ttl {
            Some(ttl) => {
                let ms = ttl.as_millis().max(1) as u64;
                self.run(|mut c| async move { c.pset_ex::<_, _, ()>(key, text, ms).await }).await
            }
            None => self.run(|mut c| async move { c.set::<_, _, ()>(key, text).await }).await,
        }
    }

    /// Caches a product's stock unless the cache already holds this version
    /// or a newer one; true when it was written. One Lua script, so that the
    /// comparison and the write are one step in Redis: no other client's
    /// write can land between them (cache-cdc's fills and its connector).
    pub async fn set_if_newer(
        &self,
        product_id: i32,
        value: StockAfter,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        let key = self.key(product_id);
        let text = encode(value);
        let ttl_ms = ttl.map(|t| t.as_millis().max(1).to_string()).unwrap_or_default();
        let written: i64 = self
            .run(|mut c| async move {
                // EVAL with the script's text each time: it is a few hundred
                // bytes, and redis-rs's `Script` (EVALSHA) needs a feature
                // this crate does not build with.
                redis::cmd("EVAL")
                    .arg(SET_IF_NEWER)
                    .arg(1)
                    .arg(key)
                    .arg(text)
                    .arg(value.version)
                    .arg(ttl_ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(written == 1)
    }

    /// Removes a product's cached stock.
    pub async fn delete(&self, product_id: i32) -> Result<(), CacheError> {
        let key = self.key(product_id);
        self.run(|mut c| async move { c.del::<_, ()>(key).await }).await
    }

    /// Every key matching `pattern` (SCAN, not KEYS: it does not block Redis).
    async fn keys(&self, pattern: String) -> Result<Vec<String>, CacheError> {
        self.run(|mut c| async move {
            let mut keys = Vec::new();
            let mut iter: redis::AsyncIter<String> = c.scan_match(pattern).await?;
            while let Some(key) = iter.next_item().await {
                keys.push(key?);
            }
            Ok(keys)
        })
        .await
    }

    /// Every cached product of this run: (product, value or unreadable text).
    pub async fn read_all(&self) -> Result<Vec<(i32, Result<StockAfter, String>)>, CacheError> {
        let keys = self.keys(format!("{}stock:*", self.prefix)).await?;
        let mut entries = Vec::new();
        for key in keys {
            let Some(product_id) = key.rsplit(':').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
            let k = key.clone();
            let raw: Option<String> = self.run(|mut c| async move { c.get(k).await }).await?;
            if let Some(text) = raw {
                entries.push((product_id, decode(&text).map_err(|_| text)));
            }
        }
        entries.sort_by_key(|(p, _)| *p);
        Ok(entries)
    }

    /// Deletes every key of this run (cleanup).
    pub async fn delete_all(&self) -> Result<(), CacheError> {
        let keys = self.keys(format!("{}*", self.prefix)).await?;
        if !keys.is_empty() {
            self.run(|mut c| async move { c.del::<_, ()>(keys).await }).await?;
        }
        Ok(())
    }

    /// Checks that Redis answers (PING), for set-up and `doctor`.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await.map(|_| ()) }).await
    }
}

/// `SET KEYS[1] ARGV[1]` (with `PX ARGV[3]` when given) unless the key holds
/// version ARGV[2] or later. A value is `quantity:version`; one that cannot
/// be read is replaced.
const SET_IF_NEWER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.match(current, ':(%-?%d+)$'))
  if version and version >= tonumber(ARGV[2]) then
    return 0
  end
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
";

/// Cached values are `quantity:version`, readable with redis-cli.
fn encode(value: StockAfter) -> String {
    format!("{}:{}", value.quantity, value.version)
}

fn decode(text: &str) -> Result<StockAfter, CacheError> {
    let (q, v) = text.split_once(':').ok_or_else(|| CacheError::Corrupt(text.to_string()))?;
    Ok(StockAfter {
        quantity: q.parse().map_err(|_| CacheError::Corrupt(text.to_string()))?,
        version: v.parse().map_err(|_| CacheError::Corrupt(text.to_string()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    #[test]
    fn values_round_trip() {
        let v = StockAfter { quantity: -3, version: 17 };
        assert_eq!(decode(&encode(v)).unwrap(), v);
        assert!(decode("garbage").is_err());
    }

    #[test]
    fn a_lost_reply_is_unknown_and_a_refused_connect_is_fail() {
        assert_eq!(classify(&CacheError::TimedOut(Duration::from_millis(500))).outcome, Outcome::Unknown);
        let refused = CacheError::Connect {
            address: "127.0.0.1:1".into(),
            source: redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(classify(&refused).outcome, Outcome::Fail);
        let reset =
            CacheError::Redis(redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        assert_eq!(classify(&reset).outcome, Outcome::Unknown);
    }
}
