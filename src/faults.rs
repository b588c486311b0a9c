//! Executing a fault schedule through the Toxiproxy API.
//!
//! Each window becomes two API calls: at `from`, add its toxic (or disable
//! its proxy, for `down`); at `until`, remove it (or enable the proxy). The
//! calls go to whichever Toxiproxy the run uses — built in or real — so an
//! instructor can reproduce any window by hand with `toxiproxy-cli`.
//!
//! Healing is not this module's job: the runner resets every proxy after the
//! main phase whatever happened, so a window cut short by an error or Ctrl-C
//! never outlives the run.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::Result;
use crate::history::{Clock, Millis};
use crate::proxy::toxic::Toxic;
use crate::proxy::ToxiproxyClient;
use crate::scenario::schedule::{Fault, Schedule, Window};

/// What the executor did, when, on the run's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    pub window: usize,
    pub at: Millis,
    /// `added`, `removed`.
    pub action: &'static str,
    pub description: String,
}

/// The log of applied faults, shared with the progress display.
#[derive(Debug, Clone, Default)]
pub struct FaultLog {
    entries: Arc<Mutex<Vec<Applied>>>,
}

impl FaultLog {
    fn push(&self, applied: Applied) {
        self.entries.lock().expect("fault log mutex poisoned").push(applied);
    }

    pub fn entries(&self) -> Vec<Applied> {
        self.entries.lock().expect("fault log mutex poisoned").clone()
    }
}

/// The toxic a window adds: named after the window so that two windows
/// never collide, with toxicity 1 (every connection, every time).
fn toxic_for(index: usize, window: &Window) -> Option<Toxic> {
    match &window.fault {
        Fault::Toxic { toxic } => {
            let mut toxic = toxic.clone();
            toxic.name = format!("dw{index}_{}_{}", toxic.kind.type_name(), toxic.stream);
            toxic.toxicity = 1.0;
            Some(toxic)
        }
        Fault::Down => None,
    }
}

/// Runs the schedule's windows on time until every window has ended. Returns
/// an error if the proxy refuses a call: the scenario could not be executed
/// as written, and the run's figures would not mean what they claim.
pub async fn execute(schedule: &Schedule, proxy: &ToxiproxyClient, clock: Clock, log: &FaultLog) -> Result<()> {
    // Every start and end, in time order; at the same instant an end goes
    // first so that back-to-back windows do not overlap.
    let mut steps: Vec<(std::time::Duration, bool, usize)> = Vec::new();
    for (i, w) in schedule.windows.iter().enumerate() {
        steps.push((w.from, true, i));
        steps.push((w.until, false, i));
    }
    steps.sort_by_key(|(at, start, i)| (*at, *start, *i));

    for (at, start, i) in steps {
        tokio::time::sleep_until(tokio::time::Instant::from_std(clock.at(at))).await;
        let window = &schedule.windows[i];
        let toxic = toxic_for(i, window);
        match (start, &toxic) {
            (true, Some(toxic)) => {
                proxy.add_toxic(&window.link, toxic).await?;
            }
            (false, Some(toxic)) => proxy.remove_toxic(&window.link, &toxic.name).await?,
            (true, None) => proxy.set_enabled(&window.link, false).await?,
            (false, None) => proxy.set_enabled(&window.link, true).await?,
        }
        log.push(Applied {
            window: i,
            at: clock.now(),
            action: if start { "added" } else { "removed" },
            description: window.describe(),
        });
        tracing::info!("{} {}", if start { "fault on:" } else { "fault off:" }, window.describe());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::toxic::{Stream, ToxicKind};
    use std::time::Duration;

    #[test]
    fn each_window_gets_its_own_toxic_name() {
        let window = Window {
            link: "kafka".into(),
            from: Duration::from_secs(1),
            until: Duration::from_secs(2),
            fault: Fault::Toxic { toxic: Toxic::new(ToxicKind::ResetPeer { timeout: 0 }, Stream::Downstream) },
        };
        assert_eq!(toxic_for(3, &window).unwrap().name, "dw3_reset_peer_downstream");
        let down = Window { fault: Fault::Down, ..window };
        assert!(toxic_for(0, &down).is_none());
    }
}
