//! # outbox-cdc: the outbox, captured from the WAL instead of polled
//!
//! **What it does.** Like `outbox.rs`, the app writes the order *and* the
//! event it wants announced in one transaction. Unlike it, no relay polls a
//! table: the CDC connector (`src/cdc/`) reads the event from the WAL the
//! moment the transaction commits, publishes it, and confirms the slot.
//! Two ways to put the event in the WAL (`--outbox-cdc-mode`):
//!
//! ```text
//! message (default):  BEGIN; UPDATE stock …; INSERT INTO orders …;
//!                     SELECT pg_logical_emit_message(true, '<schema>', '<event JSON>');
//!                     COMMIT;
//! table:              BEGIN; UPDATE stock …; INSERT INTO orders …;
//!                     INSERT INTO outbox (…, payload) …; DELETE FROM outbox WHERE id = …;
//!                     COMMIT;
//! ```
//!
//! *message*: `pg_logical_emit_message(true, …)` writes a *transactional*
//! logical decoding message: no table, no row, just a WAL record that logical
//! decoding hands out when — and only if — the transaction commits. pgoutput
//! forwards it with the `messages` option (PostgreSQL 14+). The prefix is
//! the run's schema: messages are not filtered by publication, so the
//! connector keeps only its own prefix (the run also has a database of its
//! own, which no other run writes to).
//!
//! *table*: Debezium's outbox pattern. The row goes into `outbox` and is
//! deleted again before the commit: the insert is in the WAL, which is all
//! the connector reads (its publication publishes inserts only), so the table
//! stays empty and never needs cleaning up. Keeping the rows instead would
//! let you `SELECT` every event ever sent, at the cost of a table that grows
//! until someone prunes it — and no one here marks them published.
//!
//! The trade-off between the two: the message costs one WAL record and
//! nothing else, but it is Postgres-only, invisible to SQL (only the WAL
//! holds it) and unfiltered by publications. The table is the portable,
//! inspectable pattern that CDC tools such as Debezium's outbox router
//! expect, at the cost of two extra row writes (and their dead tuples) per
//! event.
//!
//! **What it guarantees.** The outbox's guarantees — no loss, no ghosts —
//! because the event commits or rolls back with the order; and CDC's
//! latency, because nobody waits for a poll. Unlike `cdc.rs`, the event is
//! not inferred from a table row: the app decides its exact shape, in the
//! transaction, from the values it just wrote.
//!
//! **How it breaks.** Like `cdc`: only by repeating. A connector that dies
//! between the broker's acknowledgement and the slot's confirmation publishes
//! the event again after its restart (`--scenario connector-crash`), and an
//! Unknown publish retried may be written twice. Faults on its link or on
//! Kafka delay events (the slot's lag grows) without losing them.
//!
//! **Read next.** `src/cdc/connector.rs`, where "acknowledge the position
//! only after the broker acknowledged the event" is the one rule that makes
//! both CDC strategies lossless; then `src/reconcile.rs` to see how
//! duplicates, lag and loss are counted.

use crate::db::{bounded, AppDb, DbError};
use crate::error::Result;
use crate::event::{EventKey, StockChanged};
use crate::history::{History, Leg, Order, StockAfter, Told};

use super::transaction::{self, at_commit, before_commit};
use super::{Env, Integration, OutboxCdcMode, Served};

/// The outbox-cdc app: a pool, how the event goes into the WAL, and the
/// message prefix (the run's schema).
pub struct OutboxCdc {
    db: AppDb,
    mode: OutboxCdcMode,
    prefix: String,
    /// The events' record key (the outbox row's `aggregateid`; the connector
    /// keys a message the same way).
    key: EventKey,
}

impl Integration for OutboxCdc {
    fn connect(env: &Env) -> Result<OutboxCdc> {
        Ok(OutboxCdc {
            db: env.app_db(),
            mode: env.tuning.outbox_cdc_mode,
            prefix: env.schema.clone(),
            key: env.knobs.event_key,
        })
    }

    async fn write(&self, order: &Order, history: &History) {
        history.begin(order);
        // One leg: the order and its event commit together or not at all.
        // There is no topic leg; the connector publishes what committed.
        history.invoke(order.order_id, Leg::Db);
        let told = self.commit_order_and_event(order, history).await;
        history.complete(order.order_id, Leg::Db, told);
    }

    async fn read(&self, product_id: i32) -> Served {
        Served { value: self.db.read_stock(product_id).await.ok(), from_cache: false, filled_cache: false }
    }

    fn db(&self) -> &AppDb {
        &self.db
    }
}

impl OutboxCdc {
    /// The order and its event in one transaction.
    async fn commit_order_and_event(&self, order: &Order, history: &History) -> Told {
        // Waiting for a pooled connection: a timeout here sent nothing → Fail.
        let mut conn = match transaction::connection(&self.db).await {
            Ok(conn) => conn,
            Err(told) => return told,
        };
        let result = async {
            // BEGIN, UPDATE stock, INSERT order: any error → Fail, because a
            // transaction that never reached COMMIT is rolled back.
            let (mut tx, after) = transaction::begin_order(&self.db, &mut conn, order, history).await?;
            // The event, built from the row's new state, into the same
            // transaction: an error → Fail, and the order rolls back with it.
            self.write_event(&mut tx, order, after).await.map_err(before_commit)?;
            // COMMIT: a reset or timeout now → Unknown. Whichever way it went,
            // the order and its event went the same way.
            self.db.commit(tx).await.map_err(at_commit)
        }
        .await;
        transaction::told(&mut conn, result)
    }

    /// Puts the order's event into the open transaction, as a logical
    /// decoding message or as an outbox row (inserted and deleted).
    async fn write_event(&self, tx: &mut sqlx::PgConnection, order: &Order, after: StockAfter) -> Result<(), DbError> {
        let event = StockChanged::new(order, after);
        let limit = self.db.timeout;
        match self.mode {
            OutboxCdcMode::Message => {
                // Transactional (`true`): decoded only if this transaction commits.
                let json = String::from_utf8(event.to_json()).expect("JSON is UTF-8");
                bounded(
                    limit,
                    sqlx::query(include_str!("../../sql/logical_message_emit.sql"))
                        .bind(&self.prefix)
                        .bind(&json)
                        .execute(&mut *tx),
                )
                .await?;
            }
            OutboxCdcMode::Table => {
                // The same row as outbox.rs writes (its id is the order's:
                // one event per order)…
                self.db.insert_outbox(tx, &event, self.key).await?;
                // …but gone before anyone can see it; its insert stays in the WAL.
                bounded(
                    limit,
                    sqlx::query(include_str!("../../sql/outbox_cdc_delete.sql")).bind(order.order_id).execute(&mut *tx),
                )
                .await?;
            }
        }
        Ok(())
    }
}
