//! # db-only: no cache; every read goes to the database
//!
//! **What it does.** The app commits the order to Postgres and reads every
//! product from Postgres. There is no cache and no event:
//!
//! ```text
//! read:  db.get(p)
//! write: db.commit(order)?
//! ```
//!
//! It is the baseline of the cache lessons: the strategy a cache is added
//! to. Put it beside `cache-aside` in `dualwrite compare` and read the two
//! lines under "during the run": what each read cost (read p50/p99), and
//! how many reads were stale.
//!
//! **What it guarantees.** A read is never stale. There is one copy of the
//! stock, so a read returns what was committed before it began, or
//! something newer. The report's stale cache column shows "–" for it: there
//! is no cache to be stale.
//!
//! **How it breaks.** It does not disagree with itself; it costs. Every read
//! is a round trip to the database and takes a pooled connection, so reads
//! compete with the writers (a slow database slows both), and read latency
//! is the database's, not Redis's. Faults on the `postgres` link fail reads
//! instead of serving old values (`--scenario postgres-resets`).
//!
//! **Read next.** `cache_aside.rs` adds the cache and shows what it costs in
//! correctness; `cache_cdc.rs` keeps that cache coherent from the log.

use crate::db::AppDb;
use crate::error::Result;
use crate::history::{History, Leg, Order};

use super::transaction::commit_order;
use super::{Env, Integration, Served};

/// The db-only app: a connection pool and nothing else.
pub struct DbOnly {
    db: AppDb,
}

impl Integration for DbOnly {
    fn connect(env: &Env) -> Result<DbOnly> {
        Ok(DbOnly { db: env.app_db() })
    }

    async fn write(&self, order: &Order, history: &History) {
        history.begin(order);
        // The only leg: acquire timeouts and statement errors → Fail (the
        // transaction cannot have committed); a lost COMMIT reply → Unknown.
        history.invoke(order.order_id, Leg::Db);
        let (told, _after) = commit_order(&self.db, order, history).await;
        history.complete(order.order_id, Leg::Db, told);
    }

    async fn read(&self, product_id: i32) -> Served {
        // The database is the only copy: what it returns cannot be stale.
        // A failed read serves nothing (`None`), never an old value.
        Served { value: self.db.read_stock(product_id).await.ok(), from_cache: false, filled_cache: false }
    }

    fn db(&self) -> &AppDb {
        &self.db
    }
}
