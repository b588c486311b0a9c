//! Signals: Ctrl-C (SIGINT), SIGTERM and SIGHUP stop a run the same way.
//!
//! A signal does not kill dualwrite: it presses the run's stop button, an
//! [`Interrupt`], and the runner then does what it does after any error —
//! heals the fault proxy, stops its components, drops its namespace — and
//! exits with the signal's conventional code (128 + its number):
//!
//! | signal  | exit code | who sends it |
//! |---------|-----------|--------------|
//! | SIGINT  | 130       | Ctrl-C |
//! | SIGTERM | 143       | `kill`, a process manager, `timeout` |
//! | SIGHUP  | 129       | the terminal closing (an ssh session dropped) |
//!
//! Cleaning up takes a few seconds (a replication slot waits for its
//! walsender to exit). A second signal during that time only says so; a
//! third quits at once, and prints what it left behind and the one command
//! that removes it. After SIGKILL nothing can run, so the next `dualwrite
//! run`, `compare` or `doctor` names what a dead run left (see
//! [`crate::leftovers`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio_util::sync::CancellationToken;

/// The signals that stop a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    Hangup,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        }
    }

    /// tokio's name for it.
    #[cfg(unix)]
    fn kind(self) -> tokio::signal::unix::SignalKind {
        use tokio::signal::unix::SignalKind;
        match self {
            Signal::Interrupt => SignalKind::interrupt(),
            Signal::Terminate => SignalKind::terminate(),
            Signal::Hangup => SignalKind::hangup(),
        }
    }

    /// 128 + the signal's number, what a shell reports for a process the
    /// signal killed — so scripts see the same code either way.
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
            Signal::Hangup => 129,
        }
    }
}

/// One signal's arrivals, counted by a handler that runs in the signal
/// itself (beside tokio's, which only wakes a task), and how many of them
/// have pressed the button so far.
#[cfg(unix)]
struct Arrivals {
    signal: Signal,
    /// `None` where the counting handler could not be put in.
    counted: Option<Arc<std::sync::atomic::AtomicU64>>,
    pressed: u64,
}

#[cfg(unix)]
impl Arrivals {
    fn count(signal: Signal) -> Arrivals {
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = count.clone();
        // SAFETY: the action only adds to an atomic, which is safe inside a
        // signal handler (no allocation, no lock).
        let registered = unsafe {
            signal_hook_registry::register(signal.kind().as_raw_value(), move || {
                counter.fetch_add(1, Ordering::SeqCst);
            })
        };
        Arrivals { signal, counted: registered.ok().map(|_| count), pressed: 0 }
    }

    /// The presses due at a wake-up (`woke`: it was this signal's): one per
    /// signal counted since the last — or, where counting could not be set
    /// up, one for the wake-up itself.
    fn due(&mut self, woke: bool) -> u64 {
        let arrived = self.counted.as_ref().map_or(self.pressed + u64::from(woke), |c| c.load(Ordering::SeqCst));
        let due = arrived - self.pressed;
        self.pressed = arrived;
        due
    }
}

/// A run's stop button. Cloning gives another handle to the same button.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    token: CancellationToken,
    /// The first signal: it decides the exit code.
    first: OnceLock<Signal>,
    presses: AtomicU32,
    /// What the run holds right now and would leave behind if it quit
    /// at once: a label per thing, and the command that removes it.
    held: Mutex<BTreeMap<String, String>>,
}

impl Interrupt {
    /// A button only [`Interrupt::press`] presses (tests, libraries).
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// A button pressed by SIGINT, SIGTERM and SIGHUP, for the rest of the
    /// process's life. Must be called inside the tokio runtime. The handlers
    /// are in place when this returns: a signal a moment later is caught.
    #[cfg(unix)]
    pub fn listen() -> Interrupt {
        use tokio::signal::unix::signal;
        let interrupt = Interrupt::new();
        // tokio wakes the task once for signals that arrive before it runs
        // (three Ctrl-C's on a busy machine can be one wake-up), so each
        // signal is also counted in the handler itself, and a wake-up
        // presses the button once per signal counted since the last one.
        // The counters go in before tokio's handlers: a signal's handlers
        // run in the order they were put in, so a signal has been counted
        // by the time tokio wakes the task for it.
        let mut arrivals = [Signal::Interrupt, Signal::Terminate, Signal::Hangup].map(Arrivals::count);
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
            (signal(Signal::Interrupt.kind()), signal(Signal::Terminate.kind()), signal(Signal::Hangup.kind()))
        else {
            say("warning: cannot install signal handlers; Ctrl-C will not clean up");
            return interrupt;
        };
        let handle = interrupt.clone();
        tokio::spawn(async move {
            loop {
                let woke = tokio::select! {
                    _ = int.recv() => Signal::Interrupt,
                    _ = term.recv() => Signal::Terminate,
                    _ = hup.recv() => Signal::Hangup,
                };
                for signal in &mut arrivals {
                    for _ in 0..signal.due(signal.signal == woke) {
                        handle.press(signal.signal);
                    }
                }
            }
        });
        interrupt
    }

    /// Ctrl-C only, where there are no Unix signals.
    #[cfg(not(unix))]
    pub fn listen() -> Interrupt {
        let interrupt = Interrupt::new();
        let handle = interrupt.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                handle.press(Signal::Interrupt);
            }
        });
        interrupt
    }

    /// What a signal does. The first press stops the run; the second says
    /// it is still cleaning up; the third quits now, naming what is left.
    pub fn press(&self, signal: Signal) {
        let presses = self.inner.presses.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.inner.first.set(signal);
        match presses {
            1 => {
                say(&format!(
                    "\ninterrupted ({}): stopping the run, healing the fault proxy and removing its data",
                    signal.name()
                ));
                self.inner.token.cancel();
            }
            2 => {
                let held = self.held();
                if held.is_empty() {
                    say("still stopping; press Ctrl-C once more to quit at once");
                } else {
                    let what: Vec<&str> = held.keys().map(String::as_str).collect();
                    say(&format!(
                        "still cleaning up ({}); press Ctrl-C once more to quit at once and leave it behind",
                        what.join(", ")
                    ));
                }
            }
            _ => {
                let held = self.held();
                if held.is_empty() {
                    say("quitting at once; nothing was left behind");
                } else {
                    let what: Vec<&str> = held.keys().map(String::as_str).collect();
                    // One command per kind of thing, once each, in order.
                    let mut commands: Vec<&str> = Vec::new();
                    for command in held.values() {
                        if !commands.contains(&command.as_str()) {
                            commands.push(command);
                        }
                    }
                    say(&format!("quitting at once; left behind: {}", what.join(", ")));
                    let pronoun = if what.len() == 1 { "it" } else { "them" };
                    for command in commands {
                        say(&format!("  remove {pronoun} with: {command}"));
                    }
                }
                std::process::exit(self.exit_code());
            }
        }
    }

    /// Resolves once the button is pressed.
    pub async fn cancelled(&self) {
        self.inner.token.cancelled().await
    }

    pub fn is_pressed(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// The first signal, if any arrived.
    pub fn signal(&self) -> Option<Signal> {
        self.inner.first.get().copied()
    }

    /// The process exit code for a run this button stopped.
    pub fn exit_code(&self) -> i32 {
        self.signal().unwrap_or(Signal::Interrupt).exit_code()
    }

    /// The run now holds `what` (e.g. "schema dw_naive_1a2b3c4d"), which
    /// `command` removes if the run cannot.
    pub fn hold(&self, what: impl Into<String>, command: impl Into<String>) {
        self.inner.held.lock().expect("interrupt mutex poisoned").insert(what.into(), command.into());
    }

    /// The run no longer holds `what`.
    pub fn release(&self, what: &str) {
        self.inner.held.lock().expect("interrupt mutex poisoned").remove(what);
    }

    /// What the run holds right now.
    pub fn held(&self) -> BTreeMap<String, String> {
        self.inner.held.lock().expect("interrupt mutex poisoned").clone()
    }
}

/// One line on stderr that cannot fail: after SIGHUP the terminal is gone,
/// and `eprintln!` would panic on the write error in the middle of cleanup.
pub fn say(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
    let _ = stderr.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_128_plus_the_signal_number() {
        assert_eq!(Signal::Interrupt.exit_code(), 128 + 2);
        assert_eq!(Signal::Hangup.exit_code(), 128 + 1);
        assert_eq!(Signal::Terminate.exit_code(), 128 + 15);
    }

    #[test]
    fn the_first_signal_decides_the_exit_code() {
        let interrupt = Interrupt::new();
        assert!(!interrupt.is_pressed());
        interrupt.press(Signal::Terminate);
        interrupt.press(Signal::Interrupt);
        assert!(interrupt.is_pressed());
        assert_eq!(interrupt.signal(), Some(Signal::Terminate));
        assert_eq!(interrupt.exit_code(), 143);
    }

    #[test]
    fn what_is_held_is_what_was_not_released() {
        let interrupt = Interrupt::new();
        interrupt.hold("schema dw_naive_1", "dualwrite doctor --drop-stale");
        interrupt.hold("database dw_cdc_2", "dualwrite doctor --drop-stale");
        interrupt.release("schema dw_naive_1");
        assert_eq!(interrupt.held().keys().collect::<Vec<_>>(), vec!["database dw_cdc_2"]);
    }
}
