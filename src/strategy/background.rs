//! Background components: the outbox relay and the CDC connector.
//!
//! They run beside the app, reach Postgres through their own link
//! (`postgres_relay`), and can be crashed and restarted by a scenario on
//! their own. naive, publish-in-tx and cache-aside have none.

use crate::cdc::Connector;
use crate::error::Result;
use crate::history::History;
use crate::snapshot::Backlog;

use super::{Env, Strategy};

/// A strategy's background component, if it has one.
#[derive(Debug)]
pub enum Background {
    /// The strategy publishes from the app itself (or not at all).
    None,
    /// cdc and outbox-cdc: the connector streaming the run's replication slot.
    Connector(Connector),
}

impl Background {
    /// Starts the strategy's background component.
    pub async fn start(env: &Env, _history: &History) -> Result<Background> {
        match env.strategy {
            Strategy::Cdc | Strategy::OutboxCdc => Ok(Background::Connector(Connector::start(env).await?)),
            _ => Ok(Background::None),
        }
    }

    /// The process-death imitation: the component stops at once, mid-work.
    pub async fn crash(&mut self) {
        match self {
            Background::Connector(c) => c.crash().await,
            Background::None => {}
        }
    }

    /// Starts the component again after a crash, from its stored position.
    pub async fn restart(&mut self, env: &Env, _history: &History) -> Result<()> {
        match self {
            Background::Connector(c) => c.restart(env),
            Background::None => Ok(()),
        }
    }

    /// True when the component has published everything committed so far.
    pub async fn caught_up(&self, _env: &Env) -> bool {
        match self {
            Background::Connector(c) => c.caught_up().await,
            Background::None => true,
        }
    }

    /// What the component left unpublished (for the snapshot).
    pub async fn backlog(&self, _env: &Env) -> Option<Backlog> {
        match self {
            Background::Connector(c) => Some(c.backlog().await),
            Background::None => None,
        }
    }

    /// Stops the component for good.
    pub async fn stop(self) {
        match self {
            Background::Connector(c) => c.stop().await,
            Background::None => {}
        }
    }
}
