//! # naive: commit, then publish
//!
//! **What it does.** The order is committed to Postgres in one transaction.
//! Once the commit is acknowledged, the `StockChanged` event is published to
//! Kafka and the writer waits for the broker's acknowledgement. This is the
//! code most services start with:
//!
//! ```text
//! db.commit(order)?;
//! kafka.publish(event)?;
//! ```
//!
//! **What it guarantees.** Nothing across the two stores. Each write is
//! atomic on its own; the pair is not. The producer is idempotent, so
//! librdkafka's own retries never duplicate an event.
//!
//! **How it breaks.** Between the commit and the broker's acknowledgement
//! the order exists and its event may not:
//! - the publish fails (Kafka reset or down for longer than the producer's
//!   delivery timeout): the order is committed, the event never leaves — a
//!   *lost* event, the "black hole" (`--scenario kafka-resets`, `kafka-outage`);
//! - the process dies after the commit with the event still in the producer's
//!   buffer (`--scenario writer-crash`);
//! - the commit's reply is lost (`postgres-resets`): the writer cannot know
//!   whether the order exists, does not publish, and if the commit did happen
//!   the event is lost too.
//!
//! Retrying the publish would not fix this (the process can die before the
//! retry), and retrying an *Unknown* publish can duplicate it.
//!
//! **Read next.** `publish_in_tx.rs` tries the other order of the two
//! writes and fails the other way; `outbox.rs` makes the pair atomic.

use crate::db::AppDb;
use crate::error::Result;
use crate::event::{EventKey, StockChanged};
use crate::history::{History, Leg, Order, Outcome};
use crate::kafka::Publisher;

use super::{transaction, Env, Integration, Served};

/// The naive app: a connection pool and a producer.
pub struct Naive {
    db: AppDb,
    publisher: Publisher,
    /// The events' record key: the product, unless the scenario says otherwise.
    key: EventKey,
}

impl Integration for Naive {
    fn connect(env: &Env) -> Result<Naive> {
        Ok(Naive { db: env.app_db(), publisher: env.publisher("dualwrite-naive")?, key: env.knobs.event_key })
    }

    async fn write(&self, order: &Order, history: &History) {
        history.begin(order);

        // Leg 1: the database.
        history.invoke(order.order_id, Leg::Db);
        let (told, after) = transaction::commit_order(&self.db, order, history).await;
        let committed = told.outcome == Outcome::Ok;
        history.complete(order.order_id, Leg::Db, told);

        // Leg 2: the topic — only once the commit is known to have happened.
        // After a Fail there is nothing to announce; after an Unknown the
        // writer cannot tell, and (like most code) gives up: if the commit
        // did happen, this order's event is lost.
        let Some(after) = after.filter(|_| committed) else { return };
        let event = StockChanged::new(order, after);
        history.invoke(order.order_id, Leg::Topic);
        // Waits for the broker's acknowledgement: Ok, Fail (never reached the
        // broker) or Unknown (sent, reply lost). See kafka::producer.
        let told = self.publisher.publish(&event.key(self.key), &event.to_json()).await;
        history.complete(order.order_id, Leg::Topic, told);
    }

    async fn read(&self, product_id: i32) -> Served {
        Served { value: self.db.read_stock(product_id).await.ok(), from_cache: false, filled_cache: false }
    }

    fn db(&self) -> &AppDb {
        &self.db
    }

    fn publisher(&self) -> Option<&Publisher> {
        Some(&self.publisher)
    }
}
