//! Where the connector delivers the events it captures: the run's topic
//! (cdc, outbox-cdc), or the run's cache (cache-cdc, see `cache_sink.rs`).
//! Either way a delivery ends Ok, Fail or Unknown, and the pipeline retries
//! anything but Ok: the sink changes where events go, not the guarantee.

use futures::future::BoxFuture;

use super::cache_sink::CacheSink;
use crate::env::Env;
use crate::error::Result;
use crate::history::Told;
use crate::kafka::Publisher;
use crate::names::Strategy;

/// The connector's destination.
pub(crate) enum Sink {
    /// A Kafka producer for the run's topic.
    Topic(Publisher),
    /// Versioned writes into the run's cache.
    Cache(CacheSink),
}

impl Sink {
    /// The sink of a CDC strategy's connector.
    pub(super) fn of(env: &Env) -> Result<Sink> {
        Ok(match env.strategy {
            Strategy::CacheCdc => Sink::Cache(CacheSink::new(env)?),
            _ => Sink::Topic(env.publisher("dualwrite-connector")?),
        })
    }

    /// Starts delivering one event and returns what waits for the answer
    /// (bounded by the producer's delivery timeout or the cache's timeout).
    /// A topic sink hands the record to its producer before returning, so
    /// events started one after another for a key keep that order.
    pub(super) fn start(&self, key: &str, payload: &[u8]) -> BoxFuture<'_, Told> {
        match self {
            // Ok, Fail (never reached the broker) or Unknown (the reply was
            // lost; the broker may have it).
            Sink::Topic(publisher) => {
                let delivery = publisher.enqueue(key, payload);
                Box::pin(async move { delivery.await.told })
            }
            Sink::Cache(cache) => {
                let payload = payload.to_vec();
                Box::pin(async move { cache.deliver(&payload).await })
            }
        }
    }

    /// Waits until a topic sink's producer can publish (it has its producer
    /// id), at most `limit`: see [`Publisher::warm_up`]. A cache needs none.
    pub(super) async fn warm_up(&self, limit: std::time::Duration) {
        if let Sink::Topic(publisher) = self {
            publisher.warm_up(limit).await;
        }
    }

    /// `error`, with the producer's replacements if any (see
    /// [`Publisher::with_rebuilds`]).
    pub(super) fn with_rebuilds(&self, error: String) -> String {
        match self {
            Sink::Topic(publisher) => publisher.with_rebuilds(error),
            Sink::Cache(_) => error,
        }
    }
}
