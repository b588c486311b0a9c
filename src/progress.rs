//! The live display on stderr while a run is under way: the phase, elapsed
//! time, orders, the faults active right now, and the drift a reader just saw
//! ("db 977 v12 · topic 981 v10").
//!
//! It draws with indicatif and vanishes when stderr is not a terminal; then
//! each phase is logged at info level instead (`-v` shows it).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::history::History;
use crate::runner::Plan;
use crate::strategy::Strategy;

/// The progress display for one invocation (one run, or a whole compare).
pub struct Progress {
    bar: ProgressBar,
    /// `[2/6] ` while comparing, empty for a single run.
    prefix: std::sync::Mutex<String>,
}

impl Progress {
    /// A display on stderr, hidden when stderr is not a terminal.
    pub fn stderr() -> Progress {
        Progress::with_target(ProgressDrawTarget::stderr())
    }

    /// A display that draws nothing (tests, libraries).
    pub fn hidden() -> Progress {
        Progress::with_target(ProgressDrawTarget::hidden())
    }

    fn with_target(target: ProgressDrawTarget) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(1000), target);
        bar.set_style(
            ProgressStyle::with_template("{prefix}{msg:.dim} {wide_bar:.cyan/blue} {elapsed}")
                .expect("a valid template")
                .progress_chars("━╸ "),
        );
        Progress { bar, prefix: std::sync::Mutex::new(String::new()) }
    }

    /// Sets the `[i/n] ` shown before the strategy while comparing.
    pub fn set_position(&self, index: usize, total: usize) {
        *self.prefix.lock().expect("progress mutex poisoned") = format!("[{}/{}] ", index + 1, total);
    }

    fn prefix(&self, strategy: Strategy) -> String {
        format!("{}{strategy:<14} ", self.prefix.lock().expect("progress mutex poisoned"))
    }

    /// A new phase began.
    pub fn phase(&self, strategy: Strategy, phase: &str) {
        tracing::info!("{strategy}: {phase}");
        self.bar.set_prefix(self.prefix(strategy));
        self.bar.set_message(phase.to_string());
        if phase == "prepare" {
            self.bar.reset();
            self.bar.set_position(0);
        }
        self.bar.tick();
    }

    /// The main phase's periodic update.
    pub fn main(&self, plan: &Plan, history: &History) {
        let clock = history.clock();
        let elapsed = Duration::from_millis(clock.now());
        let total = plan.workload.duration;
        let counts = history.live_counts();
        let active: Vec<String> =
            plan.schedule.active_at(elapsed).map(|w| format!("{} {}", w.link, w.fault.label())).collect();
        let drift = history
            .last_read()
            .map(|r| {
                let show = |v: Option<crate::history::StockAfter>| {
                    v.map(|v| format!("{} v{}", v.quantity, v.version)).unwrap_or_else(|| "–".into())
                };
                let served =
                    if plan.strategy.caches() { format!(" · cache {}", show(r.served)) } else { String::new() };
                let topic =
                    if plan.strategy.publishes() { format!(" · topic {}", show(r.projection)) } else { String::new() };
                format!("p{} db {}{served}{topic}", r.product_id, show(r.truth))
            })
            .unwrap_or_default();
        self.bar.set_position((elapsed.as_secs_f64() / total.as_secs_f64() * 1000.0).min(1000.0) as u64);
        self.bar.set_message(format!(
            "{:.1}/{:.0}s orders {} ok {} fail {} unknown {} · faults: {} · {drift}",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            counts.orders,
            counts.committed,
            counts.failed_legs,
            counts.unknown_legs,
            if active.is_empty() { "none".to_string() } else { active.join(", ") },
        ));
    }

    /// The run of `strategy` is over.
    pub fn done(&self, strategy: Strategy) {
        tracing::info!("{strategy}: done");
        self.bar.set_position(1000);
    }

    /// Removes the display (before the table is printed).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
