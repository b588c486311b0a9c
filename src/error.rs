//! Failures of the tool itself (not of the system under test).
//!
//! A fault that a strategy suffers — a reset publish, a lost delete — is
//! *data*: it becomes an outcome in the history. An [`Error`] is dualwrite
//! failing to do its job: bad input, a service it cannot reach, a snapshot it
//! cannot take. `main` prints the chain with `{:#}` and exits 2.
//!
//! | exit code | meaning                                                   |
//! |-----------|-----------------------------------------------------------|
//! | 0         | every verdict is what the scenario expects                |
//! | 1         | a verdict differs from the scenario's expectation         |
//! | 2         | the tool failed: bad input, a service unreachable or dead during the run, a bug |
//! | 130       | interrupted by SIGINT (Ctrl-C); healed and cleaned up first |
//! | 143       | stopped by SIGTERM; healed and cleaned up first           |
//! | 129       | stopped by SIGHUP (the terminal closed); healed and cleaned up first |
//!
//! The signal codes are 128 + the signal's number, what a shell reports for
//! a process the signal killed (see [`crate::signals`]).

use std::error::Error as StdError;

/// A boxed source error, kept so the `{:#}` chain shows the root cause.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Exit code: every verdict is what the scenario expects.
pub const EXIT_OK: i32 = 0;
/// Exit code: a verdict differs from the scenario's expectation.
pub const EXIT_UNEXPECTED: i32 = 1;
/// Exit code: the tool failed.
pub const EXIT_TOOL: i32 = 2;
/// Exit code: interrupted by Ctrl-C (SIGINT). SIGTERM gives 143, SIGHUP 129:
/// see [`crate::signals::Signal::exit_code`].
pub const EXIT_INTERRUPTED: i32 = 130;

/// Everything that can stop dualwrite from doing its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or file had a value dualwrite cannot use.
    #[error("{0}")]
    Config(String),

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
}

/// `3.2` for 3200 ms.
fn seconds(ms: &u64) -> String {
    format!("{:.1}", *ms as f64 / 1000.0)
}

/// An error and every source below it, `: `-separated — what `{:#}` prints
/// for an anyhow error, for the places that report an error without failing
/// (a history entry, a cleanup warning).
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        // Some errors repeat their source in their own message.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

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
