//! # cache-aside: read through Redis; commit, then delete the key
//!
//! **What it does.** Reads ask Redis first. On a miss they read Postgres and
//! put the value into Redis for the next reader ("fill"). Writes commit the
//! order to Postgres, then delete the product's key so the next read misses
//! and fetches the new value:
//!
//! ```text
//! read:  cache.get(p) or { v = db.get(p); cache.set(p, v); v }
//! write: db.commit(order)?; cache.delete(p)?
//! ```
//!
//! This strategy publishes no events: its lesson is the cache. Its table row
//! shows "–" for the topic's anomalies (lost, ghost, duplicate, reordered,
//! projection drift) and for event lag.
//!
//! Cached entries never expire unless `--cache-ttl` is given, so staleness
//! is not hidden by an expiry that happens to come first.
//!
//! **What it guarantees.** Nothing between the two stores. The cache is
//! usually right because deletes usually succeed and readers usually fill
//! before the next write.
//!
//! **How it breaks.**
//! - *A lost delete*: the commit succeeds, the delete times out or the Redis
//!   link is down. The key keeps the old value — for every reader, until the
//!   next write to that product deletes it (`--scenario redis-timeouts`).
//! - *The set-after-delete race*: a reader misses and reads version 3 from
//!   the database; before it fills the cache, a writer commits version 4 and
//!   deletes the (still empty) key; then the reader fills the cache with
//!   version 3. Nothing will delete it until the next write
//!   (`--scenario cache-race` widens the reader's gap between read and fill
//!   with a seeded delay, so a seed reproduces it).
//!
//! The report counts `stale_cache` (cached keys that differ from the database
//! after drain) and, from the readers, how many reads were served stale and
//! how stale (in versions and milliseconds).
//!
//! **Read next.** A cache kept coherent from the database's log is the CDC
//! idea applied to caches: see `cdc.rs`.

use std::time::Duration;

use crate::cache::{self, Cache};
use crate::db::AppDb;
use crate::error::Result;
use crate::history::{History, Leg, Order, Outcome};

use super::fill_pause::FillPause;
use super::transaction::commit_order;
use super::{Env, Integration, Served};

/// The cache-aside app: a connection pool and a Redis client.
pub struct CacheAside {
    db: AppDb,
    cache: Cache,
    ttl: Option<Duration>,
    /// The scenario's seeded pause between a miss's database read and its
    /// fill, which widens the race with a newer version.
    fill_pause: FillPause,
}

impl Integration for CacheAside {
    fn connect(env: &Env) -> Result<CacheAside> {
        Ok(CacheAside {
            db: env.app_db(),
            cache: Cache::new(&env.redis_url, Some(env.links.redis), &env.redis_prefix, env.tuning.cache_timeout)?,
            ttl: env.tuning.cache_ttl,
            fill_pause: FillPause::of(env),
        })
    }

    async fn write(&self, order: &Order, history: &History) {
        history.begin(order);

        // Leg 1: the database, as in naive.
        history.invoke(order.order_id, Leg::Db);
        let (told, _after) = commit_order(&self.db, order, history).await;
        let may_have_committed = told.outcome != Outcome::Fail;
        history.complete(order.order_id, Leg::Db, told);

        // Leg 2: invalidate. Also after an Unknown commit: if the order may
        // exist, the cached value may be old.
        if !may_have_committed {
            return;
        }
        history.invoke(order.order_id, Leg::Cache);
        // A timeout or reset → Unknown (the DEL may have run); a refused
        // connection → Fail. Either way the old value may still be cached.
        let told = match self.cache.delete(order.product_id).await {
            Ok(()) => crate::history::Told::ok(),
            Err(e) => cache::classify(&e),
        };
        history.complete(order.order_id, Leg::Cache, told);
    }

    async fn read(&self, product_id: i32) -> Served {
        match self.cache.get(product_id).await {
            // A hit: served from Redis, however old it is.
            Ok(Some(value)) => Served { value: Some(value), from_cache: true, filled_cache: false },
            // A miss: read the database, then fill the cache with what was read.
            Ok(None) => {
                let Ok(value) = self.db.read_stock(product_id).await else {
                    return Served { value: None, from_cache: false, filled_cache: false };
                };
                // The race window: between this read and the fill below,
                // a writer may commit a newer version and delete the key.
                self.fill_pause.wait().await;
                let filled = self.cache.set(product_id, value, self.ttl).await.is_ok();
                Served { value: Some(value), from_cache: false, filled_cache: filled }
            }
            // Redis is unreachable: serve the database, fill nothing.
            Err(_) => {
                Served { value: self.db.read_stock(product_id).await.ok(), from_cache: false, filled_cache: false }
            }
        }
    }

    fn db(&self) -> &AppDb {
        &self.db
    }
}
