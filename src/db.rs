//! PostgreSQL: connections, the run's schema, the workload's statements, and
//! what a database error means for an order ([`classify`]).
//!
//! Two kinds of connection exist. The *app* pool reaches Postgres through the
//! fault proxy's `postgres` link (the relay and connector through
//! `postgres_relay`): that is the system under test. The *direct* pool
//! bypasses the proxy: dualwrite uses it to prepare the schema, to read the
//! truth while readers sample, and to take the final snapshot — like Jepsen's
//! final read after the network has healed.

use std::future::Future;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, Postgres, Row, Transaction};

use crate::error::{Chain, Error, Result};
use crate::history::{Order, StockAfter, Told};
use crate::snapshot::{OrderRow, StockRow};

/// How long dualwrite waits to reach Postgres when setting up, before it
/// gives up with an error that names the address and the fix. A refused
/// port is told at once; this bounds a server that does not answer. 4 s:
/// a server shared by a class (or by the test suite) can take seconds to
/// start a backend when dozens of runs connect at once, and a bad address
/// must still be told within 5 s (`tests/cli_battery.rs`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

/// How long a pool's later connections may take, once its first one has
/// been made (and a cleanup's, see [`reconnect_direct`]). A server that
/// answered a moment ago and is slow now is busy, not gone: this test suite
/// on a loaded two-core machine made PostgreSQL take 3–12 s to start a
/// backend. A server that is gone is told by the run's watch within 5 s
/// (`runner/watch.rs`), whatever waits here.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The fix for an unreachable PostgreSQL, in every message that says so.
pub const FIX: &str = "is PostgreSQL running? `make setup` starts it; or point --database-url / DATABASE_URL at yours";

/// Parses a `postgres://` URL. The error quotes it with its password hidden.
pub fn parse_url(url: &str) -> Result<PgConnectOptions> {
    let shown = crate::redact::redact_url(url);
    let example = "expected e.g. postgres://postgres@127.0.0.1:5432/postgres";
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(Error::Config(format!("--database-url {shown:?} is not a PostgreSQL URL; {example}")));
    }
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::input(format!("--database-url {shown:?} is not a PostgreSQL URL ({example})"), e))?;
    // sqlx falls back to a Unix socket without a host, and to $PGHOST:
    // dualwrite reaches PostgreSQL over TCP, through the fault proxy.
    if options.get_host().starts_with('/') {
        return Err(Error::Config(format!(
            "--database-url {shown:?} names a Unix socket; dualwrite reaches PostgreSQL over TCP through its fault \
             proxy: give a host, {example}"
        )));
    }
    Ok(options)
}

/// `host:port` of a URL, for messages.
pub fn address(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// A small pool straight to Postgres (no proxy), optionally with a schema as
/// its search_path. Fails within [`CONNECT_TIMEOUT`] with the address and fix;
/// once connected, the pool waits up to [`BUSY_TIMEOUT`] for a connection.
pub async fn connect_direct(options: &PgConnectOptions, schema: Option<&str>, max: u32) -> Result<PgPool> {
    connect_direct_within(options, schema, max, CONNECT_TIMEOUT).await
}

/// [`connect_direct`] to a server this process has reached already (a
/// cleanup, the doctor's removals): its first connection, too, may take up
/// to [`BUSY_TIMEOUT`]. A cleanup that gave up on a busy server after 4 s
/// would leave a replication slot behind, keeping WAL for ever.
pub async fn reconnect_direct(options: &PgConnectOptions, schema: Option<&str>, max: u32) -> Result<PgPool> {
    connect_direct_within(options, schema, max, BUSY_TIMEOUT).await
}

async fn connect_direct_within(
    options: &PgConnectOptions,
    schema: Option<&str>,
    max: u32,
    first: Duration,
) -> Result<PgPool> {
    let mut options =
        options.clone().application_name("dualwrite-checker").log_statements(tracing::log::LevelFilter::Trace);
    if let Some(schema) = schema {
        options = options.options([("search_path", schema)]);
    }
    let pool =
        PgPoolOptions::new().max_connections(max).acquire_timeout(BUSY_TIMEOUT).connect_lazy_with(options.clone());
    // Connect once now, so an unreachable server is reported here, clearly.
    match tokio::time::timeout(first, pool.acquire()).await {
        Ok(Ok(_conn)) => Ok(pool),
        // The server answered: it is reachable, but refuses (no such
        // database, authentication failed, too many connections).
        Ok(Err(sqlx::Error::Database(e))) => Err(Error::refused(
            "PostgreSQL",
            address(&options),
            format!(
                "let user {:?} into database {:?}",
                options.get_username(),
                options.get_database().unwrap_or("postgres")
            ),
            e,
        )),
        Ok(Err(e)) => Err(Error::unreachable("PostgreSQL", address(&options), FIX, e)),
        Err(_) => Err(Error::unreachable("PostgreSQL", address(&options), FIX, format!("no answer within {first:?}"))),
    }
}

/// How many connections a pool holds and how long a task waits for one: all
/// that [`pool_through`] needs of the run's tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    pub connections: u32,
    pub acquire_timeout: Duration,
}

/// The app's pool: through a fault-proxy link, with the run's schema as its
/// search_path. Connections open lazily, so a link that is down at start is a
/// fault the workload sees, not a setup error.
pub fn pool_through(options: &PgConnectOptions, via: SocketAddr, schema: &str, size: PoolSize, name: &str) -> PgPool {
    let options = options
        .clone()
        .host(&via.ip().to_string())
        .port(via.port())
        .application_name(name)
        .options([("search_path", schema)])
        .log_statements(tracing::log::LevelFilter::Trace);
    PgPoolOptions::new()
        .max_connections(size.connections)
        .acquire_timeout(size.acquire_timeout)
        // A health check before every acquire would itself hang on a
        // black-holed link; connections that failed are closed instead
        // (see `AppDb::release_on_error`).
        .test_before_acquire(false)
        .connect_lazy_with(options)
}

/// Creates the run's schema, its tables (the numbered migrations) and the
/// products' stock rows.
pub async fn create_schema(options: &PgConnectOptions, schema: &str, products: u32, initial_stock: i64) -> Result<()> {
    let direct = connect_direct(options, None, 1).await?;
    let addr = address(options);
    let create = format!("CREATE SCHEMA {}", quote_ident(schema));
    sqlx::query(&create)
        .execute(&direct)
        .await
        .map_err(|e| Error::refused("PostgreSQL", addr.clone(), format!("create schema {schema}"), e))?;
    direct.close().await;

    let pool = connect_direct(options, Some(schema), 1).await?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|e| Error::refused("PostgreSQL", addr.clone(), format!("create the tables in schema {schema}"), e))?;
    sqlx::query(include_str!("../sql/stock_seed.sql"))
        .bind(products as i32)
        .bind(initial_stock)
        .execute(&pool)
        .await
        .map_err(|e| Error::refused("PostgreSQL", addr, "seed the stock table", e))?;
    pool.close().await;
    Ok(())
}

/// Drops the run's schema and everything in it.
pub async fn drop_schema(options: &PgConnectOptions, schema: &str) -> Result<()> {
    let direct = reconnect_direct(options, None, 1).await?;
    let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(schema));
    let result = sqlx::query(&drop).execute(&direct).await;
    direct.close().await;
    result.map(|_| ()).map_err(|e| Error::refused("PostgreSQL", address(options), format!("drop schema {schema}"), e))
}

/// Creates a database for one run.
pub async fn create_database(options: &PgConnectOptions, name: &str) -> Result<()> {
    let direct = connect_direct(options, None, 1).await?;
    let result = sqlx::query(&format!("CREATE DATABASE {}", quote_ident(name))).execute(&direct).await;
    direct.close().await;
    result.map(|_| ()).map_err(|e| Error::refused("PostgreSQL", address(options), format!("create database {name}"), e))
}

/// Drops a run's database, ending any session still in it. Its replication
/// slots must have been dropped first (Postgres refuses otherwise).
pub async fn drop_database(options: &PgConnectOptions, name: &str) -> Result<()> {
    let direct = reconnect_direct(options, None, 1).await?;
    let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    let result = sqlx::query(&drop).execute(&direct).await;
    direct.close().await;
    result.map(|_| ()).map_err(|e| Error::refused("PostgreSQL", address(options), format!("drop database {name}"), e))
}

/// Quotes an identifier for SQL built at runtime (schema names only; every
/// value goes through a bind parameter).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The stages of a database write, for [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for a pooled connection; nothing sent yet.
    Acquire,
    /// A statement of a transaction that has not been asked to commit.
    Statement,
    /// The COMMIT itself (or an autocommit statement, which is its own commit).
    Commit,
}

/// Why a database call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("no reply from PostgreSQL within {0:?}")]
    TimedOut(Duration),
}

impl DbError {
    /// True when the server itself answered with an error: the connection is
    /// in a known state and may be reused.
    pub fn server_answered(&self) -> bool {
        matches!(self, DbError::Sqlx(sqlx::Error::Database(_)) | DbError::Sqlx(sqlx::Error::RowNotFound))
    }
}

/// What a database error means for the order: the one place that decides.
///
/// | stage       | error                                  | outcome   | why |
/// |-------------|----------------------------------------|-----------|-----|
/// | `Acquire`   | any (pool timeout, cannot connect)     | `Fail`    | nothing was sent |
/// | `Statement` | any (server error, reset, timeout)     | `Fail`    | a transaction that never reached COMMIT cannot commit: the server rolls it back on error, on ROLLBACK, or when its connection closes |
/// | `Commit`    | the server answered with an error      | `Fail`    | Postgres said it did not commit |
/// | `Commit`    | timeout, reset, I/O, protocol error    | `Unknown` | the COMMIT may have reached the server and been applied; only the reply was lost |
pub fn classify(stage: Stage, error: &DbError) -> Told {
    match stage {
        Stage::Acquire | Stage::Statement => Told::fail(Chain(error)),
        Stage::Commit if error.server_answered() => Told::fail(Chain(error)),
        Stage::Commit => Told::unknown(Chain(error)),
    }
}

/// Bounds a database call by `limit`. A call that overruns is abandoned; its
/// connection must then be closed, not reused (see [`AppDb::release_on_error`]).
pub async fn bounded<T>(limit: Duration, call: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, DbError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(DbError::from),
        Err(_) => Err(DbError::TimedOut(limit)),
    }
}

/// The app's view of the database: its pool through the proxy, and the
/// workload's statements, each bounded in time.
#[derive(Debug, Clone)]
pub struct AppDb {
    pub pool: PgPool,
    pub timeout: Duration,
}

impl AppDb {
    pub fn new(pool: PgPool, timeout: Duration) -> AppDb {
        AppDb { pool, timeout }
    }

    /// A pooled connection, within the pool's acquire timeout.
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, DbError> {
        // The pool enforces its own acquire timeout; this outer bound only
        // guards against a connect that hangs past it.
        bounded(self.timeout, self.pool.acquire()).await
    }

    /// Starts a transaction on `conn`.
    pub async fn begin<'c>(&self, conn: &'c mut PgConnection) -> Result<Transaction<'c, Postgres>, DbError> {
        bounded(self.timeout, conn.begin()).await
    }

    /// The order's business change: decrement the product's stock (bumping
    /// its version) and record the order. Returns the product's new state.
    pub async fn apply_order(&self, tx: &mut PgConnection, order: &Order) -> Result<StockAfter, DbError> {
        let row = bounded(
            self.timeout,
            sqlx::query(include_str!("../sql/stock_update.sql"))
                .bind(order.product_id)
                .bind(order.delta as i64)
                .fetch_one(&mut *tx),
        )
        .await?;
        let after = StockAfter { quantity: row.get("quantity"), version: row.get("version") };
        bounded(
            self.timeout,
            sqlx::query(include_str!("../sql/orders_insert.sql"))
                .bind(order.order_id)
                .bind(order.product_id)
                .bind(order.delta)
                .bind(after.quantity)
                .bind(after.version)
                .execute(&mut *tx),
        )
        .await?;
        Ok(after)
    }

    /// The order's event as an outbox row (Debezium's column names).
    pub async fn insert_outbox(
        &self,
        tx: &mut PgConnection,
        event: &crate::event::StockChanged,
        key: crate::event::EventKey,
    ) -> Result<(), DbError> {
        bounded(
            self.timeout,
            sqlx::query(include_str!("../sql/outbox_insert.sql"))
                .bind(event.order_id)
                .bind(event.key(key))
                .bind(sqlx::types::Json(event))
                .execute(&mut *tx),
        )
        .await
        .map(|_| ())
    }

    /// Commits.
    pub async fn commit(&self, tx: Transaction<'_, Postgres>) -> Result<(), DbError> {
        bounded(self.timeout, tx.commit()).await
    }

    /// After an error, decide the connection's fate: if the server answered,
    /// the connection is fine; otherwise (timeout, reset) it may be half-way
    /// through a reply and is closed rather than returned to the pool.
    pub fn release_on_error(conn: &mut PoolConnection<Postgres>, error: &DbError) {
        if !error.server_answered() {
            conn.close_on_drop();
        }
    }

    /// One product's stock, through the app's pool (the read path of every
    /// strategy but cache-aside, and the unrelated pool probe's lookup).
    pub async fn read_stock(&self, product_id: i32) -> Result<StockAfter, DbError> {
        let mut conn = self.acquire().await?;
        let result = bounded(
            self.timeout,
            sqlx::query(include_str!("../sql/stock_select.sql")).bind(product_id).fetch_one(&mut *conn),
        )
        .await;
        match result {
            Ok(row) => Ok(StockAfter { quantity: row.get("quantity"), version: row.get("version") }),
            Err(e) => {
                AppDb::release_on_error(&mut conn, &e);
                Err(e)
            }
        }
    }
}

/// One product's stock read directly (no proxy): the truth at this instant.
pub async fn read_stock_direct(direct: &PgPool, product_id: i32) -> Option<StockAfter> {
    let row = bounded(
        Duration::from_secs(2),
        sqlx::query(include_str!("../sql/stock_select.sql")).bind(product_id).fetch_one(direct),
    )
    .await
    .ok()?;
    Some(StockAfter { quantity: row.get("quantity"), version: row.get("version") })
}

/// Every committed order and every stock row, read directly.
pub async fn read_tables(direct: &PgPool) -> Result<(Vec<OrderRow>, Vec<StockRow>), sqlx::Error> {
    let orders = sqlx::query(include_str!("../sql/orders_select_all.sql"))
        .fetch_all(direct)
        .await?
        .into_iter()
        .map(|r| OrderRow {
            order_id: r.get("order_id"),
            product_id: r.get("product_id"),
            delta: r.get("delta"),
            quantity: r.get("quantity"),
            version: r.get("version"),
        })
        .collect();
    let stock = sqlx::query(include_str!("../sql/stock_select_all.sql"))
        .fetch_all(direct)
        .await?
        .into_iter()
        .map(|r| StockRow { product_id: r.get("product_id"), quantity: r.get("quantity"), version: r.get("version") })
        .collect();
    Ok((orders, stock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    #[test]
    fn only_a_lost_commit_reply_is_unknown() {
        let reset = DbError::Sqlx(sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        let timeout = DbError::TimedOut(Duration::from_secs(5));
        let pool = DbError::Sqlx(sqlx::Error::PoolTimedOut);
        assert_eq!(classify(Stage::Acquire, &pool).outcome, Outcome::Fail);
        assert_eq!(classify(Stage::Statement, &reset).outcome, Outcome::Fail);
        assert_eq!(classify(Stage::Statement, &timeout).outcome, Outcome::Fail);
        assert_eq!(classify(Stage::Commit, &reset).outcome, Outcome::Unknown);
        assert_eq!(classify(Stage::Commit, &timeout).outcome, Outcome::Unknown);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("dw_naive_1"), "\"dw_naive_1\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
