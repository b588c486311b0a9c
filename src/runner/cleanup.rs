//! The cleanup phase: what a run made, it removes — on every path, and in
//! an order the stores accept.
//!
//! PostgreSQL refuses to drop a database that a replication slot still
//! decodes, and a slot nobody reads keeps every byte of WAL written after it
//! for ever, filling the server's disk: so the slot goes first, then the
//! schema, then the database. The topic and the cache keys follow; the lease
//! goes last, because until the namespace is gone `doctor --drop-stale` must
//! keep its hands off it.
//!
//! Cleanup never fails. A step that cannot be done — the store is down, the
//! server refused — is named on one line at the end with the command that
//! removes it later, and the other steps still run: one leftover is better
//! than five.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::leftovers::REMOVE_COMMAND;

use super::Run;

impl Run<'_> {
    /// cleanup: removes the namespace — the strategy's slot and publication
    /// first (a database with a slot cannot be dropped, and an orphaned slot
    /// keeps WAL for ever), then the schema, the database, the topic, the
    /// cache keys — unless --keep; then gives the lease back. Never fails:
    /// whatever could not be removed is named on one line, with the command
    /// that removes it later.
    pub async fn cleanup(&mut self) {
        if self.plan.keep {
            // Marked, so that the next run and `doctor` call it kept, not
            // abandoned.
            if self.created.schema {
                let own = self.namespace.database.is_some();
                crate::leftovers::mark_kept(&self.infra.db, &self.env.db, &self.namespace.run_id, own).await;
            }
        } else {
            self.enter("cleanup");
            let left = self.remove_namespace().await;
            if !left.is_empty() {
                crate::signals::say(&format!(
                    "warning: {} left behind: {}; `{REMOVE_COMMAND}` removes it once the store is back",
                    self.namespace.run_id,
                    left.join("; ")
                ));
            }
        }
        // Kept or reported above: either way the user has been told, and a
        // later Ctrl-C (during the next strategy of a compare) must not
        // name this run's parts again.
        for what in self.interrupt.held().into_keys() {
            if what.contains(&self.namespace.run_id) {
                self.interrupt.release(&what);
            }
        }
        if let Some(lease) = self.lease.take() {
            // The watch that shared the lease has stopped, so this is its last
            // handle; if an error path left a probe unfinished, the lock
            // goes when that probe's connection closes instead.
            if let Ok(lease) = Arc::try_unwrap(lease) {
                lease.release().await;
            }
        }
    }

    /// Removes what prepare created; returns what could not be removed.
    async fn remove_namespace(&self) -> Vec<String> {
        let name = &self.namespace.run_id;
        let mut left = Vec::new();
        let postgres_dead = self.dead_store == Some("PostgreSQL");
        // A step done is no longer held (a third Ctrl-C will not name it);
        // a step failed is named at the end, with its cause.
        let step = |result: Result<()>, what: String, left: &mut Vec<String>| match result {
            Ok(()) => self.interrupt.release(&what),
            Err(e) => left.push(format!("{what} ({})", crate::error::chain(&e))),
        };
        if postgres_dead {
            // Each step would wait its connect timeout on a store that is
            // gone; say what stays instead, at once.
            let parts = [
                (self.created.strategy && self.plan.strategy.needs_own_database(), "replication slot"),
                (self.created.schema, "schema"),
                (self.created.database, "database"),
            ];
            for (_, part) in parts.iter().filter(|(made, _)| *made) {
                left.push(format!("{part} {name} (PostgreSQL is down)"));
            }
        } else {
            if self.created.strategy {
                // A CDC run's slot; a two-phase run's prepared transactions
                // (they hold row locks: DROP SCHEMA would wait behind them).
                let what = if self.plan.strategy.prepares() { "prepared transactions" } else { "replication slot" };
                step(crate::strategy::cleanup(&self.env).await, format!("{what} {name}"), &mut left);
            }
            match self.namespace.database.as_ref().filter(|_| self.created.database) {
                // A run with a database of its own: its schema goes with it.
                Some(database) => {
                    let dropped = crate::db::drop_database(&self.infra.db, database).await;
                    if dropped.is_ok() && self.created.schema {
                        self.interrupt.release(&format!("schema {name}"));
                    }
                    step(dropped, format!("database {name}"), &mut left);
                }
                None if self.created.schema => {
                    let dropped = crate::db::drop_schema(&self.env.db, &self.namespace.schema).await;
                    step(dropped, format!("schema {name}"), &mut left);
                }
                None => {}
            }
        }
        // The embedded broker's topics end with the process.
        if self.created.topic && self.infra.embedded.is_none() {
            if self.dead_store == Some("Kafka") {
                // Deleting would wait out the admin timeout on a dead broker.
                left.push(format!("topic {name} (Kafka is down)"));
            } else {
                // Best effort, logged inside: a leftover topic holds a few records.
                crate::kafka::topic::delete_topic(&self.infra.kafka, &self.namespace.topic).await;
                self.interrupt.release(&format!("topic {name}"));
            }
        }
        if self.plan.strategy.caches() && self.created.schema {
            let what = format!("cache keys {}*", self.namespace.redis_prefix);
            if self.dead_store == Some("Redis") {
                left.push(format!("{what} (Redis is down)"));
            } else {
                let deleted = async {
                    let cache =
                        Cache::new(&self.env.redis_url, None, &self.namespace.redis_prefix, Duration::from_secs(5))?;
                    cache
                        .delete_all()
                        .await
                        .map_err(|e| Error::refused("Redis", cache.address().to_string(), format!("delete {what}"), e))
                };
                step(deleted.await, what, &mut left);
            }
        }
        left
    }
}
