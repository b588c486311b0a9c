//! A scenario expanded for one seed and one duration: concrete fault windows
//! and crashes, in milliseconds from the start of the main phase.
//!
//! This is what the runner executes and what every report prints, so a
//! participant can check that two runs with the same seed saw the same faults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::EventKey;
use crate::proxy::toxic::Toxic;

/// What a window does to its link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// A toxic added at `from`, removed at `until`.
    Toxic { toxic: Toxic },
    /// The proxy disabled (`enabled: false`) from `from` to `until`: existing
    /// connections are closed and new ones refused.
    Down,
}

impl Fault {
    /// A short label: `reset_peer`, `latency`, `down`.
    pub fn label(&self) -> &'static str {
        match self {
            Fault::Toxic { toxic } => toxic.kind.type_name(),
            Fault::Down => "down",
        }
    }
}

/// One fault on one link for a span of time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// The link's name (see [`crate::links`]).
    pub link: String,
    #[serde(with = "millis")]
    pub from: Duration,
    #[serde(with = "millis")]
    pub until: Duration,
    #[serde(flatten)]
    pub fault: Fault,
}

impl Window {
    /// True when `at` falls inside the window (`from` inclusive, `until` exclusive).
    pub fn contains(&self, at: Duration) -> bool {
        self.from <= at && at < self.until
    }

    /// `kafka reset_peer 12.0–15.0 s`
    pub fn describe(&self) -> String {
        format!("{} {} {:.1}–{:.1} s", self.link, self.fault.label(), self.from.as_secs_f64(), self.until.as_secs_f64())
    }
}

/// A part of the system that a scenario can crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    /// The application: its writers, readers, connection pool and producer.
    Writer,
    /// The outbox relay.
    Relay,
    /// The CDC connector.
    Connector,
    /// The downstream consumer: it stops reading, and comes back where it
    /// left off (a redeploy), to a backlog that it reads partition by
    /// partition.
    Consumer,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Writer => "writer",
            Component::Relay => "relay",
            Component::Connector => "connector",
            Component::Consumer => "consumer",
        }
    }
}

/// A crash of one component at a point in time, and its restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crash {
    pub component: Component,
    #[serde(with = "millis")]
    pub at: Duration,
    /// How long the component stays dead before it restarts.
    #[serde(with = "millis")]
    pub restart_after: Duration,
}

/// Knobs a scenario may turn on the workload itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadKnobs {
    /// cache-aside: a seeded pause between a reader's database read and its
    /// cache fill, drawn uniformly from this range for each fill. It widens
    /// the set-after-delete race window so that a seed reproduces it.
    pub cache_fill_delay: Option<(Duration, Duration)>,
    /// What every event's record key is: the product (the default, the
    /// right key) or the order (the wrong-key scenario's mistake).
    pub event_key: EventKey,
}

/// A scenario made concrete: sorted windows and crashes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Sorted by `from`, then link.
    pub windows: Vec<Window>,
    /// Sorted by `at`.
    pub crashes: Vec<Crash>,
    #[serde(skip)]
    pub knobs: WorkloadKnobs,
}

impl Schedule {
    /// The windows active at `at`.
    pub fn active_at(&self, at: Duration) -> impl Iterator<Item = &Window> {
        self.windows.iter().filter(move |w| w.contains(at))
    }
}

/// Durations as integer milliseconds in JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
