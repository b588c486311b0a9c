//! # cdc: write the database; a connector streams the WAL
//!
//! **What it does.** The app commits the order to Postgres and does nothing
//! else: no publish, no second write. A change-data-capture connector
//! (`src/cdc/`) reads the run's logical replication slot — the committed
//! changes of the write-ahead log, decoded by pgoutput — and publishes each
//! new `orders` row as a `StockChanged` event, keyed by product:
//!
//! ```text
//! app:        db.commit(order)?;                    // one leg, one write
//! connector:  for each committed orders row in the WAL:
//!                 kafka.publish(event) until acknowledged;
//!                 slot.confirm(commit position);
//! ```
//!
//! **What it guarantees.** No lost events and no ghosts. The WAL *is* the
//! commit: a transaction is in the log exactly when it committed, so every
//! committed order is eventually published (the slot keeps it until the
//! connector confirms it was delivered) and a rolled-back one never is. Even
//! an *Unknown* commit — the reply lost on a reset — needs nobody to guess:
//! if it happened, its row is in the log. The price is *lag*: the event
//! leaves after the commit, not with it, and the reconciler measures by how
//! much (commit acknowledged → first delivery).
//!
//! **How it breaks.** It does not lose, but it can repeat: if the connector
//! dies after the broker stored an event and before the slot heard the
//! confirmation (the acknowledgement still on its way, or the confirmation
//! not yet reported), the next connector publishes it again — a
//! *duplicate* (`--scenario connector-crash`). The downstream consumer is idempotent by
//! version, so duplicates do not corrupt its projection. Faults on the
//! connector's own link (`postgres_relay`) or on Kafka delay events and grow
//! the slot's lag instead of losing them; an orphaned slot would keep WAL
//! for ever, which is why every run drops its own.
//!
//! The app's side is the easiest of all strategies to get right — and that
//! is the point: the hard part moved into infrastructure that was built for it.
//!
//! **Read next.** `outbox_cdc.rs` captures an outbox from the WAL instead:
//! the event is written by the app, in the transaction, in exactly the shape
//! it wants to publish — not inferred from a table row.

use crate::db::AppDb;
use crate::error::Result;
use crate::history::{History, Leg, Order};

use super::transaction::commit_order;
use super::{Env, Integration, Served};

/// The cdc app: a connection pool and nothing else.
pub struct Cdc {
    db: AppDb,
}

impl Integration for Cdc {
    fn connect(env: &Env) -> Result<Cdc> {
        Ok(Cdc { db: env.app_db() })
    }

    async fn write(&self, order: &Order, history: &History) {
        history.begin(order);
        // The only leg. Acquire timeouts and statement errors → Fail (the
        // transaction cannot have committed); a lost COMMIT reply → Unknown.
        // There is no topic leg: announcing the order is the connector's job,
        // and it announces exactly what committed, Unknown or not.
        history.invoke(order.order_id, Leg::Db);
        let (told, _after) = commit_order(&self.db, order, history).await;
        history.complete(order.order_id, Leg::Db, told);
    }

    async fn read(&self, product_id: i32) -> Served {
        // The database is the only store the app knows.
        Served { value: self.db.read_stock(product_id).await.ok(), from_cache: false, filled_cache: false }
    }

    fn db(&self) -> &AppDb {
        &self.db
    }
}
