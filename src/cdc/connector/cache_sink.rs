//! cache-cdc's sink: each committed order, read from the WAL, becomes a
//! versioned write of the product's cached stock.
//!
//! Why *set with the version* rather than *delete*: a delete leaves the key
//! empty, and a reader that read the database just before the commit can
//! fill it with the old value afterwards — cache-aside's set-after-delete
//! race, moved into the connector. Setting the committed value, only if it
//! is newer than what the cache holds ([`Cache::set_if_newer`]), leaves
//! nothing for an old fill to win: the fill finds a newer version and does
//! nothing, and a set that lands after a newer fill does nothing either.
//!
//! The connector reaches Redis through the `redis` link, as the app does: a
//! Redis fault delays the cache's updates; it does not spare the connector.

use std::time::Duration;

use crate::cache::{self, Cache};
use crate::env::Env;
use crate::error::Result;
use crate::event::StockChanged;
use crate::history::{StockAfter, Told};

/// Versioned writes of committed stock into the run's cache.
pub(crate) struct CacheSink {
    cache: Cache,
    ttl: Option<Duration>,
}

impl CacheSink {
    pub(super) fn new(env: &Env) -> Result<CacheSink> {
        let cache = Cache::new(&env.redis_url, Some(env.links.redis), &env.redis_prefix, env.tuning.cache_timeout)?;
        Ok(CacheSink { cache, ttl: env.tuning.cache_ttl })
    }

    /// Writes the event's stock unless the cache holds that version or a
    /// later one. Both are Ok: either way the cache is now at least as new
    /// as this commit. A timeout or reset → Unknown, a refused connection →
    /// Fail (`cache::classify`); the pipeline retries both, so the newest
    /// version reaches the cache once Redis answers again.
    pub(super) async fn deliver(&self, payload: &[u8]) -> Told {
        let event = match StockChanged::from_json(payload) {
            Ok(event) => event,
            // The cdc capture builds the payload itself; this cannot happen
            // unless that code changes. Fail, so that it shows, and is retried.
            Err(e) => return Told::fail(e),
        };
        let value = StockAfter { quantity: event.quantity, version: event.version };
        match self.cache.set_if_newer(event.product_id, value, self.ttl).await {
            Ok(_written_or_already_newer) => Told::ok(),
            Err(e) => cache::classify(&e),
        }
    }
}
