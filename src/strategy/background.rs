//! Background components: the outbox relay and the CDC connector.
//!
//! They run beside the app, reach Postgres through their own link
//! (`postgres_relay`), and a scenario can crash and restart them on their
//! own. naive, publish-in-tx and cache-aside have none.

use crate::error::Result;
use crate::history::History;
use crate::snapshot::Backlog;

use super::outbox::relay::Relays;
use super::{Env, Strategy};
use crate::scenario::schedule::Component;

/// A strategy's background component, if it has one.
pub enum Background {
    /// The strategy publishes from the app itself (or not at all).
    None,
    /// outbox: the relays.
    Relay(Relays),
}

impl Background {
    /// Starts the strategy's background component.
    pub async fn start(env: &Env, _history: &History) -> Result<Background> {
        Ok(match env.strategy {
            Strategy::Outbox => Background::Relay(Relays::start(env).await?),
            _ => Background::None,
        })
    }

    /// Whether this is the component a scenario names (a relay crash does
    /// nothing to a strategy without a relay).
    pub fn is(&self, component: Component) -> bool {
        matches!((self, component), (Background::Relay(_), Component::Relay))
    }

    /// The process-death imitation: the component stops at once, mid-work.
    pub async fn crash(&mut self) {
        match self {
            Background::None => {}
            Background::Relay(relays) => relays.crash().await,
        }
    }

    /// Starts the component again after a crash, from its stored position.
    pub async fn restart(&mut self, env: &Env, _history: &History) -> Result<()> {
        match self {
            Background::None => Ok(()),
            Background::Relay(relays) => relays.restart(env).await,
        }
    }

    /// True when the component has published everything committed so far.
    pub async fn caught_up(&self, _env: &Env) -> bool {
        match self {
            Background::None => true,
            // Dead letters will never be published; they are counted, not waited for.
            Background::Relay(relays) => relays.backlog().await.is_some_and(|b| b.outbox_unpublished == 0),
        }
    }

    /// What the component left unpublished (for the snapshot).
    pub async fn backlog(&self, _env: &Env) -> Option<Backlog> {
        match self {
            Background::None => None,
            Background::Relay(relays) => relays.backlog().await,
        }
    }

    /// Stops the component for good.
    pub async fn stop(self) {
        match self {
            Background::None => {}
            Background::Relay(relays) => relays.stop().await,
        }
    }
}
