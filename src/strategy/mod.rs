//! The strategies: ways of keeping the database, the cache and the topic in
//! step. One file each, read in this order:
//!
//! | file               | what it does                                            | how it breaks |
//! |--------------------|---------------------------------------------------------|---------------|
//! | `naive.rs`         | commit, then publish                                    | lost events |
//! | `publish_in_tx.rs` | publish inside the open transaction, then commit        | ghost events, pool exhaustion |
//! | `cache_aside.rs`   | read through Redis; commit, then delete the key         | stale cache |
//! | `outbox.rs`        | order + outbox row in one transaction; a relay publishes | duplicates only |
//! | `cdc.rs`           | write the DB only; a connector streams the WAL          | duplicates only |
//! | `outbox_cdc.rs`    | outbox messages captured from the WAL                   | duplicates only |
//! | `two_phase/`       | PREPARE TRANSACTION, a Kafka transaction, COMMIT PREPARED | blocks while in doubt |
//! | `db_only.rs`       | no cache: read the database                             | never stale; reads cost a round trip |
//! | `cache_cdc.rs`     | the connector sets the cache from the WAL, if newer     | stale only for the connector's lag |
//!
//! Each strategy is an *app* — what the writers and readers run — built by
//! [`Integration::connect`] at the start of the main phase and again after a
//! writer crash. Strategies that publish through a relay or a connector also
//! have a *background* component (see [`background`]), which a scenario can
//! crash on its own.

use std::future::Future;

use crate::db::AppDb;
use crate::error::Result;
use crate::history::{History, Order, StockAfter};
use crate::kafka::Publisher;

pub mod background;
pub mod cache_aside;
mod fill_pause;
pub mod naive;
pub mod outbox;
pub mod publish_in_tx;
mod transaction;
// CDC strategies.
pub mod cdc;
pub mod outbox_cdc;
// Two-phase commit, and its recovery.
pub mod two_phase;
// The cache tier: dropped, or kept coherent from the log.
pub mod cache_cdc;
pub mod db_only;

// The names are leaf types (`crate::names`), so that the layers below the
// strategies can name a strategy without importing one.
pub use crate::names::{Expectation, OutboxCdcMode, Strategy};
// What a strategy is built from lives below the strategies, so that the CDC
// connector can be given it without importing them.
pub use crate::env::{Env, Links};

/// What a read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// The value, or `None` if the read failed.
    pub value: Option<StockAfter>,
    /// True when the value came from the cache.
    pub from_cache: bool,
    /// True when a miss put the database's value into the cache.
    pub filled_cache: bool,
}

/// What every strategy's app does. Deliberately small: the differences
/// between strategies live in how they `write`.
pub trait Integration: Send + Sync + Sized + 'static {
    /// Opens the app's connections. Lazy: nothing is reached yet, so a link
    /// that is down is a fault the workload sees, not a setup error.
    fn connect(env: &Env) -> Result<Self>;

    /// Places one order: appends `begin`, then every leg's invoke and
    /// outcome, to the history. Never fails: a failure is an outcome.
    fn write(&self, order: &Order, history: &History) -> impl Future<Output = ()> + Send;

    /// Reads one product through the strategy's read path.
    fn read(&self, product_id: i32) -> impl Future<Output = Served> + Send;

    /// The app's connection pool, which the unrelated pool probe shares.
    fn db(&self) -> &AppDb;

    /// The app's own Kafka producer, for the strategies whose app publishes.
    fn publisher(&self) -> Option<&Publisher> {
        None
    }
}

/// The app of whichever strategy is running: enum dispatch, no `dyn`.
// One value per run (two after a writer restart): the size of the largest
// variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum App {
    Naive(naive::Naive),
    PublishInTx(publish_in_tx::PublishInTx),
    CacheAside(cache_aside::CacheAside),
    Outbox(outbox::Outbox),
    Cdc(cdc::Cdc),
    OutboxCdc(outbox_cdc::OutboxCdc),
    TwoPhase(two_phase::TwoPhase),
    DbOnly(db_only::DbOnly),
    CacheCdc(cache_cdc::CacheCdc),
}

impl App {
    pub fn connect(env: &Env) -> Result<App> {
        Ok(match env.strategy {
            Strategy::Naive => App::Naive(naive::Naive::connect(env)?),
            Strategy::PublishInTx => App::PublishInTx(publish_in_tx::PublishInTx::connect(env)?),
            Strategy::CacheAside => App::CacheAside(cache_aside::CacheAside::connect(env)?),
            Strategy::Outbox => App::Outbox(outbox::Outbox::connect(env)?),
            Strategy::Cdc => App::Cdc(cdc::Cdc::connect(env)?),
            Strategy::OutboxCdc => App::OutboxCdc(outbox_cdc::OutboxCdc::connect(env)?),
            Strategy::TwoPhase => App::TwoPhase(two_phase::TwoPhase::connect(env)?),
            Strategy::DbOnly => App::DbOnly(db_only::DbOnly::connect(env)?),
            Strategy::CacheCdc => App::CacheCdc(cache_cdc::CacheCdc::connect(env)?),
        })
    }

    pub async fn write(&self, order: &Order, history: &History) {
        match self {
            App::Naive(s) => s.write(order, history).await,
            App::PublishInTx(s) => s.write(order, history).await,
            App::CacheAside(s) => s.write(order, history).await,
            App::Outbox(s) => s.write(order, history).await,
            App::Cdc(s) => s.write(order, history).await,
            App::OutboxCdc(s) => s.write(order, history).await,
            App::TwoPhase(s) => s.write(order, history).await,
            App::DbOnly(s) => s.write(order, history).await,
            App::CacheCdc(s) => s.write(order, history).await,
        }
    }

    pub async fn read(&self, product_id: i32) -> Served {
        match self {
            App::Naive(s) => s.read(product_id).await,
            App::PublishInTx(s) => s.read(product_id).await,
            App::CacheAside(s) => s.read(product_id).await,
            App::Outbox(s) => s.read(product_id).await,
            App::Cdc(s) => s.read(product_id).await,
            App::OutboxCdc(s) => s.read(product_id).await,
            App::TwoPhase(s) => s.read(product_id).await,
            App::DbOnly(s) => s.read(product_id).await,
            App::CacheCdc(s) => s.read(product_id).await,
        }
    }

    pub fn db(&self) -> &AppDb {
        match self {
            App::Naive(s) => s.db(),
            App::PublishInTx(s) => s.db(),
            App::CacheAside(s) => s.db(),
            App::Outbox(s) => s.db(),
            App::Cdc(s) => s.db(),
            App::OutboxCdc(s) => s.db(),
            App::TwoPhase(s) => s.db(),
            App::DbOnly(s) => s.db(),
            App::CacheCdc(s) => s.db(),
        }
    }

    fn publisher(&self) -> Option<&Publisher> {
        match self {
            App::Naive(s) => s.publisher(),
            App::PublishInTx(s) => s.publisher(),
            App::CacheAside(s) => s.publisher(),
            App::Outbox(s) => s.publisher(),
            App::Cdc(s) => s.publisher(),
            App::OutboxCdc(s) => s.publisher(),
            App::TwoPhase(s) => s.publisher(),
            App::DbOnly(s) => s.publisher(),
            App::CacheCdc(s) => s.publisher(),
        }
    }

    /// Starts the app's Kafka producer before the workload, as a service's
    /// would be running before its first order: connected, with the topic's
    /// metadata and its producer id. Without it, a run whose Kafka is slow
    /// from its first second (postgres-resets) spends the producer's first
    /// delivery timeout on its handshake, and what fails is the start-up,
    /// not the strategy. Best effort, bounded by `limit`.
    pub async fn warm_up(&self, limit: std::time::Duration) {
        if let Some(publisher) = self.publisher() {
            publisher.warm_up(limit).await;
        }
    }
}

impl Strategy {
    /// Whether the strategy publishes events (and so can lose them).
    pub fn publishes(self) -> bool {
        !matches!(self, Strategy::CacheAside | Strategy::DbOnly | Strategy::CacheCdc)
    }

    /// Whether the strategy has a cache (and so can serve stale values).
    pub fn caches(self) -> bool {
        matches!(self, Strategy::CacheAside | Strategy::CacheCdc)
    }

    /// Whether a run of this strategy gets a database of its own rather than
    /// only a schema. Logical decoding reads the whole database's WAL and must
    /// map every change to its table, other runs' included: a run that creates
    /// or drops tables while a slot decodes can leave the slot unable to
    /// decode ("could not map filenode to relation OID"), for good. Changes in
    /// other databases are skipped before any such lookup, so a database per
    /// CDC run keeps every other run out of its log.
    pub fn needs_own_database(self) -> bool {
        matches!(self, Strategy::Cdc | Strategy::OutboxCdc | Strategy::CacheCdc)
    }

    /// Whether the strategy leaves prepared transactions (two-phase).
    pub fn prepares(self) -> bool {
        matches!(self, Strategy::TwoPhase)
    }
}

/// Creates what a strategy needs beyond the common schema (e.g. a
/// replication slot and publication for the CDC strategies).
pub async fn prepare(env: &Env) -> Result<()> {
    match env.strategy {
        Strategy::Naive
        | Strategy::PublishInTx
        | Strategy::CacheAside
        | Strategy::Outbox
        | Strategy::TwoPhase
        | Strategy::DbOnly => Ok(()),
        // A replication slot and a publication, named after the run.
        Strategy::Cdc | Strategy::OutboxCdc | Strategy::CacheCdc => crate::cdc::prepare(env).await,
    }
}

/// Removes what [`prepare`] created.
pub async fn cleanup(env: &Env) -> Result<()> {
    match env.strategy {
        // The slot first: an orphaned one keeps WAL for ever.
        Strategy::Cdc | Strategy::OutboxCdc | Strategy::CacheCdc => crate::cdc::cleanup(env).await,
        // Prepared transactions left in doubt hold locks and WAL for ever.
        Strategy::TwoPhase => two_phase::recovery::roll_back_all(env).await,
        _ => Ok(()),
    }
}
