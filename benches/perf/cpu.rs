//! Where the CPU goes during a run: the machine's busy time, PostgreSQL's
//! processes and this one's (the writers, the proxy, the embedded broker,
//! the consumer, the relay or connector), sampled from `/proc` while the run
//! goes. At saturation on a machine whose CPUs are all busy, orders a second
//! is the CPUs' time divided by the CPU time an order takes: the ratio of
//! two strategies' highest rates is the inverse ratio of their CPU per order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Kernel clock ticks a second (`getconf CLK_TCK`): 100 on Linux, on
/// every architecture this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

const EVERY: Duration = Duration::from_millis(100);

/// CPU time used up to a moment, in ticks.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// Every CPU's time but idle and iowait.
    busy: u64,
    postgres: u64,
    this: u64,
}

/// CPU time between two samples, in seconds, and the wall time between them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Used {
    pub wall: f64,
    pub machine: f64,
    pub postgres: f64,
    pub this: f64,
}

impl Used {
    pub fn between(a: &Sample, b: &Sample) -> Used {
        let s = |x: u64, y: u64| y.saturating_sub(x) as f64 / TICKS_PER_SECOND;
        Used {
            wall: b.at.duration_since(a.at).as_secs_f64(),
            machine: s(a.busy, b.busy),
            postgres: s(a.postgres, b.postgres),
            this: s(a.this, b.this),
        }
    }
}

/// Samples every 100 ms on a thread of its own until stopped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Sampler {
    pub fn start() -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(sample) = sample() {
                        samples.lock().expect("samples").push(sample);
                    }
                    std::thread::sleep(EVERY);
                }
            })
        };
        Sampler { samples, stop, thread }
    }

    /// The CPU used from `from` to `to` (the samples nearest inside), or
    /// nothing if `/proc` could not be read.
    pub fn stop(self, from: Instant, to: Instant) -> Option<Used> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let samples = self.samples.lock().expect("samples");
        let first = samples.iter().find(|s| s.at >= from)?;
        let last = samples.iter().rev().find(|s| s.at <= to)?;
        (last.at > first.at).then(|| Used::between(first, last))
    }
}

fn sample() -> Option<Sample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // cpu  user nice system idle iowait irq softirq steal …
    let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let busy = fields.iter().take(8).sum::<u64>() - fields.get(3)? - fields.get(4)?;
    let mut postgres = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            match process_ticks(&entry.path().join("stat")) {
                Some((comm, ticks)) if comm == "postgres" => postgres += ticks,
                _ => {}
            }
        }
    }
    let this = process_ticks(std::path::Path::new("/proc/self/stat"))?.1;
    Some(Sample { at, busy, postgres, this })
}

/// A process's name and its user + system time, in ticks.
fn process_ticks(path: &std::path::Path) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // pid (comm) state ppid … utime stime: fields 14 and 15, counted after the ")".
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}
