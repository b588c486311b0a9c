//! Background components: the outbox relay, the CDC connector, and
//! two-phase's recovery.
//!
//! They run beside the app, reach Postgres through their own link
//! (`postgres_relay`), and a scenario can crash and restart them on their
//! own. naive, publish-in-tx and cache-aside have none.

use crate::cdc::Connector;
use crate::error::Result;
use crate::history::History;
use crate::scenario::schedule::Component;
use crate::snapshot::Backlog;

use super::outbox::relay::Relays;
use super::two_phase::recovery::Recovery;
use super::{Env, Strategy};

/// How long reading the backlog may take.
const BACKLOG_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A strategy's background component, if it has one.
pub enum Background {
    /// The strategy publishes from the app itself (or not at all).
    None,
    /// outbox: the relays.
    Relay(Relays),
    /// cdc, outbox-cdc and cache-cdc: the connector streaming the run's
    /// replication slot (into the topic, or for cache-cdc into the cache).
    Connector(Connector),
    /// two-phase: recovery of in-doubt transactions (not a scenario
    /// component: a coordinator crash is a writer crash).
    Recovery(Recovery),
}

impl Background {
    /// Starts the strategy's background component.
    pub async fn start(env: &Env) -> Result<Background> {
        Ok(match env.strategy {
            Strategy::Outbox => Background::Relay(Relays::start(env).await?),
            Strategy::Cdc | Strategy::OutboxCdc | Strategy::CacheCdc => {
                Background::Connector(Connector::start(env).await?)
            }
            Strategy::TwoPhase => Background::Recovery(Recovery::start(env).await?),
            _ => Background::None,
        })
    }

    /// Which scenario component this is, so that a crash aimed at another
    /// (a relay crash in a CDC run) can be ignored.
    pub fn component(&self) -> Option<Component> {
        match self {
            Background::None | Background::Recovery(_) => None,
            Background::Relay(_) => Some(Component::Relay),
            Background::Connector(_) => Some(Component::Connector),
        }
    }

    /// Whether this is the component a scenario names (a relay crash does
    /// nothing to a strategy without a relay).
    pub fn is(&self, component: Component) -> bool {
        self.component() == Some(component)
    }

    /// The process-death imitation: the component stops at once, mid-work.
    pub async fn crash(&mut self) {
        match self {
            Background::None | Background::Recovery(_) => {}
            Background::Relay(relays) => relays.crash().await,
            Background::Connector(c) => c.crash().await,
        }
    }

    /// Starts the component again after a crash, from its stored position.
    pub async fn restart(&mut self, env: &Env, _history: &History) -> Result<()> {
        match self {
            Background::None | Background::Recovery(_) => Ok(()),
            Background::Relay(relays) => relays.restart(env).await,
            Background::Connector(c) => c.restart(env),
        }
    }

    /// True when the component has published everything committed so far.
    /// A check that gets no answer within [`BACKLOG_LIMIT`] is "not yet":
    /// the drain's own deadline then ends the wait.
    pub async fn caught_up(&self, _env: &Env) -> bool {
        let check = async {
            match self {
                Background::None => true,
                // Dead letters will never be published; they are counted, not waited for.
                Background::Relay(relays) => relays.backlog().await.is_ok_and(|b| b.outbox_unpublished == 0),
                Background::Connector(c) => c.caught_up().await,
                // Resolves what is in doubt and publishes what is decided.
                Background::Recovery(r) => r.caught_up().await,
            }
        };
        tokio::time::timeout(BACKLOG_LIMIT, check).await.unwrap_or(false)
    }

    /// Why the component is not making progress, if it is failing right
    /// now: the relay's last failed pass, the connector's replication or
    /// publish error — each with its Kafka producer's replacements, if any.
    /// A sentence naming the component, for the drain report.
    pub fn last_error(&self) -> Option<String> {
        match self {
            Background::None => None,
            Background::Relay(relays) => relays.last_error().map(|e| format!("the relay: {e}")),
            Background::Connector(c) => c.last_error(),
            Background::Recovery(r) => r.last_error(),
        }
    }

    /// What the component left unpublished (for the snapshot): `None` when
    /// there is no component, `Some(Err)` — unknown, not zero — when it could
    /// not be read within [`BACKLOG_LIMIT`].
    pub async fn backlog(&self, _env: &Env) -> Option<std::result::Result<Backlog, String>> {
        let read = match self {
            Background::None => return None,
            Background::Relay(relays) => tokio::time::timeout(BACKLOG_LIMIT, relays.backlog()).await,
            Background::Connector(c) => tokio::time::timeout(BACKLOG_LIMIT, c.backlog()).await,
            Background::Recovery(r) => tokio::time::timeout(BACKLOG_LIMIT, r.backlog()).await,
        };
        Some(match read {
            Ok(Ok(backlog)) => Ok(backlog),
            Ok(Err(e)) => Err(format!("{e}")),
            Err(_) => Err(format!("PostgreSQL did not answer within {BACKLOG_LIMIT:?}")),
        })
    }

    /// Stops the component for good.
    pub async fn stop(self) {
        match self {
            Background::None => {}
            Background::Relay(relays) => relays.stop().await,
            Background::Connector(c) => c.stop().await,
            Background::Recovery(r) => r.stop().await,
        }
    }
}
