//! # outbox: the event in the same transaction as the order
//!
//! **What it does.** The writer never talks to Kafka. In one database
//! transaction it decrements the stock, records the order *and* inserts the
//! `StockChanged` event into an `outbox` table (Debezium's columns: `id`,
//! `aggregatetype`, `aggregateid`, `type`, `payload`). A separate *relay*
//! ([`relay`]) claims unpublished outbox rows, publishes them, waits for the
//! broker's acknowledgement, and only then marks them published.
//!
//! ```text
//! writer: BEGIN; UPDATE stock; INSERT order; INSERT outbox; COMMIT
//! relay:  BEGIN; SELECT … FOR UPDATE SKIP LOCKED; publish; await ack; UPDATE … published_at; COMMIT
//! ```
//!
//! The writer's transaction is `Outbox::commit_order_and_outbox_row`, at the
//! end of this file: every statement on `&mut *tx`.
//!
//! **What it guarantees.** The event exists exactly when the order does:
//! they commit or roll back together, so there is no *lost* event (a
//! committed order always has its row, which the relay keeps trying to
//! publish) and no *ghost* (a rolled-back order never had one). Delivery is
//! **at-least-once**: a row is marked only after Kafka acknowledged it.
//!
//! **How it breaks — only into duplicates.** If the relay dies (or its
//! database link fails) after the broker acknowledged a batch but before the
//! mark committed, the rows are still unpublished and the next relay
//! publishes them again (`--scenario relay-crash`). The report counts these
//! `duplicate`s; the downstream consumer ignores them by version, so its
//! view — `projection drift` — stays at zero: *effectively* once.
//! While Kafka is down the relay retries with backoff and the rows wait
//! (`--scenario kafka-outage`); the drain phase lets it catch up, and
//! anything left is counted as `backlog`.
//!
//! **Read next.** [`relay`] for the relay's loop and the bug it avoids;
//! then `cdc.rs`, which gets the same guarantee from the database's own log
//! instead of a table and a poller.

use crate::db::AppDb;
use crate::error::Result;
use crate::event::{EventKey, StockChanged};
use crate::history::{History, Leg, Order, Told};

use super::transaction::{self, at_commit, before_commit};
use super::{Env, Integration, Served};

pub mod relay;

/// The outbox app: only a connection pool — no producer at all.
pub struct Outbox {
    db: AppDb,
    /// The events' record key (the outbox's `aggregateid`): the product,
    /// unless the scenario says otherwise.
    key: EventKey,
}

impl Integration for Outbox {
    fn connect(env: &Env) -> Result<Outbox> {
        Ok(Outbox { db: env.app_db(), key: env.knobs.event_key })
    }

    async fn write(&self, order: &Order, history: &History) {
        history.begin(order);
        // One leg only: the order and its event commit (or not) together.
        // A reset during COMMIT → Unknown, for both at once.
        history.invoke(order.order_id, Leg::Db);
        let told = self.commit_order_and_outbox_row(order, history).await;
        history.complete(order.order_id, Leg::Db, told);
    }

    async fn read(&self, product_id: i32) -> Served {
        Served { value: self.db.read_stock(product_id).await.ok(), from_cache: false, filled_cache: false }
    }

    fn db(&self) -> &AppDb {
        &self.db
    }
}

impl Outbox {
    /// The whole lesson: the order and its event in one transaction. Every
    /// statement runs on `&mut *tx`, the open transaction — not on the pool,
    /// which would give each statement a connection (and a transaction) of
    /// its own, and bring back the dual write this strategy removes.
    // `&mut *tx` is written out, though `&mut tx` would deref to the same
    // connection: it is the line this file is read for (sqlx's idiom).
    #[allow(clippy::explicit_auto_deref)]
    async fn commit_order_and_outbox_row(&self, order: &Order, history: &History) -> Told {
        // Waiting for a pooled connection: a timeout here sent nothing → Fail.
        let mut conn = match transaction::connection(&self.db).await {
            Ok(conn) => conn,
            Err(told) => return told,
        };
        let result = async {
            // BEGIN, UPDATE stock, INSERT order: any error → Fail, because a
            // transaction that never reached COMMIT is rolled back.
            let (mut tx, after) = transaction::begin_order(&self.db, &mut conn, order, history).await?;
            // INSERT outbox: the event, built from the row's new state, into
            // the same transaction. An error → Fail, and the order rolls back
            // with it: no order without its event.
            let event = StockChanged::new(order, after);
            self.db.insert_outbox(&mut *tx, &event, self.key).await.map_err(before_commit)?;
            // COMMIT: a reset or timeout now → Unknown. Whichever way it went,
            // the order and its outbox row went the same way; the relay
            // publishes the row if, and only if, it committed.
            self.db.commit(tx).await.map_err(at_commit)
        }
        .await;
        transaction::told(&mut conn, result)
    }
}
