//! What the strategies' database transactions share: a pooled connection,
//! the stage each error happened at, and what the writer is told.
//!
//! Each strategy writes its own statements (`outbox.rs` shows its outbox row
//! going into the order's transaction); this file holds only the frame around
//! them, so that every strategy decides Fail or Unknown the same way:
//!
//! | where it failed                     | the writer is told | why |
//! |-------------------------------------|--------------------|-----|
//! | waiting for a pooled connection     | `Fail`             | nothing was sent |
//! | BEGIN or a statement before COMMIT  | `Fail`             | the server rolls back a transaction that never reached COMMIT |
//! | COMMIT                              | `Unknown` (or `Fail` if the server said no) | the COMMIT may have been applied and only its reply lost |
//!
//! (The table in full is [`db::classify`]'s.)

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, Transaction};

use crate::db::{self, AppDb, DbError, Stage};
use crate::history::{History, Order, StockAfter, Told};

/// An error, with the stage of the transaction it happened at.
pub(crate) type Failed = (Stage, DbError);

/// An error of BEGIN or of a statement before COMMIT.
pub(crate) fn before_commit(error: DbError) -> Failed {
    (Stage::Statement, error)
}

/// An error of the COMMIT itself.
pub(crate) fn at_commit(error: DbError) -> Failed {
    (Stage::Commit, error)
}

/// A connection from the app's pool for one transaction; if none comes in
/// time, what the writer is told (a timeout here sent nothing: `Fail`).
pub(crate) async fn connection(db: &AppDb) -> Result<PoolConnection<Postgres>, Told> {
    db.acquire().await.map_err(|e| db::classify(Stage::Acquire, &e))
}

/// BEGIN, then the order's own statements — UPDATE stock (decrement, bump
/// the version), INSERT order — on the new transaction, which is returned
/// open with the product's new state, for the strategy to add its own
/// statements and commit. Any error here is before COMMIT: `Fail`.
pub(crate) async fn begin_order<'c>(
    db: &AppDb,
    conn: &'c mut PgConnection,
    order: &Order,
    history: &History,
) -> Result<(Transaction<'c, Postgres>, StockAfter), Failed> {
    let mut tx = db.begin(conn).await.map_err(before_commit)?;
    let after = db.apply_order(&mut tx, order).await.map_err(before_commit)?;
    history.wrote(order.order_id, after);
    Ok((tx, after))
}

/// What the writer is told of a transaction that ran on `conn`. After an
/// error the connection is closed unless the server answered (it may be half
/// way through a reply; see [`AppDb::release_on_error`]).
pub(crate) fn told(conn: &mut PoolConnection<Postgres>, result: Result<(), Failed>) -> Told {
    match result {
        Ok(()) => Told::ok(),
        Err((stage, e)) => {
            AppDb::release_on_error(conn, &e);
            db::classify(stage, &e)
        }
    }
}

/// The order alone in one transaction: decrement the stock, record the
/// order, commit. Returns what the writer was told and, if the statements
/// ran, the product's new state. Used by the strategies whose transaction
/// writes nothing but the order (naive, cache-aside, cdc).
pub(crate) async fn commit_order(db: &AppDb, order: &Order, history: &History) -> (Told, Option<StockAfter>) {
    let mut conn = match connection(db).await {
        Ok(conn) => conn,
        Err(told) => return (told, None),
    };
    let mut after = None;
    let result = async {
        let (tx, new_state) = begin_order(db, &mut conn, order, history).await?;
        after = Some(new_state);
        db.commit(tx).await.map_err(at_commit)
    }
    .await;
    (told(&mut conn, result), after)
}
