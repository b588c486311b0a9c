//! The closed set of strategy names: one name, three spellings
//! (`run outbox`, `Strategy::Outbox`, `strategy/outbox.rs`).

use serde::{Deserialize, Serialize};

/// Every way dualwrite knows of keeping the database, the cache and the topic
/// in step. The order here is the order `compare` shows them: from the
/// naive dual write to the fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Strategy {
    /// Commit the DB transaction, then publish to Kafka.
    Naive,
    /// Publish to Kafka inside the open DB transaction, then commit.
    PublishInTx,
    /// Reads from Redis (filled from the DB on a miss); writes commit the DB,
    /// then delete the cached key.
    CacheAside,
    /// The order and an outbox row in one transaction; a relay publishes rows.
    Outbox,
    /// The app writes only the DB; a connector streams the WAL to Kafka.
    Cdc,
    /// Outbox messages captured from the WAL instead of polled.
    OutboxCdc,
    /// Two-phase commit: PREPARE TRANSACTION, a Kafka transaction, then
    /// COMMIT PREPARED, with a coordinator log and recovery.
    TwoPhase,
    /// No cache: reads go to the database (the baseline of the cache lessons).
    DbOnly,
    /// Reads from Redis; a CDC connector sets each committed change in the
    /// cache, only if newer; fills on a miss are version-checked too.
    CacheCdc,
}

impl Strategy {
    /// All strategies, in `compare` order.
    pub const ALL: [Strategy; 9] = [
        Strategy::Naive,
        Strategy::PublishInTx,
        Strategy::CacheAside,
        Strategy::Outbox,
        Strategy::Cdc,
        Strategy::OutboxCdc,
        Strategy::TwoPhase,
        Strategy::DbOnly,
        Strategy::CacheCdc,
    ];

    /// The name users type (`publish-in-tx`).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Naive => "naive",
            Strategy::PublishInTx => "publish-in-tx",
            Strategy::CacheAside => "cache-aside",
            Strategy::Outbox => "outbox",
            Strategy::Cdc => "cdc",
            Strategy::OutboxCdc => "outbox-cdc",
            Strategy::TwoPhase => "two-phase",
            Strategy::DbOnly => "db-only",
            Strategy::CacheCdc => "cache-cdc",
        }
    }

    /// Parses the name users type; `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a scenario expects a strategy's verdict to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    Consistent,
    Inconsistent,
    /// Either verdict is acceptable (the scenario makes no claim).
    Any,
}

impl Expectation {
    pub fn as_str(self) -> &'static str {
        match self {
            Expectation::Consistent => "consistent",
            Expectation::Inconsistent => "inconsistent",
            Expectation::Any => "any",
        }
    }
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How outbox-cdc puts its events in the WAL (`--outbox-cdc-mode`): an
/// option of that one strategy, so it lives with the strategy names rather
/// than in the CLI that spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutboxCdcMode {
    /// `pg_logical_emit_message(true, ...)` in the business transaction.
    Message,
    /// A row in an outbox table, decoded from the WAL.
    Table,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_every_spelling() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::from_name(s.name()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.name()));
            use clap::ValueEnum;
            assert_eq!(Strategy::from_str(s.name(), false).unwrap(), s);
        }
    }
}
