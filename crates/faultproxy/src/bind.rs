//! Where the server's sockets listen: loopback unless told otherwise.
//!
//! A fault proxy forwards to databases that often trust every local
//! connection, and its API reconfigures them; on a laptop on a shared
//! network neither may be reachable from other machines by accident.
//! Toxiproxy's `-config` files (and this workspace's `toxiproxy.json`) say
//! `0.0.0.0:PORT` because inside a container that is the only way to be
//! reached; outside one, [`BindPolicy::LoopbackOnly`] binds such an address
//! on `127.0.0.1:PORT` (`[::]` on `[::1]`). An address that names a host is
//! bound as given. Every listener that ends up off loopback is named in a
//! warning.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether an unspecified listen address (`0.0.0.0`, `[::]`) means "every
/// interface" (as in Toxiproxy) or loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindPolicy {
    /// Bind `0.0.0.0`/`[::]` on `127.0.0.1`/`[::1]` (the default).
    #[default]
    LoopbackOnly,
    /// Bind what the address says, every interface included.
    Any,
}

impl BindPolicy {
    /// The address to bind for a configured `listen` (`host:port`).
    /// Addresses that are not IP literals (`localhost:8474`) are returned
    /// unchanged, for the resolver.
    pub fn apply(self, listen: &str) -> String {
        match (self, listen.parse::<SocketAddr>()) {
            (BindPolicy::LoopbackOnly, Ok(addr)) if addr.ip().is_unspecified() => {
                SocketAddr::new(loopback_like(addr.ip()), addr.port()).to_string()
            }
            _ => listen.to_string(),
        }
    }

    /// [`apply`](Self::apply) for an address already parsed.
    pub fn apply_addr(self, addr: SocketAddr) -> SocketAddr {
        match self {
            BindPolicy::LoopbackOnly if addr.ip().is_unspecified() => {
                SocketAddr::new(loopback_like(addr.ip()), addr.port())
            }
            _ => addr,
        }
    }
}

fn loopback_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

/// Logs a warning when `bound` can be reached from other machines.
pub(crate) fn warn_if_exposed(what: &str, bound: SocketAddr) {
    if !bound.ip().is_loopback() {
        tracing::warn!("{what} listens on {bound}, which is not loopback: other machines on the network can reach it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_become_loopback_by_default() {
        let policy = BindPolicy::default();
        assert_eq!(policy.apply("0.0.0.0:25432"), "127.0.0.1:25432");
        assert_eq!(policy.apply("[::]:18080"), "[::1]:18080");
        assert_eq!(policy.apply("192.0.2.7:1"), "192.0.2.7:1", "a named interface is kept");
        assert_eq!(policy.apply("localhost:0"), "localhost:0");
        assert_eq!(BindPolicy::Any.apply("0.0.0.0:25432"), "0.0.0.0:25432");
        assert_eq!(policy.apply_addr("0.0.0.0:8474".parse().unwrap()), "127.0.0.1:8474".parse().unwrap());
    }
}
