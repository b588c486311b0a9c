//! Background components: the outbox relay and the CDC connector.
//!
//! They run beside the app, reach Postgres through their own link
//! (`postgres_relay`), and can be crashed and restarted by a scenario on
//! their own. naive, publish-in-tx and cache-aside have none.

use crate::error::Result;
use crate::history::History;
use crate::snapshot::Backlog;

use super::Env;

/// A strategy's background component, if it has one.
#[derive(Debug)]
pub enum Background {
    /// The strategy publishes from the app itself (or not at all).
    None,
}

impl Background {
    /// Starts the strategy's background component.
    pub async fn start(env: &Env, _history: &History) -> Result<Background> {
        match env.strategy {
            _ => Ok(Background::None),
        }
    }

    /// The process-death imitation: the component stops at once, mid-work.
    pub async fn crash(&mut self) {}

    /// Starts the component again after a crash, from its stored position.
    pub async fn restart(&mut self, _env: &Env, _history: &History) -> Result<()> {
        Ok(())
    }

    /// True when the component has published everything committed so far.
    pub async fn caught_up(&self, _env: &Env) -> bool {
        true
    }

    /// What the component left unpublished (for the snapshot).
    pub async fn backlog(&self, _env: &Env) -> Option<Backlog> {
        None
    }

    /// Stops the component for good.
    pub async fn stop(self) {}
}
