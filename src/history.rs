//! The history: an append-only record of what every writer attempted and
//! what it was told.
//!
//! A dual write has several *legs* — the database, the topic, the cache — and
//! each leg of each order is recorded twice: once when the writer *invokes*
//! it and once when it learns the *outcome*. This is Jepsen's shape, and it is
//! what makes crashes honest: a writer that dies mid-leg leaves an invocation
//! with no completion, and the checker reads that as [`Outcome::Unknown`]
//! (the request may or may not have reached the store) without anyone having
//! to guess.
//!
//! Outcomes are three-valued, decided by one `classify` function per store:
//!
//! | outcome   | meaning                                         | example                                   |
//! |-----------|-------------------------------------------------|-------------------------------------------|
//! | `Ok`      | it happened                                     | COMMIT returned; the broker acknowledged  |
//! | `Fail`    | it definitely did not happen                    | pool timeout before anything was sent     |
//! | `Unknown` | it may have happened                            | connection reset while COMMIT was in flight |
//!
//! Nothing is ever removed or rewritten; the reconciler folds the events into
//! one [`WriteRecord`] per order. Readers append their own observations
//! (what they were served, and what was true) to the same history.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A unique order id. Drawn from the run's seeded generator, so the same seed
/// places the same orders under every strategy.
pub type OrderId = Uuid;

/// Milliseconds since the run's clock started (the start of the main phase).
pub type Millis = u64;

/// A hash map keyed by order id, with a cheap hash ([`IdHasher`]).
pub type IdMap<V> = HashMap<OrderId, V, BuildHasherDefault<IdHasher>>;
/// A hash set of order ids, with a cheap hash ([`IdHasher`]).
pub type IdSet = HashSet<OrderId, BuildHasherDefault<IdHasher>>;

/// The hash of the maps keyed by order id: a multiply-and-rotate over the
/// id's bytes. std's default (SipHash) resists inputs chosen to collide,
/// which an order id, random or drawn from the seeded generator, never
/// is; it was a third of the time a reconcile of a million orders took,
/// which builds several maps of a million ids.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(26);
        }
    }

    fn finish(&self) -> u64 {
        // The table picks a bucket with the low bits and tags it with the
        // top seven: mix every bit into both (splitmix64's finaliser).
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The store a leg of a write talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Leg {
    /// The order's database transaction.
    Db,
    /// The `StockChanged` event published to the topic.
    Topic,
    /// The cache invalidation (cache-aside's delete).
    Cache,
}

impl Leg {
    pub fn as_str(self) -> &'static str {
        match self {
            Leg::Db => "db",
            Leg::Topic => "topic",
            Leg::Cache => "cache",
        }
    }
}

/// What a writer was told about one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// It may have happened: a timeout, a reset after the request left, a crash.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        }
    }
}

/// An outcome with the error that explains it, as the writer saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Told {
    pub outcome: Outcome,
    /// The error and its causes, on one line (the classifiers pass
    /// `error::Chain`), for `Fail` and `Unknown`; `None` for `Ok`.
    pub error: Option<String>,
}

impl Told {
    pub fn ok() -> Told {
        Told { outcome: Outcome::Ok, error: None }
    }
    pub fn fail(error: impl std::fmt::Display) -> Told {
        Told { outcome: Outcome::Fail, error: Some(error.to_string()) }
    }
    pub fn unknown(error: impl std::fmt::Display) -> Told {
        Told { outcome: Outcome::Unknown, error: Some(error.to_string()) }
    }
}

/// The order a writer places: everything but its outcome. Drawn from the
/// seeded workload generator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: OrderId,
    pub product_id: i32,
    /// Change in stock: negative for an order.
    pub delta: i32,
    /// Which writer task placed it, and its place in that task's sequence.
    pub writer: u32,
    pub seq: u64,
}

/// What the database returned when the order's transaction ran: the row's new
/// state. Known only if the statement returned before the leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAfter {
    pub quantity: i64,
    pub version: i64,
}

/// One entry of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A writer began an order.
    Begin { at: Millis, order: Order },
    /// A writer started a leg.
    Invoke { at: Millis, order_id: OrderId, leg: Leg },
    /// The database told the writer the row's new state (before commit).
    Wrote { at: Millis, order_id: OrderId, after: StockAfter },
    /// A writer learned a leg's outcome.
    Complete { at: Millis, order_id: OrderId, leg: Leg, told: Told },
    /// A reader's observation.
    Read(ReadSample),
    /// One query of the "unrelated" pool probe (a product lookup sharing the
    /// app's connection pool with the writers).
    Probe(ProbeSample),
    /// A component crashed (the process-death imitation) or restarted.
    Crash { at: Millis, component: String, restarted: bool },
}

/// What one reader saw at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadSample {
    pub at: Millis,
    pub product_id: i32,
    /// What the strategy's read path served (the cache for cache-aside, the
    /// database otherwise), or `None` if the read failed.
    pub served: Option<StockAfter>,
    /// Whether the value came from the cache (a hit).
    pub from_cache: bool,
    /// cache-aside: the read missed, read the database, and put the value it
    /// read into the cache (the "fill" of the set-after-delete race).
    #[serde(default)]
    pub filled_cache: bool,
    /// The database's state read directly (not through any fault) right
    /// after; `None` if that read failed.
    pub truth: Option<StockAfter>,
    /// The downstream consumer's projection at the same instant.
    pub projection: Option<StockAfter>,
    /// How long the strategy's read path took, in ms (the cache, a fill
    /// included, or the database): what a cache saves or costs a reader.
    #[serde(default)]
    pub read_ms: Option<f64>,
}

/// One query of the unrelated pool probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSample {
    pub at: Millis,
    /// How long the lookup took, including waiting for a pooled connection.
    pub elapsed_ms: f64,
    /// The pool had no connection to give within its acquire timeout.
    pub acquire_timeout: bool,
    /// Any other failure.
    pub failed: bool,
}

/// Why a writer let a beat pass without placing an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// It passed while its writer waited for room, with as many orders in
    /// flight as it may have (the config's `MAX_IN_FLIGHT_PER_WRITER`): the
    /// strategy and its stores did not keep up (back pressure).
    Full,
    /// It woke after the beat had passed: the machine was too busy to run it
    /// on time, or the beat is near the timer's resolution (1 ms).
    Late,
}

/// The beats writers let pass without placing an order, by why. A run
/// offers `writer tasks × duration ÷ interval` orders; these, the orders
/// begun and the beats of an app that was down after a crash (and those a
/// writer was waiting out when the crash aborted it) add up to it, but for
/// a writer's first tick, which has often just passed as it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The writer's orders in flight were at their limit.
    pub full: u64,
    /// The writer woke too late.
    pub late: u64,
}

impl Skipped {
    pub fn total(&self) -> u64 {
        self.full + self.late
    }
}

/// The run's clock: milliseconds since the main phase started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock { start: Instant::now() }
    }
    /// Milliseconds since the clock started.
    pub fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }
    /// The instant `offset` after the clock started.
    pub fn at(&self, offset: std::time::Duration) -> Instant {
        self.start + offset
    }
    /// Milliseconds since the clock started, with sub-millisecond precision.
    pub fn now_f64(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }
}

/// The append-only history, shared by every task of a run.
///
/// Cloning gives another handle to the same history. Appends take a mutex
/// that is never held across an `.await`.
#[derive(Debug, Clone)]
pub struct History {
    clock: Clock,
    events: Arc<Mutex<Events>>,
}

impl History {
    pub fn new(clock: Clock) -> History {
        History { clock, events: Arc::new(Mutex::new(Events::new())) }
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    fn push(&self, event: Event) {
        self.events.lock().expect("history mutex poisoned").push(event);
    }

    /// A writer begins an order.
    pub fn begin(&self, order: &Order) {
        self.push(Event::Begin { at: self.clock.now(), order: order.clone() });
    }

    /// A writer starts a leg. Until [`History::complete`] follows, the leg's
    /// outcome is unknown — which is what it stays if the writer crashes.
    pub fn invoke(&self, order_id: OrderId, leg: Leg) {
        self.push(Event::Invoke { at: self.clock.now(), order_id, leg });
    }

    /// The database told the writer the row's new state.
    pub fn wrote(&self, order_id: OrderId, after: StockAfter) {
        self.push(Event::Wrote { at: self.clock.now(), order_id, after });
    }

    /// A writer learned a leg's outcome.
    pub fn complete(&self, order_id: OrderId, leg: Leg, told: Told) {
        self.push(Event::Complete { at: self.clock.now(), order_id, leg, told });
    }

    pub fn read(&self, sample: ReadSample) {
        self.push(Event::Read(sample));
    }

    pub fn probe(&self, sample: ProbeSample) {
        self.push(Event::Probe(sample));
    }

    /// A writer let `beats` beats pass without placing an order. Counted,
    /// not kept as events: a saturated run skips most of its beats.
    pub fn skip(&self, why: Skip, beats: u64) {
        let skipped = match why {
            Skip::Full => Skipped { full: beats, late: 0 },
            Skip::Late => Skipped { full: 0, late: beats },
        };
        self.events.lock().expect("history mutex poisoned").skip(skipped);
    }

    pub fn crash(&self, component: &str, restarted: bool) {
        self.push(Event::Crash { at: self.clock.now(), component: component.to_string(), restarted });
    }

    /// A copy of every event so far, in the order they were appended.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("history mutex poisoned").iter().collect()
    }

    /// The beats writers have let pass so far (see [`History::skip`]).
    pub fn skipped(&self) -> Skipped {
        self.events.lock().expect("history mutex poisoned").skipped()
    }

    /// The events appended since the first `from`, and the count to pass
    /// next time. The live display reads the history this way, a few new
    /// events every tick, so that the writers' lock is never held for a
    /// scan of the whole run.
    pub fn events_since(&self, from: usize) -> (Vec<Event>, usize) {
        let events = self.events.lock().expect("history mutex poisoned");
        (events.iter_from(from).collect(), events.len())
    }

    /// Every event, moved out rather than copied: what the runner hands to
    /// the reconciler once nothing appends any more. A copy would hold the
    /// whole history twice at the moment memory is highest (the snapshot
    /// is read by then). The history is empty afterwards.
    pub fn take(&self) -> Events {
        std::mem::take(&mut *self.events.lock().expect("history mutex poisoned"))
    }
}

/// The events of a history, stored compactly.
///
/// A run appends six events or so per order, millions of them in a long
/// run, so how an event is *stored* decides the run's memory. [`Event`] is
/// the vocabulary — what every reader of the history matches on — and
/// costs about a hundred bytes (its largest variant, a [`ReadSample`]).
/// Stored, a writer's event costs 16 bytes, and the order's details are
/// kept once:
///
/// - the order's id (16 bytes, repeated in every event of the order) and
///   the rest of the [`Order`] are kept once, at the order's `Begin`; its
///   events name it by its *slot*, the place of that begin (4 bytes);
/// - the time is kept in 4 bytes (milliseconds since the run's clock
///   started: 49 days' worth);
/// - what a few events carry — the row's state a `Wrote` reports, the
///   error a writer was told — goes to a table of its own, and the event
///   keeps its place there;
/// - the rare events — reads, probes, crashes — are kept whole, behind a
///   pointer, and so is any event the compact form cannot hold (an order
///   that never began, a time past 49 days).
///
/// Reading gives back the very events appended ([`Events::iter`]); the
/// fold ([`write_records`]) reads them with their slots, which are the
/// places of the orders' records: it needs no lookups.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// One entry per event, in the order they were appended.
    stored: Chunked<Stored>,
    /// One entry per `Begin`, in order: the order that began. A slot is a
    /// place here.
    orders: Chunked<Order>,
    /// What each compact `Wrote` reported.
    afters: Chunked<StockAfter>,
    /// The error of each compact completion that had one.
    errors: Vec<Box<str>>,
    /// Each order id's latest begin, for the appends that name the order by
    /// its id.
    slots: IdMap<Slot>,
    /// The beats writers let pass (see [`History::skip`]).
    skipped: Skipped,
}

/// The place of an order's begin among all the begins of a history, and
/// so of its record among the folded records.
type Slot = u32;

/// The slot of an event that belongs to no begun order (a read, a probe, a
/// crash, or a writer's event before its order's begin).
const NO_SLOT: Slot = Slot::MAX;

/// One event as it is stored (see [`Events`]): 16 bytes. `at` is the
/// event's time; `after` and `error` are places in [`Events::afters`] and
/// [`Events::errors`].
#[derive(Debug, Clone)]
enum Stored {
    Begin {
        at: u32,
        slot: Slot,
    },
    Invoke {
        at: u32,
        slot: Slot,
        leg: Leg,
    },
    Wrote {
        at: u32,
        slot: Slot,
        after: u32,
    },
    /// A completion told without an error (every `Ok`).
    Complete {
        at: u32,
        slot: Slot,
        leg: Leg,
        outcome: Outcome,
    },
    /// A completion told with an error.
    Explained {
        at: u32,
        slot: Slot,
        leg: Leg,
        outcome: Outcome,
        error: u32,
    },
    /// Any other event, as appended, and its order's slot if it has one.
    Whole {
        slot: Slot,
        event: Box<Event>,
    },
}

/// A place in one of the tables, as the stored events keep it.
fn place(len: usize) -> u32 {
    u32::try_from(len).expect("fewer than 4 billion entries in a history")
}

impl Events {
    pub fn new() -> Events {
        Events::default()
    }

    /// Appends an event.
    pub fn push(&mut self, event: Event) {
        // The slot of the event's order: a begin takes the next one, and
        // the order's later events name it.
        let slot = match &event {
            Event::Begin { order, .. } => {
                let slot = place(self.orders.len());
                self.slots.insert(order.order_id, slot);
                self.orders.push(order.clone());
                slot
            }
            Event::Invoke { order_id, .. } | Event::Wrote { order_id, .. } | Event::Complete { order_id, .. } => {
                self.slots.get(order_id).copied().unwrap_or(NO_SLOT)
            }
            Event::Read(_) | Event::Probe(_) | Event::Crash { .. } => NO_SLOT,
        };
        let at = match &event {
            Event::Begin { at, .. }
            | Event::Invoke { at, .. }
            | Event::Wrote { at, .. }
            | Event::Complete { at, .. } => u32::try_from(*at).ok(),
            Event::Read(_) | Event::Probe(_) | Event::Crash { .. } => None,
        };
        let stored = match (at, event) {
            (Some(at), event) if slot != NO_SLOT => match event {
                Event::Begin { .. } => Stored::Begin { at, slot },
                Event::Invoke { leg, .. } => Stored::Invoke { at, slot, leg },
                Event::Wrote { after, .. } => {
                    self.afters.push(after);
                    Stored::Wrote { at, slot, after: place(self.afters.len() - 1) }
                }
                Event::Complete { leg, told: Told { outcome, error: None }, .. } => {
                    Stored::Complete { at, slot, leg, outcome }
                }
                Event::Complete { leg, told: Told { outcome, error: Some(error) }, .. } => {
                    self.errors.push(error.into_boxed_str());
                    Stored::Explained { at, slot, leg, outcome, error: place(self.errors.len() - 1) }
                }
                other => Stored::Whole { slot, event: Box::new(other) },
            },
            (_, event) => Stored::Whole { slot, event: Box::new(event) },
        };
        self.stored.push(stored);
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.stored.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The beats writers let pass without placing an order.
    pub fn skipped(&self) -> Skipped {
        self.skipped
    }

    /// Counts skipped beats, as [`History::skip`] does.
    pub fn skip(&mut self, skipped: Skipped) {
        self.skipped.full += skipped.full;
        self.skipped.late += skipped.late;
    }

    /// Every event, in the order they were appended.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.iter_from(0)
    }

    /// The events from the `from`th on (none if `from` is past the end).
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = Event> + '_ {
        self.stored.iter_from(from).map(|stored| self.event(stored))
    }

    /// The events kept whole: every read, probe and crash (and the rare
    /// writer's event the compact form could not hold). The figures that
    /// only concern readers, probes and crashes scan these and skip the
    /// writers' events, millions of them.
    pub fn whole(&self) -> impl Iterator<Item = &Event> + '_ {
        self.stored.iter_from(0).filter_map(|stored| match stored {
            Stored::Whole { event, .. } => Some(&**event),
            _ => None,
        })
    }

    /// The events of begun orders, in order, each with its order's slot:
    /// what the fold reads.
    fn of_orders(&self) -> impl Iterator<Item = (usize, Event)> + '_ {
        self.stored.iter_from(0).filter_map(|stored| match stored {
            Stored::Whole { slot: NO_SLOT, .. } => None,
            Stored::Begin { slot, .. }
            | Stored::Invoke { slot, .. }
            | Stored::Wrote { slot, .. }
            | Stored::Complete { slot, .. }
            | Stored::Explained { slot, .. }
            | Stored::Whole { slot, .. } => Some((*slot as usize, self.event(stored))),
        })
    }

    /// The order that began at `slot`.
    fn order(&self, slot: Slot) -> &Order {
        self.orders.get(slot as usize)
    }

    /// A stored event as it was appended.
    fn event(&self, stored: &Stored) -> Event {
        let order_id = |slot: Slot| self.order(slot).order_id;
        match *stored {
            Stored::Begin { at, slot } => Event::Begin { at: at.into(), order: self.order(slot).clone() },
            Stored::Invoke { at, slot, leg } => Event::Invoke { at: at.into(), order_id: order_id(slot), leg },
            Stored::Wrote { at, slot, after } => {
                Event::Wrote { at: at.into(), order_id: order_id(slot), after: *self.afters.get(after as usize) }
            }
            Stored::Complete { at, slot, leg, outcome } => {
                Event::Complete { at: at.into(), order_id: order_id(slot), leg, told: Told { outcome, error: None } }
            }
            Stored::Explained { at, slot, leg, outcome, error } => Event::Complete {
                at: at.into(),
                order_id: order_id(slot),
                leg,
                told: Told { outcome, error: Some(self.errors[error as usize].to_string()) },
            },
            Stored::Whole { ref event, .. } => (**event).clone(),
        }
    }
}

impl FromIterator<Event> for Events {
    fn from_iter<I: IntoIterator<Item = Event>>(events: I) -> Events {
        let mut stored = Events::new();
        events.into_iter().for_each(|event| stored.push(event));
        stored
    }
}

impl From<Vec<Event>> for Events {
    fn from(events: Vec<Event>) -> Events {
        events.into_iter().collect()
    }
}

impl PartialEq for Events {
    /// The same events in the same order, and the same beats skipped.
    fn eq(&self, other: &Events) -> bool {
        self.len() == other.len() && self.skipped == other.skipped && self.iter().eq(other.iter())
    }
}

/// Items in fixed-size chunks rather than one growing `Vec`: a `Vec`
/// doubles when it fills, so a long run's history would hold up to twice
/// the memory its events need (1.75 × at 100 k orders, measured with
/// `make bench`), and copy all of it at every doubling. A full chunk is
/// never moved again; at most one chunk is partly empty.
#[derive(Debug, Clone)]
struct Chunked<T> {
    full: Vec<Vec<T>>,
    last: Vec<T>,
}

/// Items per chunk: a quarter of a megabyte of stored events.
const CHUNK: usize = 1 << 14;

impl<T> Default for Chunked<T> {
    fn default() -> Chunked<T> {
        Chunked { full: Vec::new(), last: Vec::new() }
    }
}

impl<T> Chunked<T> {
    fn push(&mut self, item: T) {
        if self.last.capacity() == 0 {
            self.last.reserve_exact(CHUNK);
        }
        self.last.push(item);
        if self.last.len() == CHUNK {
            self.full.push(std::mem::take(&mut self.last));
        }
    }

    fn len(&self) -> usize {
        self.full.len() * CHUNK + self.last.len()
    }

    fn get(&self, i: usize) -> &T {
        match self.full.get(i / CHUNK) {
            Some(chunk) => &chunk[i % CHUNK],
            None => &self.last[i % CHUNK],
        }
    }

    /// The items from the `from`th on.
    fn iter_from(&self, from: usize) -> impl Iterator<Item = &T> + '_ {
        let (chunk, offset) = (from / CHUNK, from % CHUNK);
        let chunks = self.full.iter().chain(std::iter::once(&self.last));
        chunks
            .skip(chunk)
            .enumerate()
            .flat_map(move |(i, items)| &items[if i == 0 { offset.min(items.len()) } else { 0 }..])
    }
}

/// One leg of one order, folded from its invoke and complete events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegRecord {
    pub invoked_at: Millis,
    /// When the writer learned the outcome; `None` if it never did (a crash).
    pub completed_at: Option<Millis>,
    /// What the writer was told. A leg invoked and never completed is
    /// `Unknown`, with the error "no reply: the writer crashed".
    pub told: Told,
}

/// Everything the history says about one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRecord {
    pub order: Order,
    pub begun_at: Millis,
    /// What the database returned for the row before the commit, if anything.
    pub after: Option<StockAfter>,
    pub legs: Legs,
}

/// The legs of one order, at most one of each [`Leg`], in `Leg` order.
///
/// An array in place rather than a `BTreeMap`: an order has one to three
/// legs, and a map's first node alone is a 640-byte allocation — most of
/// what folding a million orders cost (measured with `make bench`). It
/// offers the map's methods that are used, and serialises as the map did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Legs([Option<LegRecord>; 3]);

impl Leg {
    /// Every leg, in order.
    pub const ALL: [Leg; 3] = [Leg::Db, Leg::Topic, Leg::Cache];

    fn index(self) -> usize {
        match self {
            Leg::Db => 0,
            Leg::Topic => 1,
            Leg::Cache => 2,
        }
    }
}

impl Legs {
    pub fn new() -> Legs {
        Legs::default()
    }
    pub fn get(&self, leg: &Leg) -> Option<&LegRecord> {
        self.0[leg.index()].as_ref()
    }
    pub fn get_mut(&mut self, leg: &Leg) -> Option<&mut LegRecord> {
        self.0[leg.index()].as_mut()
    }
    /// Sets the leg's record, replacing any earlier one.
    pub fn insert(&mut self, leg: Leg, record: LegRecord) {
        self.0[leg.index()] = Some(record);
    }
    pub fn contains_key(&self, leg: &Leg) -> bool {
        self.get(leg).is_some()
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
    pub fn len(&self) -> usize {
        self.0.iter().flatten().count()
    }
    /// The legs invoked, in `Leg` order.
    pub fn iter(&self) -> LegPairs<'_> {
        self.into_iter()
    }
    pub fn values(&self) -> impl Iterator<Item = &LegRecord> {
        self.0.iter().flatten()
    }
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut LegRecord> {
        self.0.iter_mut().flatten()
    }
}

/// The pairs of one order's invoked legs (what `&Legs` iterates over).
type LegPairs<'a> = std::iter::FilterMap<
    std::iter::Zip<std::slice::Iter<'static, Leg>, std::slice::Iter<'a, Option<LegRecord>>>,
    fn((&'static Leg, &'a Option<LegRecord>)) -> Option<(&'a Leg, &'a LegRecord)>,
>;

impl std::ops::Index<&Leg> for Legs {
    type Output = LegRecord;
    /// The leg's record; panics if it was never invoked, as a map does.
    fn index(&self, leg: &Leg) -> &LegRecord {
        self.get(leg).expect("no record of this leg")
    }
}

impl<'a> IntoIterator for &'a Legs {
    type Item = (&'a Leg, &'a LegRecord);
    type IntoIter = LegPairs<'a>;
    fn into_iter(self) -> LegPairs<'a> {
        fn pair<'a>((leg, record): (&'static Leg, &'a Option<LegRecord>)) -> Option<(&'a Leg, &'a LegRecord)> {
            Some((leg, record.as_ref()?))
        }
        Leg::ALL.iter().zip(self.0.iter()).filter_map(pair as fn(_) -> _)
    }
}

impl Serialize for Legs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Legs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Legs, D::Error> {
        let map = BTreeMap::<Leg, LegRecord>::deserialize(deserializer)?;
        let mut legs = Legs::new();
        for (leg, record) in map {
            legs.insert(leg, record);
        }
        Ok(legs)
    }
}

impl WriteRecord {
    /// The outcome of a leg, if the writer ever invoked it.
    pub fn outcome(&self, leg: Leg) -> Option<Outcome> {
        self.legs.get(&leg).map(|l| l.told.outcome)
    }

    /// True when every leg the writer invoked ended `Ok`: the writer believes
    /// the order fully succeeded.
    pub fn acknowledged(&self) -> bool {
        !self.legs.is_empty() && self.legs.values().all(|l| l.told.outcome == Outcome::Ok)
    }
}

/// Folds the history's events into one record per order, in the order the
/// orders began. Pure.
///
/// One pass over the stored events, with no lookups: every writer event
/// names its order by slot, and the slots are the places of the records,
/// in begin order.
pub fn write_records(events: &Events) -> Vec<WriteRecord> {
    let mut records: Vec<WriteRecord> = Vec::with_capacity(events.orders.len());
    for (slot, event) in events.of_orders() {
        match event {
            Event::Begin { at, order } => {
                debug_assert_eq!(slot, records.len(), "slots are given in begin order");
                records.push(WriteRecord { order, begun_at: at, after: None, legs: Legs::new() });
            }
            Event::Invoke { at, leg, .. } => {
                records[slot].legs.insert(
                    leg,
                    LegRecord {
                        invoked_at: at,
                        completed_at: None,
                        // Unknown unless a completion follows; the reason
                        // is written below, for the legs that stay so.
                        told: Told { outcome: Outcome::Unknown, error: None },
                    },
                );
            }
            Event::Wrote { after, .. } => records[slot].after = Some(after),
            Event::Complete { at, leg, told, .. } => {
                // A completion counts only for a leg that was invoked.
                if let Some(leg) = records[slot].legs.get_mut(&leg) {
                    leg.completed_at = Some(at);
                    leg.told = told;
                }
            }
            // Not an order's (of_orders gives none of these).
            Event::Read(_) | Event::Probe(_) | Event::Crash { .. } => {}
        }
    }
    // An order begun twice (never, from the writers) keeps its first place
    // and its last record: its later events went to the newest begin's slot.
    if events.slots.len() < records.len() {
        let mut slots: Vec<Option<WriteRecord>> = records.into_iter().map(Some).collect();
        let mut placed = IdSet::default();
        records = Vec::with_capacity(events.slots.len());
        for slot in 0..slots.len() {
            let id = events.order(slot as u32).order_id;
            if placed.insert(id) {
                let last = events.slots[&id] as usize;
                records.push(slots[last].take().expect("each order's last begin is taken once"));
            }
        }
    }
    for leg in records.iter_mut().flat_map(|r| r.legs.values_mut()) {
        if leg.completed_at.is_none() {
            leg.told = Told::unknown("no reply: the writer crashed before the outcome was known");
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(n: u128) -> Order {
        Order { order_id: Uuid::from_u128(n), product_id: 1, delta: -2, writer: 0, seq: n as u64 }
    }

    #[test]
    fn a_leg_without_completion_is_unknown() {
        let events = Events::from(vec![
            Event::Begin { at: 1, order: order(1) },
            Event::Invoke { at: 2, order_id: Uuid::from_u128(1), leg: Leg::Db },
            Event::Complete { at: 3, order_id: Uuid::from_u128(1), leg: Leg::Db, told: Told::ok() },
            Event::Invoke { at: 4, order_id: Uuid::from_u128(1), leg: Leg::Topic },
        ]);
        let records = write_records(&events);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].outcome(Leg::Db), Some(Outcome::Ok));
        assert_eq!(records[0].outcome(Leg::Topic), Some(Outcome::Unknown));
        assert_eq!(records[0].legs[&Leg::Topic].completed_at, None);
        assert!(!records[0].acknowledged());
    }

    #[test]
    fn records_keep_the_order_in_which_orders_began() {
        let events =
            Events::from(vec![Event::Begin { at: 1, order: order(9) }, Event::Begin { at: 2, order: order(3) }]);
        let ids: Vec<_> = write_records(&events).iter().map(|r| r.order.order_id).collect();
        assert_eq!(ids, vec![Uuid::from_u128(9), Uuid::from_u128(3)]);
    }

    #[test]
    fn events_since_returns_only_what_is_new() {
        let history = History::new(Clock::start());
        history.begin(&order(1));
        let (first, seen) = history.events_since(0);
        assert_eq!((first.len(), seen), (1, 1));
        history.invoke(Uuid::from_u128(1), Leg::Db);
        history.complete(Uuid::from_u128(1), Leg::Db, Told::ok());
        let (next, seen) = history.events_since(seen);
        assert_eq!((next.len(), seen), (2, 3));
        assert!(matches!(next[0], Event::Invoke { .. }));
        assert_eq!(history.events_since(seen).0.len(), 0);
        assert_eq!(history.events_since(99).0.len(), 0, "a position past the end is the end");
    }

    #[test]
    fn chunks_keep_every_event_in_order_across_their_boundaries() {
        let history = History::new(Clock::start());
        let n = 2 * CHUNK + 5;
        for k in 0..n {
            history.invoke(Uuid::from_u128(k as u128), Leg::Db);
        }
        let ids = |events: &[Event]| -> Vec<u128> {
            events.iter().map(|e| if let Event::Invoke { order_id, .. } = e { order_id.as_u128() } else { 0 }).collect()
        };
        assert_eq!(ids(&history.events()), (0..n as u128).collect::<Vec<_>>());
        for from in [0, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, n - 1, n] {
            let (since, seen) = history.events_since(from);
            assert_eq!((ids(&since), seen), ((from as u128..n as u128).collect::<Vec<_>>(), n), "from {from}");
        }
    }

    #[test]
    fn stored_events_read_back_as_appended() {
        let id = Uuid::from_u128(1);
        let appended = vec![
            Event::Invoke { at: 1, order_id: id, leg: Leg::Db },
            Event::Begin { at: 2, order: order(1) },
            Event::Wrote { at: 3, order_id: id, after: StockAfter { quantity: 998, version: 1 } },
            Event::Complete { at: 4, order_id: id, leg: Leg::Db, told: Told::unknown("reset") },
            Event::Crash { at: 5, component: "writer".into(), restarted: false },
            Event::Complete { at: 6, order_id: Uuid::from_u128(2), leg: Leg::Topic, told: Told::ok() },
        ];
        let events = Events::from(appended.clone());
        assert_eq!(events.iter().collect::<Vec<_>>(), appended);
        assert_eq!(events.iter_from(3).collect::<Vec<_>>(), &appended[3..]);
        assert_eq!(events.whole().count(), 3, "the crash, and the two events of no begun order");
        let records = write_records(&events);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].legs.len(), 0, "the invoke before the begin belongs to no record");
    }

    #[test]
    fn a_stored_event_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Stored>(), 16);
    }

    #[test]
    fn what_the_compact_form_cannot_hold_is_kept_whole_and_still_folded() {
        let id = Uuid::from_u128(1);
        let late = u64::from(u32::MAX) + 1;
        let appended = vec![
            Event::Begin { at: 1, order: order(1) },
            Event::Invoke { at: late, order_id: id, leg: Leg::Db },
            Event::Complete { at: late + 1, order_id: id, leg: Leg::Db, told: Told::fail("refused") },
        ];
        let events = Events::from(appended.clone());
        assert_eq!(events.iter().collect::<Vec<_>>(), appended);
        assert_eq!(events.whole().count(), 2, "times past 49 days are kept whole");
        let records = write_records(&events);
        assert_eq!(records[0].legs[&Leg::Db].invoked_at, late);
        assert_eq!(records[0].legs[&Leg::Db].told, Told::fail("refused"));
    }

    #[test]
    fn an_order_begun_twice_keeps_its_first_place_and_its_last_record() {
        let id = Uuid::from_u128(1);
        let events = Events::from(vec![
            Event::Begin { at: 1, order: order(1) },
            Event::Begin { at: 2, order: order(2) },
            Event::Invoke { at: 3, order_id: id, leg: Leg::Db },
            Event::Begin { at: 4, order: order(1) },
        ]);
        let records = write_records(&events);
        assert_eq!(
            records.iter().map(|r| (r.order.order_id.as_u128(), r.begun_at)).collect::<Vec<_>>(),
            [(1, 4), (2, 2)]
        );
        assert!(records[0].legs.is_empty(), "the second begin starts the record again");
    }

    #[test]
    fn acknowledged_needs_every_invoked_leg_ok() {
        let id = Uuid::from_u128(1);
        let mut events = Events::from(vec![
            Event::Begin { at: 1, order: order(1) },
            Event::Invoke { at: 2, order_id: id, leg: Leg::Db },
            Event::Complete { at: 3, order_id: id, leg: Leg::Db, told: Told::ok() },
        ]);
        assert!(write_records(&events)[0].acknowledged());
        events.push(Event::Invoke { at: 4, order_id: id, leg: Leg::Topic });
        events.push(Event::Complete { at: 5, order_id: id, leg: Leg::Topic, told: Told::fail("refused") });
        assert!(!write_records(&events)[0].acknowledged());
    }
}
