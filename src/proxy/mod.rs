//! The fault proxy: a Toxiproxy-compatible server built in, and the client
//! dualwrite uses to drive any Toxiproxy (built in or real).

pub mod toxic;

/// Placeholder until the proxy branch lands.
#[derive(Debug, thiserror::Error)]
#[error("proxy error")]
pub struct ProxyError;
