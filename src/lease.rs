//! Namespace leases: how a live run tells `doctor --drop-stale` "mine, hands off".
//!
//! Every run names everything it creates after itself — `dw_<strategy>_<id>`
//! for the schema, the CDC database, the replication slot, the publication,
//! the topic and the Redis key prefix. Before it creates any of them it takes
//! a *lease* on that id: a session-level PostgreSQL advisory lock, keyed by
//! the id, on a connection of its own that it keeps for its whole life.
//!
//! Why an advisory lock: it vanishes with the session, however the session
//! ends. A run that exits, crashes or is killed with SIGKILL closes its
//! socket, the server ends the session and the lock is gone — no code has to
//! run at the moment of death, and no file or table has to be cleaned up.
//! `pg_locks` lists the locks of every database of the cluster, so `doctor`
//! sees every live run's lease wherever it is connected. What is named like a
//! run and has no lease belongs to a run that is over: kept with `--keep`,
//! interrupted before its cleanup finished, or killed.
//!
//! The lease connection doubles as the run's direct health probe of
//! PostgreSQL (see `runner::watch`): it bypasses the fault proxy, so a probe
//! that fails is never an injected fault.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::Mutex;

use crate::db;
use crate::error::{Error, Result};

const FIX: &str = "is PostgreSQL running? `make setup` starts it; or point --database-url / DATABASE_URL at yours";

/// The first key of every dualwrite lease ("dw_l" in ASCII), so that other
/// applications' advisory locks are never mistaken for runs.
pub const LEASE_CLASS: i32 = 0x6477_5f6c;

/// The lease key of a run id (`1a2b3c4d`, eight hex digits): the id's 32 bits.
pub fn key(run_id: &str) -> Option<i32> {
    if run_id.len() != 8 || !run_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    u32::from_str_radix(run_id, 16).ok().map(|k| k as i32)
}

/// The run id inside a namespace name: `dw_cache_aside_1a2b3c4d` → `1a2b3c4d`.
/// `None` for a name that is not a run's namespace.
pub fn run_id_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("dw_")?;
    let (strategy, id) = rest.rsplit_once('_')?;
    (!strategy.is_empty() && key(id).is_some()).then_some(id)
}

/// A run's lease, held on a connection of its own.
#[derive(Debug)]
pub struct Lease {
    run_id: String,
    key: i32,
    options: PgConnectOptions,
    /// `None` after the connection failed, until the next [`Lease::check`]
    /// reconnects and takes the lock again.
    conn: Mutex<Option<PgConnection>>,
}

impl Lease {
    /// Takes the lease on `run_id` in the database `options` names.
    pub async fn acquire(options: &PgConnectOptions, run_id: &str) -> Result<Lease> {
        let key = key(run_id).ok_or_else(|| Error::Config(format!("{run_id:?} is not a run id")))?;
        let options =
            options.clone().application_name("dualwrite-lease").log_statements(tracing::log::LevelFilter::Trace);
        let conn = lock(&options, key).await.map_err(|e| match e {
            LockError::Taken => Error::Config(format!("run id {run_id} is already in use by a live run")),
            LockError::Sql(e) => Error::unreachable("PostgreSQL", db::address(&options), FIX, e),
            LockError::TimedOut => Error::unreachable(
                "PostgreSQL",
                db::address(&options),
                FIX,
                format!("no answer within {:?}", db::CONNECT_TIMEOUT),
            ),
        })?;
        Ok(Lease { run_id: run_id.to_string(), key, options, conn: Mutex::new(Some(conn)) })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Checks that the lease is still held — one `SELECT 1` on its own
    /// connection, within `limit`. If the connection has failed (the server
    /// restarted), reconnects and takes the lock again. An error means
    /// PostgreSQL did not answer directly: not an injected fault.
    ///
    /// A `SELECT 1` that is only late keeps its connection: the session (and
    /// the lock) are still there, and sqlx reads the late answer before the
    /// next query. Dropping it would make a busy server start a new backend
    /// for every probe, each slower than the last.
    pub async fn check(&self, limit: Duration) -> std::result::Result<(), String> {
        let mut slot = self.conn.lock().await;
        let answered = match slot.as_mut() {
            Some(conn) => match tokio::time::timeout(limit, sqlx::query("SELECT 1").execute(&mut *conn)).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => return Err(format!("no answer within {limit:?}")),
            },
            None => Ok(()),
        };
        if let Err(e) = answered {
            // The session may be gone, and the lock with it: start again.
            *slot = None;
            return Err(e);
        }
        match tokio::time::timeout(limit, lock(&self.options, self.key)).await {
            Ok(Ok(conn)) => {
                tracing::info!("run {}: lease taken again after its connection failed", self.run_id);
                *slot = Some(conn);
                Ok(())
            }
            Ok(Err(LockError::Taken)) => Err(format!("the lease of run {} is held by another session", self.run_id)),
            Ok(Err(LockError::Sql(e))) => Err(e.to_string()),
            Ok(Err(LockError::TimedOut)) | Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }

    /// Gives the lease back (closing the connection would too; this says so
    /// to the server at once).
    pub async fn release(self) {
        if let Some(mut conn) = self.conn.into_inner() {
            let released = sqlx::query(include_str!("../sql/lease_release.sql"))
                .bind(LEASE_CLASS)
                .bind(self.key)
                .execute(&mut conn);
            let _ = tokio::time::timeout(Duration::from_secs(2), released).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
        }
    }
}

enum LockError {
    /// Another session holds it.
    Taken,
    Sql(sqlx::Error),
    TimedOut,
}

/// A fresh connection holding the lock `(LEASE_CLASS, key)`.
async fn lock(options: &PgConnectOptions, key: i32) -> std::result::Result<PgConnection, LockError> {
    let connect = async {
        let mut conn = PgConnection::connect_with(options).await?;
        let taken: bool = sqlx::query_scalar(include_str!("../sql/lease_acquire.sql"))
            .bind(LEASE_CLASS)
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        Ok::<_, sqlx::Error>((conn, taken))
    };
    match tokio::time::timeout(db::CONNECT_TIMEOUT, connect).await {
        Ok(Ok((conn, true))) => Ok(conn),
        Ok(Ok((_, false))) => Err(LockError::Taken),
        Ok(Err(e)) => Err(LockError::Sql(e)),
        Err(_) => Err(LockError::TimedOut),
    }
}

/// The ids of every run holding a lease right now, on any database of the
/// server `pool` is connected to.
pub async fn live_runs(pool: &PgPool) -> std::result::Result<HashSet<String>, sqlx::Error> {
    let keys: Vec<i64> =
        sqlx::query_scalar(include_str!("../sql/lease_select_live.sql")).bind(LEASE_CLASS).fetch_all(pool).await?;
    Ok(keys.into_iter().map(|k| format!("{:08x}", k as u32)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_eight_hex_digits_at_the_end_of_a_namespace() {
        assert_eq!(run_id_of("dw_naive_1a2b3c4d"), Some("1a2b3c4d"));
        assert_eq!(run_id_of("dw_cache_aside_ffffffff"), Some("ffffffff"));
        assert_eq!(run_id_of("dw_naive_0000"), None);
        assert_eq!(run_id_of("dw_naive_1A2B3C4D"), None);
        assert_eq!(run_id_of("dw__1a2b3c4d"), None);
        assert_eq!(run_id_of("xx_naive_1a2b3c4d"), None);
        assert_eq!(run_id_of("dw_doctor"), None);
    }

    #[test]
    fn a_key_is_the_ids_bits_and_prints_back_as_the_id() {
        for id in ["00000000", "1a2b3c4d", "ffffffff", "80000000"] {
            let k = key(id).unwrap();
            // pg_locks reports the key as an unsigned oid.
            assert_eq!(format!("{:08x}", k as u32), id);
        }
        assert_eq!(key("1a2b3c4"), None);
        assert_eq!(key("1a2b3c4g"), None);
    }
}
