//! What runs left behind: found by name, judged by lease, removed only when
//! no live run owns it.
//!
//! Every run names what it creates after itself (`dw_<strategy>_<id>`, see
//! [`crate::lease`]): a schema (or, for a CDC run, a database of its own), a
//! replication slot and a publication, a topic, Redis keys under
//! `dw_<strategy>_<id>:`. A run removes them when it ends. What is still
//! there belongs to a run that is over — kept with `--keep`, or stopped
//! before its cleanup could finish (a third Ctrl-C, SIGKILL, a crash, a store
//! that died) — or to a run that is still going, which holds a lease.
//!
//! [`survey`] lists everything named like a run, *then* reads the leases:
//! a run takes its lease before it creates anything, so whatever the listing
//! found belongs to a run that held its lease by then, and a lease missing
//! afterwards means that run is over. [`remove_dead`] removes only those.
//!
//! A kind of leftover is one more `Part`: listed in [`survey`] (before the
//! leases are read), filed under its run, removed in [`remove_dead`]. The
//! prepared transactions a two-phase run can leave (`pg_prepared_xacts`,
//! gid `dw2pc:<run>:<order>`) hold their row locks and keep WAL like a
//! slot; a dead run's are rolled back — its coordinator is gone, and with
//! its schema goes the log that could have said commit.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgPool, Row};

use crate::db::{self, quote_ident};
use crate::kafka::quiet::Quiet;
use crate::lease;

/// The comment a `--keep` run puts on its schema (or CDC database), so that
/// what it kept on purpose is not reported as left behind by accident.
pub const KEPT_NOTE: &str = "dualwrite: kept with --keep";

/// The command that removes what dead runs left.
pub const REMOVE_COMMAND: &str = "dualwrite doctor --drop-stale";

/// How long a look at one store may take.
pub const LOOK_LIMIT: Duration = Duration::from_secs(2);

/// What one run left in the stores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remains {
    /// The namespace's name, `dw_<strategy>_<id>`.
    pub name: String,
    /// Its run holds a lease: it is still going, and nothing here is touched.
    pub live: bool,
    /// It was kept on purpose (`--keep`).
    pub kept: bool,
    pub schema: bool,
    pub database: bool,
    pub slot: Option<Slot>,
    /// A publication in the database --database-url names (a CDC run's own
    /// publication lives in its database and goes with it).
    pub publication: bool,
    pub cache_keys: Vec<String>,
    pub topic: bool,
    /// two-phase: prepared transactions still in `pg_prepared_xacts`.
    pub prepared: Vec<Prepared>,
}

/// A prepared transaction a two-phase run left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub gid: String,
    /// The database it was prepared in (it is resolved from there).
    pub database: String,
}

/// A replication slot a run created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub active: bool,
    /// The database it decodes (a logical slot is dropped from there).
    pub database: String,
    /// WAL the server keeps for it.
    pub wal_bytes: u64,
}

impl Remains {
    /// `schema, replication slot (inactive, keeping 3.1 MB of WAL), 6 cache keys`
    pub fn parts(&self) -> String {
        let mut parts = Vec::new();
        if self.database {
            parts.push("database".to_string());
        }
        if self.schema {
            parts.push("schema".to_string());
        }
        if let Some(slot) = &self.slot {
            parts.push(format!(
                "replication slot ({}, keeping {} of WAL)",
                if slot.active { "active" } else { "inactive" },
                bytes(slot.wal_bytes)
            ));
        }
        if self.publication {
            parts.push("publication".to_string());
        }
        if !self.prepared.is_empty() {
            let n = self.prepared.len();
            parts.push(format!("{n} prepared transaction{} (holding locks)", if n == 1 { "" } else { "s" }));
        }
        if !self.cache_keys.is_empty() {
            parts.push(format!(
                "{} cache key{}",
                self.cache_keys.len(),
                if self.cache_keys.len() == 1 { "" } else { "s" }
            ));
        }
        if self.topic {
            parts.push("topic".to_string());
        }
        parts.join(", ")
    }
}

/// Everything named like a run, in every store that could be looked at.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    /// By namespace name.
    pub runs: Vec<Remains>,
    /// `dw_*` names that are not a run's namespace: never touched.
    pub foreign: Vec<String>,
    /// Stores that could not be looked at, and why.
    pub unchecked: Vec<String>,
}

impl Survey {
    /// Runs that are over and were not kept on purpose: stopped before
    /// their cleanup finished.
    pub fn abandoned(&self) -> impl Iterator<Item = &Remains> {
        self.runs.iter().filter(|r| !r.live && !r.kept)
    }

    /// Runs that are over (kept ones included): what `--drop-stale` removes.
    pub fn dead(&self) -> impl Iterator<Item = &Remains> {
        self.runs.iter().filter(|r| !r.live)
    }

    /// A one-line notice for the start of `run` and `compare`, if runs
    /// were abandoned: what each left, and the one command that removes it.
    pub fn notice(&self) -> Option<String> {
        let abandoned: Vec<&Remains> = self.abandoned().collect();
        if abandoned.is_empty() {
            return None;
        }
        let shown: Vec<String> = abandoned.iter().take(3).map(|r| format!("{} ({})", r.name, r.parts())).collect();
        let more = if abandoned.len() > 3 { format!(" and {} more", abandoned.len() - 3) } else { String::new() };
        Some(format!(
            "note: {} earlier run{} stopped before cleaning up and left {}{more}; `{REMOVE_COMMAND}` removes {}",
            abandoned.len(),
            if abandoned.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if abandoned.len() == 1 { "it" } else { "them" },
        ))
    }
}

/// Where to look.
#[derive(Debug, Clone, Copy)]
pub struct Stores<'a> {
    pub db: &'a PgConnectOptions,
    /// Redis, if it should be looked at.
    pub redis_url: Option<&'a str>,
    /// A Kafka bootstrap address reaching the broker directly, if any.
    pub brokers: Option<&'a str>,
}

/// Lists what runs left, each store within [`LOOK_LIMIT`], then reads the
/// leases. Never fails: what could not be looked at is named in `unchecked`.
pub async fn survey(stores: Stores<'_>) -> Survey {
    let mut survey = Survey::default();
    let pool = match tokio::time::timeout(LOOK_LIMIT, db::connect_direct(stores.db, None, 1)).await {
        Ok(Ok(pool)) => pool,
        Ok(Err(e)) => {
            survey.unchecked.push(format!("PostgreSQL: {}", crate::error::chain(&e)));
            return survey;
        }
        Err(_) => {
            survey.unchecked.push(format!("PostgreSQL at {}: no answer within {LOOK_LIMIT:?}", db::address(stores.db)));
            return survey;
        }
    };
    // The three stores at once: a slow one does not delay the others.
    let (postgres, keys, topics) = tokio::join!(
        bounded(list_postgres(&pool)),
        async {
            match stores.redis_url {
                Some(url) => Some(bounded(list_keys(url)).await),
                None => None,
            }
        },
        async {
            match stores.brokers {
                Some(brokers) => Some(bounded(list_topics(brokers.to_string())).await),
                None => None,
            }
        },
    );
    // Only now the leases (see the module doc for why the order matters).
    let live = bounded(async { lease::live_runs(&pool).await.map_err(|e| e.to_string()) }).await;
    pool.close().await;

    let mut runs: BTreeMap<String, Remains> = BTreeMap::new();
    let mut foreign = Vec::new();
    // The run a name belongs to; a name that is not a run's goes to `foreign`.
    let mut entry = |name: &str| -> Option<String> {
        if lease::run_id_of(name).is_none() {
            foreign.push(name.to_string());
            return None;
        }
        runs.entry(name.to_string()).or_insert_with(|| Remains { name: name.to_string(), ..Remains::default() });
        Some(name.to_string())
    };
    let mut found: Vec<(String, Part)> = Vec::new();
    match postgres {
        Ok(listed) => {
            for (name, note) in listed.schemas {
                found.extend(entry(&name).map(|n| (n, Part::Schema { kept: note == KEPT_NOTE })));
            }
            for (name, note) in listed.databases {
                found.extend(entry(&name).map(|n| (n, Part::Database { kept: note == KEPT_NOTE })));
            }
            for (name, slot) in listed.slots {
                found.extend(entry(&name).map(|n| (n, Part::Slot(slot))));
            }
            for name in listed.publications {
                found.extend(entry(&name).map(|n| (n, Part::Publication)));
            }
            for (name, prepared) in listed.prepared {
                found.extend(entry(&name).map(|n| (n, Part::Prepared(prepared))));
            }
        }
        Err(e) => survey.unchecked.push(format!("PostgreSQL: {e}")),
    }
    match keys {
        Some(Ok(keys)) => {
            for key in keys {
                let prefix = key.split(':').next().unwrap_or_default().to_string();
                found.extend(entry(&prefix).map(|n| (n, Part::CacheKey(key))));
            }
        }
        Some(Err(e)) => survey.unchecked.push(format!("Redis: {e}")),
        None => {}
    }
    match topics {
        Some(Ok(topics)) => {
            for topic in topics {
                found.extend(entry(&topic).map(|n| (n, Part::Topic)));
            }
        }
        Some(Err(e)) => survey.unchecked.push(format!("Kafka: {e}")),
        None => {}
    }
    for (name, part) in found {
        let r = runs.get_mut(&name).expect("entry() made it");
        match part {
            Part::Schema { kept } => {
                r.schema = true;
                r.kept |= kept;
            }
            Part::Database { kept } => {
                r.database = true;
                r.kept |= kept;
            }
            Part::Slot(slot) => r.slot = Some(slot),
            Part::Publication => r.publication = true,
            Part::Prepared(p) => r.prepared.push(p),
            Part::CacheKey(key) => r.cache_keys.push(key),
            Part::Topic => r.topic = true,
        }
    }
    foreign.sort();
    foreign.dedup();
    survey.foreign = foreign;
    match live {
        Ok(live) => {
            for r in runs.values_mut() {
                r.live = lease::run_id_of(&r.name).is_some_and(|id| live.contains(id));
            }
        }
        Err(e) => {
            // Without the leases, nothing can be judged dead: treat all as live.
            survey.unchecked.push(format!("PostgreSQL leases (nothing will be removed): {e}"));
            for r in runs.values_mut() {
                r.live = true;
            }
        }
    }
    survey.runs = runs.into_values().collect();
    survey
}

/// One thing found, before it is filed under its run.
enum Part {
    Schema { kept: bool },
    Database { kept: bool },
    Slot(Slot),
    Publication,
    Prepared(Prepared),
    CacheKey(String),
    Topic,
}

/// Bounds one look by [`LOOK_LIMIT`].
async fn bounded<T>(look: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(LOOK_LIMIT, look).await.unwrap_or_else(|_| Err(format!("no answer within {LOOK_LIMIT:?}")))
}

#[derive(Default)]
struct PostgresFound {
    schemas: Vec<(String, String)>,
    databases: Vec<(String, String)>,
    slots: Vec<(String, Slot)>,
    publications: Vec<String>,
    prepared: Vec<(String, Prepared)>,
}

async fn list_postgres(pool: &PgPool) -> Result<PostgresFound, String> {
    let named = |rows: Vec<sqlx::postgres::PgRow>| -> Vec<(String, String)> {
        rows.iter().map(|r| (r.get("name"), r.get("note"))).collect()
    };
    let e = |e: sqlx::Error| e.to_string();
    let schemas =
        named(sqlx::query(include_str!("../sql/leftover_select_schemas.sql")).fetch_all(pool).await.map_err(e)?);
    let databases =
        named(sqlx::query(include_str!("../sql/leftover_select_databases.sql")).fetch_all(pool).await.map_err(e)?);
    let slots = sqlx::query(include_str!("../sql/leftover_select_slots.sql"))
        .fetch_all(pool)
        .await
        .map_err(e)?
        .iter()
        .map(|r| {
            let slot = Slot {
                active: r.get("active"),
                database: r.get("database"),
                wal_bytes: r.get::<i64, _>("wal_bytes").max(0) as u64,
            };
            (r.get("name"), slot)
        })
        .collect();
    let publications =
        sqlx::query_scalar(include_str!("../sql/leftover_select_publications.sql")).fetch_all(pool).await.map_err(e)?;
    let prepared = sqlx::query(include_str!("../sql/leftover_select_prepared.sql"))
        .fetch_all(pool)
        .await
        .map_err(e)?
        .iter()
        .map(|r| (r.get("name"), Prepared { gid: r.get("gid"), database: r.get("database") }))
        .collect();
    Ok(PostgresFound { schemas, databases, slots, publications, prepared })
}

/// Every Redis key named like a run's. SCAN with a large COUNT: a few round
/// trips even on a Redis holding a million keys, and it never blocks Redis
/// the way KEYS would.
async fn list_keys(url: &str) -> Result<Vec<String>, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("dw_*")
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Every topic named like a run's, from the broker's metadata.
async fn list_topics(brokers: String) -> Result<Vec<String>, String> {
    let config = crate::kafka::topic::consumer_config(&brokers, "dualwrite-doctor");
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer<Quiet> = config.create_with_context(Quiet).map_err(|e| e.to_string())?;
        // Under the bound, so that the blocking call ends by itself.
        let metadata =
            consumer.fetch_metadata(None, LOOK_LIMIT - Duration::from_millis(200)).map_err(|e| e.to_string())?;
        Ok(metadata.topics().iter().map(|t| t.name().to_string()).filter(|n| n.starts_with("dw_")).collect())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Removes what the dead runs of `survey` left — never anything of a live
/// run. Returns what was removed and what could not be, one line each.
pub async fn remove_dead(stores: Stores<'_>, survey: &Survey) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut failed) = (Vec::new(), Vec::new());
    let dead: Vec<&Remains> = survey.dead().collect();
    if dead.is_empty() {
        return (removed, failed);
    }
    let pool = match db::connect_direct(stores.db, None, 1).await {
        Ok(pool) => pool,
        Err(e) => {
            failed.push(format!("nothing removed: {}", crate::error::chain(&e)));
            return (removed, failed);
        }
    };
    for run in dead {
        let mut done = Vec::new();
        let mut note = |result: Result<(), String>, what: &str, done: &mut Vec<String>| match result {
            Ok(()) => done.push(what.to_string()),
            Err(e) => failed.push(format!("{} {what}: {e}", run.name)),
        };
        // The slot first: a database holding a slot cannot be dropped, and
        // a slot nobody reads keeps WAL on the server for ever.
        if let Some(slot) = &run.slot {
            let result = if slot.active {
                Err("still active (a walsender streams it); not dropped".to_string())
            } else {
                drop_slot(stores.db, &slot.database, &run.name).await
            };
            note(result, "replication slot", &mut done);
        }
        // Prepared transactions before the schema: they hold locks on its
        // rows, so DROP SCHEMA would wait for them for ever.
        if !run.prepared.is_empty() {
            let n = run.prepared.len();
            let result = rollback_prepared(stores.db, &run.prepared).await;
            note(
                result,
                &format!("{n} prepared transaction{} (rolled back)", if n == 1 { "" } else { "s" }),
                &mut done,
            );
        }
        if run.publication {
            let sql = format!("DROP PUBLICATION IF EXISTS {}", quote_ident(&run.name));
            note(execute(&pool, &sql).await, "publication", &mut done);
        }
        if run.schema {
            let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&run.name));
            note(execute(&pool, &sql).await, "schema", &mut done);
        }
        if run.database {
            let result = db::drop_database(stores.db, &run.name).await.map_err(|e| crate::error::chain(&e));
            note(result, "database", &mut done);
        }
        if !run.cache_keys.is_empty() {
            if let Some(url) = stores.redis_url {
                let n = run.cache_keys.len();
                let result = bounded(delete_keys(url, &run.cache_keys)).await;
                note(result, &format!("{n} cache key{}", if n == 1 { "" } else { "s" }), &mut done);
            }
        }
        if run.topic {
            if let Some(brokers) = stores.brokers {
                // delete_topic logs its own failure; a topic is small.
                crate::kafka::topic::delete_topic(brokers, &run.name).await;
                done.push("topic".to_string());
            }
        }
        if !done.is_empty() {
            let kept = if run.kept { ", kept with --keep" } else { "" };
            removed.push(format!("{} ({}{kept})", run.name, done.join(", ")));
        }
    }
    pool.close().await;
    (removed, failed)
}

async fn execute(pool: &PgPool, sql: &str) -> Result<(), String> {
    bounded(async { sqlx::query(sql).execute(pool).await.map(drop).map_err(|e| e.to_string()) }).await
}

/// Drops an inactive logical slot, from the database it lives in.
async fn drop_slot(options: &PgConnectOptions, database: &str, slot: &str) -> Result<(), String> {
    let options = if database.is_empty() { options.clone() } else { options.clone().database(database) };
    let there = db::connect_direct(&options, None, 1).await.map_err(|e| crate::error::chain(&e))?;
    let result = execute(&there, &format!("SELECT pg_drop_replication_slot('{}')", slot.replace('\'', "''"))).await;
    there.close().await;
    result
}

/// Rolls back prepared transactions, each from the database it lives in
/// (PostgreSQL resolves a prepared transaction only from there).
async fn rollback_prepared(options: &PgConnectOptions, prepared: &[Prepared]) -> Result<(), String> {
    let mut errors = Vec::new();
    for p in prepared {
        let there = options.clone().database(&p.database);
        let pool = match db::connect_direct(&there, None, 1).await {
            Ok(pool) => pool,
            Err(e) => {
                errors.push(crate::error::chain(&e));
                continue;
            }
        };
        let sql = format!("ROLLBACK PREPARED '{}'", p.gid.replace('\'', "''"));
        if let Err(e) = execute(&pool, &sql).await {
            errors.push(e);
        }
        pool.close().await;
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

async fn delete_keys(url: &str, keys: &[String]) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
    redis::AsyncCommands::del::<_, ()>(&mut conn, keys).await.map_err(|e| e.to_string())
}

/// Marks what a `--keep` run leaves as kept on purpose: its schema, and its
/// database for a CDC run (whose schema lives inside it).
pub async fn mark_kept(db_options: &PgConnectOptions, schema_db: &PgConnectOptions, name: &str, own_database: bool) {
    let comment = |what: &str| format!("COMMENT ON {what} {} IS '{KEPT_NOTE}'", quote_ident(name));
    let mark = async {
        let pool = db::connect_direct(schema_db, None, 1).await.map_err(|e| crate::error::chain(&e))?;
        let result = execute(&pool, &comment("SCHEMA")).await;
        pool.close().await;
        result?;
        if own_database {
            let pool = db::connect_direct(db_options, None, 1).await.map_err(|e| crate::error::chain(&e))?;
            let result = execute(&pool, &comment("DATABASE")).await;
            pool.close().await;
            result?;
        }
        Ok::<_, String>(())
    };
    if let Err(e) = mark.await {
        tracing::warn!("could not mark {name} as kept ({e}); `dualwrite doctor` will list it as left behind");
    }
}

/// `3.1 MB`
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} kB", n as f64 / (1u64 << 10) as f64),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remains(name: &str) -> Remains {
        Remains { name: name.into(), ..Remains::default() }
    }

    #[test]
    fn parts_say_what_is_left_and_what_a_slot_costs() {
        let r = Remains {
            database: true,
            slot: Some(Slot { active: false, database: "dw_cdc_1a2b3c4d".into(), wal_bytes: 3 << 20 }),
            cache_keys: vec!["a".into(), "b".into()],
            ..remains("dw_cdc_1a2b3c4d")
        };
        assert_eq!(r.parts(), "database, replication slot (inactive, keeping 3.0 MB of WAL), 2 cache keys");
    }

    #[test]
    fn the_notice_names_only_abandoned_runs_and_the_command() {
        let mut survey = Survey::default();
        assert_eq!(survey.notice(), None);
        survey.runs = vec![
            Remains { schema: true, ..remains("dw_naive_00000001") },
            Remains { schema: true, live: true, ..remains("dw_naive_00000002") },
            Remains { schema: true, kept: true, ..remains("dw_naive_00000003") },
        ];
        let notice = survey.notice().unwrap();
        assert!(notice.contains("1 earlier run stopped before cleaning up"), "{notice}");
        assert!(notice.contains("dw_naive_00000001 (schema)"), "{notice}");
        assert!(!notice.contains("00000002") && !notice.contains("00000003"), "{notice}");
        assert!(notice.ends_with("`dualwrite doctor --drop-stale` removes it"), "{notice}");
        assert_eq!(survey.dead().count(), 2);
    }
}
