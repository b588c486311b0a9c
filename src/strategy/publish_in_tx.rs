//! # publish-in-tx: publish inside the open transaction, then commit
//!
//! **What it does.** The writer opens a transaction, decrements the stock and
//! records the order, then — with the transaction still open — publishes the
//! `StockChanged` event and waits for the broker's acknowledgement. Only then
//! does it commit. If the publish fails, it rolls back:
//!
//! ```text
//! tx = db.begin()
//! tx.insert(order)
//! kafka.publish(event)?      // inside the transaction
//! tx.commit()?
//! ```
//!
//! It looks safer than `naive`: no order is committed without its event
//! having been acknowledged first.
//!
//! **What it guarantees.** No *lost* events: a commit only follows an
//! acknowledged publish. But Kafka is not part of the transaction, so a
//! rollback cannot take the event back.
//!
//! **How it breaks.**
//! - *Ghost events*: the publish is acknowledged, then the commit fails — the
//!   Postgres link is reset, the commit times out, the process dies. The event
//!   is on the topic; the order does not exist (`--scenario postgres-resets`).
//!   An *Unknown* publish (sent, reply lost) followed by a rollback does the
//!   same.
//! - *Pool exhaustion*: every order holds a pooled database connection for as
//!   long as the publish takes. When Kafka is slow (`--scenario slow-kafka`)
//!   orders pile up holding connections, and everything else that needs the
//!   pool — here, an unrelated product lookup — waits and times out. The
//!   report's "pool timeouts" column counts it; `naive` and `outbox` in the
//!   same scenario release their connection before touching Kafka.
//!
//! **Read next.** `outbox.rs`: put the event *in* the database transaction,
//! where a rollback does take it back.

use crate::db::{self, AppDb, Stage};
use crate::error::Result;
use crate::event::{EventKey, StockChanged};
use crate::history::{History, Leg, Order, Outcome, Told};
use crate::kafka::Publisher;

use super::{Env, Integration, Served};

/// The publish-in-tx app: a connection pool and a producer.
pub struct PublishInTx {
    db: AppDb,
    publisher: Publisher,
    /// The events' record key: the product, unless the scenario says otherwise.
    key: EventKey,
}

impl Integration for PublishInTx {
    fn connect(env: &Env) -> Result<PublishInTx> {
        Ok(PublishInTx {
            db: env.app_db(),
            publisher: env.publisher("dualwrite-publish-in-tx")?,
            key: env.knobs.event_key,
        })
    }

    async fn write(&self, order: &Order, history: &History) {
        history.begin(order);
        // The database leg spans the whole write: it starts here and ends at
        // COMMIT or ROLLBACK, with the topic leg in the middle.
        history.invoke(order.order_id, Leg::Db);

        // Waiting for a pooled connection. From here until the commit, this
        // order holds it — through the whole publish.
        let mut conn = match self.db.acquire().await {
            Ok(conn) => conn,
            Err(e) => return history.complete(order.order_id, Leg::Db, db::classify(Stage::Acquire, &e)),
        };

        // Ok(()) or what the writer was told, and whether the connection
        // is in a state to be reused.
        let result: std::result::Result<(), (Told, bool)> = async {
            // BEGIN, UPDATE stock, INSERT order: an error here → Fail, nothing
            // was published yet.
            let failed = |stage, e: db::DbError| (db::classify(stage, &e), e.server_answered());
            let mut tx = self.db.begin(&mut conn).await.map_err(|e| failed(Stage::Statement, e))?;
            let after = self.db.apply_order(&mut tx, order).await.map_err(|e| failed(Stage::Statement, e))?;
            history.wrote(order.order_id, after);

            // The publish, inside the open transaction. The connection (and
            // the row lock on this product) is held until the broker answers.
            history.invoke(order.order_id, Leg::Topic);
            let event = StockChanged::new(order, after);
            let published = self.publisher.publish(&event.key(self.key), &event.to_json()).await;
            let publish_ok = published.outcome == Outcome::Ok;
            let publish_error = published.error.clone().unwrap_or_default();
            history.complete(order.order_id, Leg::Topic, published);

            if !publish_ok {
                // The writer rolls back. After a Fail nothing reached the
                // broker; after an Unknown the event may be on the topic
                // already, and nothing can take it back → a possible ghost.
                let rolled_back = db::bounded(self.db.timeout, tx.rollback()).await.is_ok();
                let told = Told::fail(format!("rolled back because the publish did not succeed ({publish_error})"));
                return Err((told, rolled_back));
            }
            // COMMIT, after the event is out. A reset or timeout now →
            // Unknown; if it did not commit, the event is a ghost.
            self.db.commit(tx).await.map_err(|e| failed(Stage::Commit, e))
        }
        .await;

        match result {
            Ok(()) => history.complete(order.order_id, Leg::Db, Told::ok()),
            Err((told, reusable)) => {
                if !reusable {
                    // Reset or timed out mid-reply: never hand it to the next order.
                    conn.close_on_drop();
                }
                history.complete(order.order_id, Leg::Db, told);
            }
        }
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
