//! The one error type of the fault proxy, server side and client side.
//!
//! Every message is a lowercase sentence that names the service, the address
//! and, where there is one, the fix, so that `main`'s `{:#}` chain reads as a
//! diagnosis. Sources are kept, never flattened into strings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::wire::ApiError;

/// Why the fault proxy (the built-in server, or a client of any Toxiproxy)
/// could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The base URL given for a Toxiproxy is not a URL.
    #[error("{url:?} is not a valid fault proxy URL (expected something like http://127.0.0.1:8474)")]
    InvalidUrl {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The HTTP client itself could not be built (TLS backend, resolver).
    #[error("cannot build the HTTP client for the fault proxy")]
    HttpClient(#[source] reqwest::Error),

    /// Nothing answered at the Toxiproxy address.
    #[error("cannot reach the fault proxy at {url}: {reason} ({hint})")]
    Unreachable {
        url: String,
        /// The root cause in a few words ("connection refused").
        reason: String,
        /// What to do about it (see [`ToxiproxyClient::with_hint`](crate::ToxiproxyClient::with_hint)).
        hint: String,
        #[source]
        source: reqwest::Error,
    },

    /// The Toxiproxy accepted the connection but did not answer in time.
    #[error(
        "the fault proxy at {url} did not answer {method} {path} within {timeout:?} \
         (is it overloaded, or is something else listening there?)"
    )]
    Timeout {
        url: String,
        method: &'static str,
        path: String,
        timeout: Duration,
        #[source]
        source: reqwest::Error,
    },

    /// The Toxiproxy answered with an error status; `message` is its own text.
    #[error("the fault proxy at {url} refused {method} {path} with HTTP {status}: {message}")]
    Api { url: String, method: &'static str, path: String, status: u16, message: String },

    /// The Toxiproxy answered, but not with the JSON Toxiproxy 2.x sends.
    #[error(
        "the fault proxy at {url} sent an unreadable answer to {method} {path} \
         (is it a Toxiproxy 2.x?)"
    )]
    BadResponse {
        url: String,
        method: &'static str,
        path: String,
        #[source]
        source: reqwest::Error,
    },

    /// The built-in server could not bind its HTTP API.
    #[error(
        "cannot start the fault proxy's HTTP API on {addr} (is another toxiproxy already \
         running there? choose another address)"
    )]
    ApiBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The thread that carries the proxies' traffic could not be started.
    #[error("cannot start the fault proxy's data plane (a thread and its runtime)")]
    DataPlane(#[source] std::io::Error),

    /// The built-in server's HTTP API stopped with an I/O error.
    #[error("the fault proxy's HTTP API on {addr} failed")]
    ApiServe {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// A `-config` file could not be read.
    #[error("cannot read the fault proxy config {}", path.display())]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A `-config` file is larger than any proxy list (it is not one).
    #[error(
        "{} is larger than {limit} bytes, too large for a Toxiproxy config (is it the right file?)",
        path.display()
    )]
    ConfigTooLarge { path: PathBuf, limit: u64 },

    /// A `-config` file is not Toxiproxy's format.
    #[error(
        "{} is not a Toxiproxy config (expected a JSON array of \
         {{\"name\", \"listen\", \"upstream\", \"enabled\"}} objects)",
        path.display()
    )]
    ConfigParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The proxies of a `-config` file could not be created (a port in use,
    /// a missing field).
    #[error("cannot create the proxies declared in {}", path.display())]
    ConfigApply {
        path: PathBuf,
        #[source]
        source: ApiError,
    },

    /// Waiting for Ctrl-C failed (no signal handler could be installed).
    #[error("cannot wait for Ctrl-C")]
    Signal(#[source] std::io::Error),
}
