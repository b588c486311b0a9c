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
//! | 2         | the tool failed: bad input, a service unreachable, a bug  |
//! | 130       | interrupted (Ctrl-C); the proxies were healed first       |

use std::error::Error as StdError;

/// A boxed source error, kept so the `{:#}` chain shows the root cause.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Exit code: every verdict is what the scenario expects.
pub const EXIT_OK: i32 = 0;
/// Exit code: a verdict differs from the scenario's expectation.
pub const EXIT_UNEXPECTED: i32 = 1;
/// Exit code: the tool failed.
pub const EXIT_TOOL: i32 = 2;
/// Exit code: interrupted by Ctrl-C.
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

    /// A report that cannot be drawn (`--html`, `dualwrite report --from`):
    /// `what` is the file, or "this run"; the source says why.
    #[error("cannot draw the picture of {what}")]
    Picture {
        what: String,
        #[source]
        source: BoxError,
    },

    /// Ctrl-C. Not a failure of the tool, but the run has no result.
    #[error("interrupted")]
    Interrupted,
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

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted => EXIT_INTERRUPTED,
            _ => EXIT_TOOL,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
