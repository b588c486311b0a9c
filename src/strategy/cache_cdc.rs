//! # cache-cdc: the cache follows the database's log
//!
//! **What it does.** The app writes only the database, as in `cdc`. The CDC
//! connector (`src/cdc/`) reads every committed order from the WAL and,
//! instead of publishing it to Kafka, *sets* the product's cached value —
//! only if it is newer than what the cache holds (`cdc/connector/cache_sink.rs`).
//! Readers read Redis; on a miss they read the database and fill the cache
//! with the same rule: the fill lands only if nothing newer is there.
//!
//! ```text
//! write:      db.commit(order)?                          // one leg
//! connector:  for each committed order in the WAL, in commit order per product:
//!                 cache.set_if_newer(p, (quantity, version)) until Redis answers;
//!                 slot.confirm(commit position);
//! read:       cache.get(p) or { v = db.get(p); cache.set_if_newer(p, v); v }
//! ```
//!
//! `set_if_newer` is one Lua script, so the comparison and the write are one
//! step in Redis: `SET` the key unless it already holds this version or a
//! later one.
//!
//! **What it guarantees.** After the connector has caught up, every cached
//! key holds the database's value: zero stale keys after drain. Two reasons:
//! - *Nothing is lost.* The slot keeps each committed change until the
//!   connector confirms it, and the connector confirms only after Redis
//!   answered; a set that times out is retried, never skipped. So the
//!   newest version of each product reaches the cache.
//! - *Nothing old wins.* cache-aside's set-after-delete race — a reader
//!   fills version 3 after the writer's delete for version 4 — cannot leave
//!   version 3: the connector *sets* version 4 (a delete would leave the
//!   race open), and a fill of version 3 finds 4 and does nothing.
//!
//! **How it breaks.** It does not end stale, but it is stale *for a while*:
//! between a commit and the connector's set, readers are served the old
//! value. That window is the connector's lag; during a Redis outage it lasts
//! as long as the outage (the connector waits on Redis like everyone else),
//! then closes. The report measures it from the readers: how long each
//! stale value they were served had already been out of date (p50 and p99),
//! next to cache-aside's, which stays open until the next write
//! (`--scenario redis-timeouts`, `--scenario cache-race`).
//!
//! **Read next.** `db_only.rs` is the baseline without a cache at all;
//! `cdc/connector/mod.rs` is the connector that does the work here.

use std::time::Duration;

use crate::cache::Cache;
use crate::db::AppDb;
use crate::error::Result;
use crate::history::{History, Leg, Order};

use super::fill_pause::FillPause;
use super::transaction::commit_order;
use super::{Env, Integration, Served};

/// The cache-cdc app: a connection pool and a Redis client. The cache's
/// writer is the connector, not the app.
pub struct CacheCdc {
    db: AppDb,
    cache: Cache,
    ttl: Option<Duration>,
    /// The scenario's seeded pause between a miss's database read and its
    /// fill, which widens the race with a newer version.
    fill_pause: FillPause,
}

impl Integration for CacheCdc {
    fn connect(env: &Env) -> Result<CacheCdc> {
        Ok(CacheCdc {
            db: env.app_db(),
            cache: Cache::new(&env.redis_url, Some(env.links.redis), &env.redis_prefix, env.tuning.cache_timeout)?,
            ttl: env.tuning.cache_ttl,
            fill_pause: FillPause::of(env),
        })
    }

    async fn write(&self, order: &Order, history: &History) {
        history.begin(order);
        // The only leg, as in cdc: acquire timeouts and statement errors →
        // Fail; a lost COMMIT reply → Unknown. There is no cache leg: if the
        // order committed, its row is in the WAL and the connector sets the
        // cache from it, whatever the writer was told.
        history.invoke(order.order_id, Leg::Db);
        let (told, _after) = commit_order(&self.db, order, history).await;
        history.complete(order.order_id, Leg::Db, told);
    }

    async fn read(&self, product_id: i32) -> Served {
        match self.cache.get(product_id).await {
            // A hit: served from Redis. It may be behind by the connector's lag.
            Ok(Some(value)) => Served { value: Some(value), from_cache: true, filled_cache: false },
            // A miss: read the database, then offer the value to the cache.
            Ok(None) => {
                let Ok(value) = self.db.read_stock(product_id).await else {
                    return Served { value: None, from_cache: false, filled_cache: false };
                };
                // The race window cache-aside loses: a newer version may
                // commit, and the connector set it, before this fill.
                self.fill_pause.wait().await;
                // Lands only if the cache holds nothing newer: an old fill
                // cannot overwrite the connector's newer value.
                let filled = matches!(self.cache.set_if_newer(product_id, value, self.ttl).await, Ok(true));
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
