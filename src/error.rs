//! Failures of the tool itself (not of the system under test).
//!
//! A fault that a strategy suffers — a reset publish, a lost delete — is
//! *data*: it becomes an outcome in the history. An [`Error`] is dualwrite
//! failing to do its job: bad input, a service it cannot reach, a snapshot it
//! cannot take. `main` prints the whole chain — what failed, then why, down
//! to the root cause — on one line with [`Chain`], and exits 2.
//!
//! | exit code | meaning                                                   |
//! |-----------|-----------------------------------------------------------|
//! | 0         | every verdict is what the scenario expects                |
//! | 1         | a verdict differs from the scenario's expectation         |
//! | 2         | the tool failed: bad input, a service unreachable or dead during the run, a bug |
//! | 3         | the evidence is incomplete: a verdict is unknown (the drain timed out, the topic was not read to its end, the broker deleted records, a store or backlog could not be read) and none differs |
//! | 130       | interrupted by SIGINT (Ctrl-C); healed and cleaned up first |
//! | 143       | stopped by SIGTERM; healed and cleaned up first           |
//! | 129       | stopped by SIGHUP (the terminal closed); healed and cleaned up first |
//!
//! The signal codes are 128 + the signal's number, what a shell reports for
//! a process the signal killed (see [`crate::signals`]).
//!
//! `compare` combines its runs' codes: 1 if any run's verdict differs from
//! its expectation; otherwise 3 if any verdict is unknown (even where the
//! scenario expects `any`: the figures are then incomplete); otherwise 0.
//! A definite finding outranks missing evidence: an unknown verdict cannot
//! hide an outbox that lost an event beside it.

use std::error::Error as StdError;

/// A boxed source error, kept so that [`Chain`] shows the root cause.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Exit code: every verdict is what the scenario expects.
pub const EXIT_OK: i32 = 0;
/// Exit code: a verdict differs from the scenario's expectation.
pub const EXIT_UNEXPECTED: i32 = 1;
/// Exit code: the tool failed.
pub const EXIT_TOOL: i32 = 2;
/// Exit code: the evidence is incomplete (a verdict is unknown) and no
/// verdict differs from its expectation.
pub const EXIT_UNKNOWN: i32 = 3;
/// Exit code: interrupted by Ctrl-C (SIGINT). SIGTERM gives 143, SIGHUP 129:
/// see [`crate::signals::Signal::exit_code`].
pub const EXIT_INTERRUPTED: i32 = 130;

/// Everything that can stop dualwrite from doing its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or file had a value dualwrite cannot use, and the message
    /// says all there is to say (a value out of range, a missing link).
    #[error("{0}")]
    Config(String),

    /// A flag or file had a value dualwrite cannot use, because a parser or
    /// the system refused it: the message names the flag and the fix, the
    /// source says what the parser said.
    #[error("{message}")]
    Input {
        message: String,
        #[source]
        source: BoxError,
    },

    /// A service could not be reached or set up. The message names the
    /// service, the address and the fix; the source says what happened.
    #[error("cannot reach {service} at {address} ({fix})")]
    Unreachable {
        service: &'static str,
        address: String,
        fix: String,
        #[source]
        source: BoxError,
    },

    /// A service answered, but refused what dualwrite needs from it.
    #[error("{service} at {address} refused to {action}")]
    Refused {
        service: &'static str,
        address: String,
        action: String,
        #[source]
        source: BoxError,
    },

    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),

    #[error(transparent)]
    Proxy(#[from] crate::proxy::ProxyError),

    /// A workload the embedded broker could not hold whole (it would delete
    /// records): refused before the run.
    #[error(transparent)]
    Capacity(#[from] crate::kafka::embedded::CapacityError),

    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A store the run uses stopped answering dualwrite's direct check —
    /// which bypasses the fault proxy, so no scenario caused it.
    #[error(
        "{service} at {address} stopped answering {at} s into the run, and not because of an injected fault \
         (dualwrite checks it directly, bypassing the fault proxy); {fix}",
        at = seconds(.at_ms)
    )]
    StoreDied {
        service: &'static str,
        address: String,
        /// When it stopped answering, on the run's clock.
        at_ms: u64,
        fix: String,
        #[source]
        source: BoxError,
    },

    /// Something that cannot happen did (a task panicked): dualwrite's
    /// fault, not the input's.
    #[error("a bug in dualwrite: {what}; please report it, with the command line printed above")]
    Bug {
        what: String,
        #[source]
        source: BoxError,
    },

    /// A report that cannot be drawn (`--html`, `dualwrite report --from`):
    /// `what` is the file, or "this run"; the source says why.
    #[error("cannot draw the picture of {what}")]
    Picture {
        what: String,
        #[source]
        source: BoxError,
    },

    /// A signal (Ctrl-C, SIGTERM, SIGHUP). Not a failure of the tool, but
    /// the run has no result.
    #[error("interrupted by {}", .0.name())]
    Interrupted(crate::signals::Signal),
}

impl Error {
    /// A service was unreachable.
    pub fn unreachable(
        service: &'static str,
        address: impl Into<String>,
        fix: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Error {
        Error::Unreachable { service, address: address.into(), fix: fix.into(), source: source.into() }
    }

    /// A value dualwrite cannot use, with the error that refused it.
    pub fn input(message: impl Into<String>, source: impl Into<BoxError>) -> Error {
        Error::Input { message: message.into(), source: source.into() }
    }

    /// A service refused an action.
    pub fn refused(
        service: &'static str,
        address: impl Into<String>,
        action: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Error {
        Error::Refused { service, address: address.into(), action: action.into(), source: source.into() }
    }

    /// A task that ended with a panic (or was cancelled when it should not
    /// have been): a bug, whatever the input was.
    pub fn task_failed(task: &str, error: tokio::task::JoinError) -> Error {
        let what = if error.is_panic() { format!("the {task} panicked") } else { format!("the {task} was cancelled") };
        Error::Bug { what, source: Box::new(error) }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted(signal) => signal.exit_code(),
            _ => EXIT_TOOL,
        }
    }

    /// True when standard output was closed by its reader (`dualwrite
    /// compare | head`). Like ripgrep, dualwrite then stops quietly with exit
    /// code 0: the reader has what it wanted, and nothing failed.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Write { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// An error and all its causes on one line, `what failed: why: root cause`.
///
/// The one place that formats a chain: `main` prints errors with it, and
/// anything that keeps an error as text (a warning, the history, `doctor`)
/// should too, so that no cause is lost. (`{:#}` on a thiserror type prints
/// only its own message.) A cause whose message its parent already contains
/// — `cannot read x: No such file (os error 2)` over `No such file (os error
/// 2)` — is not repeated.
pub struct Chain<'e>(pub &'e (dyn StdError + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let message = error.to_string();
            if !message.is_empty() && !shown.contains(&message) {
                write!(f, ": {message}")?;
                shown = message;
            }
            cause = error.source();
        }
        Ok(())
    }
}

/// [`Chain`] as a `String`.
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    Chain(error).to_string()
}

/// `3.2` for 3200 ms.
fn seconds(ms: &u64) -> String {
    format!("{:.1}", *ms as f64 / 1000.0)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_shows_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error = Error::unreachable("Redis", "127.0.0.1:1", "start it", io);
        assert_eq!(chain(&error), "cannot reach Redis at 127.0.0.1:1 (start it): connection refused");

        // A transparent wrapper does not repeat its inner message.
        let read = crate::scenario::ScenarioError::Read {
            path: "x.toml".into(),
            source: crate::files::FileError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "No such file or directory (os error 2)",
            )),
        };
        assert_eq!(
            chain(&Error::from(read)),
            "cannot read scenario file x.toml: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn a_broken_pipe_on_standard_output_is_recognised() {
        let pipe = Error::Write { path: "standard output".into(), source: std::io::ErrorKind::BrokenPipe.into() };
        assert!(pipe.is_broken_pipe());
        assert!(!Error::Config("x".into()).is_broken_pipe());
    }

    #[tokio::test]
    async fn a_task_panic_is_reported_as_a_bug_not_as_bad_input() {
        let panicked = tokio::spawn(async { panic!("boom") }).await.unwrap_err();
        let error = Error::task_failed("fault schedule", panicked);
        assert!(matches!(error, Error::Bug { .. }));
        let text = chain(&error);
        assert!(text.starts_with("a bug in dualwrite: the fault schedule panicked"), "{text}");
        assert_eq!(error.exit_code(), EXIT_TOOL);
    }

    #[test]
    fn a_chain_keeps_every_cause() {
        let error = Error::unreachable("Redis", "127.0.0.1:6379", "is it running?", std::io::Error::other("refused"));
        assert_eq!(chain(&error), "cannot reach Redis at 127.0.0.1:6379 (is it running?): refused");
    }

    #[test]
    fn each_signal_has_its_exit_code() {
        use crate::signals::Signal;
        assert_eq!(Error::Interrupted(Signal::Interrupt).exit_code(), EXIT_INTERRUPTED);
        assert_eq!(Error::Interrupted(Signal::Terminate).exit_code(), 143);
        assert_eq!(Error::Interrupted(Signal::Hangup).exit_code(), 129);
    }
}
