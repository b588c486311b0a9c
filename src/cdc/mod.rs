//! Change data capture: a connector that streams the Postgres WAL to Kafka.
//!
//! ```text
//! app ──COMMIT──▶ WAL ──logical decoding (pgoutput)──▶ slot ──▶ connector ──▶ topic
//!                                                        ▲                      │
//!                                                        └── confirm LSN ◀──────┘ broker ack
//! ```
//!
//! The app writes only the database. Postgres's logical decoding turns each
//! committed transaction of the WAL into pgoutput messages, and a per-run
//! *replication slot* remembers how far the connector has confirmed: the slot
//! keeps every WAL byte after that position until the connector confirms it.
//! The connector ([`connector`]) publishes what it decodes and confirms a
//! transaction's position only once the broker has acknowledged all of it.
//!
//! | file           | responsible for |
//! |----------------|-----------------|
//! | `mod.rs`       | what is captured ([`Capture`]); the slot and publication, created and dropped per run; slot lag |
//! | `pgoutput.rs`  | decoding the Relation and Insert messages (pgwire-replication decodes Begin, Commit, Message) |
//! | `connector/`   | the connector: stream, publish (or set the cache), confirm; crash and restart |
//!
//! Three captures share the connector:
//!
//! | strategy              | publication            | the connector publishes |
//! |-----------------------|------------------------|-------------------------|
//! | `cdc`                 | `orders`, inserts only | each new `orders` row as a `StockChanged` |
//! | `outbox-cdc` (message)| none (empty)           | each transactional `pg_logical_emit_message` whose prefix is the run's schema |
//! | `outbox-cdc` (table)  | `outbox`, inserts only | each new outbox row's `payload`, keyed by `aggregateid` |
//! | `cache-cdc`           | `orders`, inserts only | nothing: it sets each order's stock in the cache, if newer |
//!
//! Slot, publication and message prefix are all named after the run's
//! schema (`dw_<strategy>_<id>`), which is a valid slot name (lowercase,
//! digits, underscores). Each CDC run has a database of its own, of the same
//! name (see ARCHITECTURE.md, "A CDC run has a database of its own"): a slot
//! sees its whole database's WAL, and other runs' tables in it once broke
//! decoding. The publication filters table changes; logical decoding
//! messages are not filtered by publication, so the connector also keeps
//! only the messages with its run's prefix — nothing else writes them in a
//! run's database, but a message from anywhere else is not this run's event.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;

use crate::db::{self, quote_ident};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::names::{OutboxCdcMode, Strategy};

pub mod connector;
pub mod pgoutput;

pub use connector::{Connector, Ledger};

/// How long creating a slot may wait for running transactions to end.
const SLOT_CREATE_LIMIT: Duration = Duration::from_secs(60);

/// What the connector captures from the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// `cdc`: inserts into the run's `orders` table.
    Orders,
    /// `outbox-cdc`, table mode: inserts into the run's `outbox` table.
    OutboxTable,
    /// `outbox-cdc`, message mode: transactional logical decoding messages
    /// whose prefix is the run's schema.
    Messages,
}

impl Capture {
    /// The capture of a CDC strategy; `None` for the others.
    pub fn of(env: &Env) -> Option<Capture> {
        match (env.strategy, env.tuning.outbox_cdc_mode) {
            // cache-cdc captures the same rows; its connector sets them in the cache.
            (Strategy::Cdc | Strategy::CacheCdc, _) => Some(Capture::Orders),
            (Strategy::OutboxCdc, OutboxCdcMode::Message) => Some(Capture::Messages),
            (Strategy::OutboxCdc, OutboxCdcMode::Table) => Some(Capture::OutboxTable),
            _ => None,
        }
    }

    /// The table whose inserts are captured, if any.
    pub fn table(self) -> Option<&'static str> {
        match self {
            Capture::Orders => Some("orders"),
            Capture::OutboxTable => Some("outbox"),
            Capture::Messages => None,
        }
    }
}

/// The run's replication slot and publication name (the schema's name).
pub fn slot_name(env: &Env) -> &str {
    &env.schema
}

/// Creates the run's publication, then its replication slot.
///
/// The order matters: pgoutput reads the publication with the catalog as it
/// was when each change was written, so a publication created after the slot
/// would be missing for the slot's first changes.
pub async fn prepare(env: &Env) -> Result<()> {
    let capture = Capture::of(env).expect("prepare is called for CDC strategies only");
    let slot = slot_name(env);
    let direct = db::connect_direct(&env.db, None, 1).await?;
    let result = async {
        let publication = match capture.table() {
            Some(table) => format!(
                "CREATE PUBLICATION {} FOR TABLE {}.{} WITH (publish = 'insert')",
                quote_ident(slot),
                quote_ident(&env.schema),
                quote_ident(table)
            ),
            // Messages need no table; pgoutput still needs a publication name.
            None => format!("CREATE PUBLICATION {}", quote_ident(slot)),
        };
        sqlx::query(&publication)
            .execute(&direct)
            .await
            .map_err(|e| refused(&env.db, format!("create publication {slot}"), e))?;
        // Creating the slot waits for the transactions already running
        // anywhere in the cluster to end (the slot needs a consistent
        // starting point). A session left idle in a transaction, or a
        // prepared transaction nobody resolves (two-phase commit's
        // leftovers: they count as running), would make that wait endless; the server-side timeout cancels it cleanly (a
        // client-side one would leave the server to finish the slot anyway,
        // orphaned).
        let mut conn =
            direct.acquire().await.map_err(|e| refused(&env.db, format!("create replication slot {slot}"), e))?;
        sqlx::query(&format!("SET statement_timeout = '{}s'", SLOT_CREATE_LIMIT.as_secs()))
            .execute(&mut *conn)
            .await
            .map_err(|e| refused(&env.db, format!("create replication slot {slot}"), e))?;
        sqlx::query(include_str!("../../sql/replication_slot_create.sql"))
            .bind(slot)
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                refused(
                    &env.db,
                    format!(
                    "create replication slot {slot} (is wal_level=logical? does a session sit idle in a transaction, \
                     or a prepared transaction wait in pg_prepared_xacts, for more than {SLOT_CREATE_LIMIT:?}?)"
                ),
                    e,
                )
            })?;
        // The connection (and its timeout) ends with the pool, just below.
        Ok(())
    }
    .await;
    direct.close().await;
    result
}

/// Drops the run's replication slot and publication. An orphaned slot keeps
/// every WAL byte written after it, for ever: this retries while the slot is
/// still active (a connector's walsender that has not exited yet).
pub async fn cleanup(env: &Env) -> Result<()> {
    let slot = slot_name(env);
    let direct = db::reconnect_direct(&env.db, None, 1).await?;
    let result = async {
        drop_slot(&direct, slot, Duration::from_secs(15))
            .await
            .map_err(|e| refused(&env.db, format!("drop replication slot {slot}"), e))?;
        let publication = format!("DROP PUBLICATION IF EXISTS {}", quote_ident(slot));
        sqlx::query(&publication)
            .execute(&direct)
            .await
            .map_err(|e| refused(&env.db, format!("drop publication {slot}"), e))?;
        Ok(())
    }
    .await;
    direct.close().await;
    result
}

/// Drops `slot` if it exists, retrying for up to `limit` while it is active.
async fn drop_slot(direct: &PgPool, slot: &str, limit: Duration) -> Result<(), sqlx::Error> {
    let deadline = Instant::now() + limit;
    loop {
        let result = sqlx::query(include_str!("../../sql/replication_slot_drop.sql")).bind(slot).execute(direct).await;
        match result {
            Ok(_) => return Ok(()),
            // 55006 object_in_use: "replication slot ... is active for PID ...".
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55006") && Instant::now() < deadline => {
                tracing::debug!("replication slot {slot} is still active; retrying the drop");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Bytes of WAL written since the slot's confirmed position: what the
/// connector has not confirmed yet, plus whatever other runs have written
/// since (the WAL is the cluster's, not the run's). `None` if the slot is gone.
pub async fn slot_lag_bytes(direct: &PgPool, slot: &str) -> Result<Option<u64>, sqlx::Error> {
    let lag: Option<Option<i64>> = sqlx::query_scalar(include_str!("../../sql/replication_slot_lag.sql"))
        .bind(slot)
        .fetch_optional(direct)
        .await?;
    Ok(lag.flatten().map(|bytes| bytes.max(0) as u64))
}

fn refused(options: &PgConnectOptions, action: String, e: sqlx::Error) -> Error {
    Error::refused("PostgreSQL", db::address(options), action, e)
}
