//! Proxies as the API and the `-config` file spell them.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::toxic::Toxic;

fn enabled_by_default() -> bool {
    true
}

/// One proxy to create: a name, where it listens and where it forwards to.
///
/// A `-config` file is a JSON array of these, exactly what a real
/// `toxiproxy-server -config FILE` reads and what `POST /populate` takes:
///
/// ```json
/// [{"name": "redis", "listen": "127.0.0.1:26379", "upstream": "127.0.0.1:6379", "enabled": true}]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyConfig {
    /// Unique name, e.g. `postgres`.
    pub name: String,
    /// `host:port` to listen on; port 0 picks a free port, which the API then
    /// reports in its `listen` field. The built-in server binds an
    /// unspecified host (`0.0.0.0`, `[::]`) on loopback unless it was started
    /// to listen on every interface (see [`BindPolicy`](crate::BindPolicy)).
    #[serde(default)]
    pub listen: String,
    /// `host:port` every accepted connection is forwarded to.
    pub upstream: String,
    /// `false` creates the proxy "down" (not listening). Defaults to `true`,
    /// as in Toxiproxy.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

impl ProxyConfig {
    /// An enabled proxy.
    pub fn new(name: impl Into<String>, listen: impl Into<String>, upstream: impl Into<String>) -> Self {
        ProxyConfig { name: name.into(), listen: listen.into(), upstream: upstream.into(), enabled: true }
    }
}

/// A proxy as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyInfo {
    /// Unique name, e.g. `postgres`.
    pub name: String,
    /// The address the proxy listens on: the bound one (a port 0 resolved)
    /// once it has started.
    pub listen: String,
    /// Where accepted connections are forwarded to.
    pub upstream: String,
    /// `false` when the proxy is down.
    pub enabled: bool,
    /// Its toxics, upstream first. A real Toxiproxy may send `null`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub toxics: Vec<Toxic>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Toxic>, D::Error> {
    Ok(Option::<Vec<Toxic>>::deserialize(deserializer)?.unwrap_or_default())
}

impl ProxyInfo {
    /// `listen` as a socket address, if it is one (it is, once started).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// The fields of a proxy update; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyUpdate {
    /// A new listen address (restarts the proxy, dropping its connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// A new upstream (restarts the proxy, dropping its connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// `false` takes the proxy down, `true` brings it back up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}
