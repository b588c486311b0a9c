//! The toxics of one proxy, and how its live connections hear about them.
//!
//! Each direction has its own ordered list (Toxiproxy's "chain"), published
//! through a `tokio::sync::watch` channel. Every pump of every connection
//! holds a receiver and looks at the latest list before it forwards a chunk,
//! and waits on it while it holds data or idles under a `timeout` toxic. A
//! change made through the API is therefore seen by connections opened long
//! before it, and a removal ends the effect on the very next chunk: there is
//! no per-connection copy of a toxic that could be left behind.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::wire::{ApiError, Stream, Toxic, ToxicKind};

/// A toxic as the pumps see it.
#[derive(Debug, Clone)]
pub(crate) struct LiveToxic {
    /// Stable for the toxic's lifetime on this proxy (a toxic removed and
    /// added again under the same name gets a new id).
    pub id: u64,
    /// Bumped by every update, so that a pump re-rolls toxicity and restarts
    /// a `timeout` countdown, as Toxiproxy restarts a toxic's `Pipe`.
    pub revision: u64,
    /// When this revision was published; a `timeout` counts from here.
    pub since: Instant,
    pub toxic: Toxic,
}

/// What a pump receives: the current chain of one direction.
pub(crate) type Chain = Arc<Vec<LiveToxic>>;

/// Does this chain hold a `reset_peer` toxic (whatever its toxicity)?
pub(crate) fn has_reset_peer(chain: &Chain) -> bool {
    chain.iter().any(|t| matches!(t.toxic.kind, ToxicKind::ResetPeer { .. }))
}

/// The toxics of one proxy, both directions.
pub(crate) struct ToxicSet {
    upstream: watch::Sender<Chain>,
    downstream: watch::Sender<Chain>,
    next_id: u64,
}

impl ToxicSet {
    pub fn new() -> ToxicSet {
        ToxicSet {
            upstream: watch::Sender::new(Arc::new(Vec::new())),
            downstream: watch::Sender::new(Arc::new(Vec::new())),
            next_id: 1,
        }
    }

    fn sender(&self, stream: Stream) -> &watch::Sender<Chain> {
        match stream {
            Stream::Upstream => &self.upstream,
            Stream::Downstream => &self.downstream,
        }
    }

    /// A receiver for a new connection's pump.
    pub fn subscribe(&self, stream: Stream) -> watch::Receiver<Chain> {
        self.sender(stream).subscribe()
    }

    /// Every toxic, upstream first, each direction in the order added (the
    /// order Toxiproxy lists them in).
    pub fn list(&self) -> Vec<Toxic> {
        [Stream::Upstream, Stream::Downstream]
            .into_iter()
            .flat_map(|s| self.sender(s).borrow().iter().map(|t| t.toxic.clone()).collect::<Vec<_>>())
            .collect()
    }

    /// The toxic with this name, in either direction.
    pub fn get(&self, name: &str) -> Option<Toxic> {
        self.find(name).map(|(_, t)| t.toxic)
    }

    fn find(&self, name: &str) -> Option<(Stream, LiveToxic)> {
        [Stream::Upstream, Stream::Downstream]
            .into_iter()
            .find_map(|s| self.sender(s).borrow().iter().find(|t| t.toxic.name == name).map(|t| (s, t.clone())))
    }

    /// Adds a toxic at the end of its direction's chain. Names are unique
    /// across both directions, as in Toxiproxy.
    pub fn add(&mut self, toxic: Toxic) -> Result<Toxic, ApiError> {
        if self.find(&toxic.name).is_some() {
            return Err(ApiError::toxic_already_exists());
        }
        let live = LiveToxic { id: self.next_id, revision: 0, since: Instant::now(), toxic: toxic.clone() };
        self.next_id += 1;
        self.sender(toxic.stream).send_modify(|chain| Arc::make_mut(chain).push(live));
        Ok(toxic)
    }

    /// Applies an update: the given attributes replace the old ones key by
    /// key (the others stay), and `toxicity` replaces the old one if given.
    /// Name, type and stream cannot change, as in Toxiproxy.
    pub fn update(
        &mut self,
        name: &str,
        attributes: Option<&serde_json::Map<String, serde_json::Value>>,
        toxicity: Option<f32>,
    ) -> Result<Toxic, ApiError> {
        let (stream, live) = self.find(name).ok_or_else(ApiError::toxic_not_found)?;
        let mut toxic = live.toxic.clone();
        if let Some(given) = attributes {
            // Round-trip through JSON: the old attributes, overwritten by the
            // given ones, read back as the same type.
            let mut value = serde_json::to_value(&toxic.kind).map_err(ApiError::internal)?;
            if let Some(old) = value.get_mut("attributes").and_then(|a| a.as_object_mut()) {
                for (key, v) in given {
                    old.insert(key.clone(), v.clone());
                }
            }
            toxic.kind = serde_json::from_value::<ToxicKind>(value).map_err(ApiError::bad_request_body)?;
        }
        if let Some(toxicity) = toxicity {
            toxic.toxicity = toxicity;
        }
        let updated =
            LiveToxic { id: live.id, revision: live.revision + 1, since: Instant::now(), toxic: toxic.clone() };
        self.sender(stream).send_modify(|chain| {
            if let Some(slot) = Arc::make_mut(chain).iter_mut().find(|t| t.id == live.id) {
                *slot = updated;
            }
        });
        Ok(toxic)
    }

    /// Removes a toxic; every connection stops applying it at once.
    pub fn remove(&mut self, name: &str) -> Result<(), ApiError> {
        let (stream, live) = self.find(name).ok_or_else(ApiError::toxic_not_found)?;
        self.sender(stream).send_modify(|chain| Arc::make_mut(chain).retain(|t| t.id != live.id));
        Ok(())
    }

    /// Removes every toxic in both directions.
    pub fn reset(&mut self) {
        for stream in [Stream::Upstream, Stream::Downstream] {
            self.sender(stream).send_if_modified(|chain| {
                let had = !chain.is_empty();
                *chain = Arc::new(Vec::new());
                had
            });
        }
    }
}
