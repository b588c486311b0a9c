//! Who may talk to the API: programs on this machine, not web pages.
//!
//! The API reconfigures what sits between a developer's programs and their
//! databases, and it has no authentication (Toxiproxy's has none either).
//! A web page must not be able to drive it, yet browsers let any page send
//! a "simple" cross-origin request (a `text/plain` POST) to any address,
//! loopback included, and DNS rebinding lets a page on `evil.example` have
//! its name resolve to `127.0.0.1` and then read the answers. So, before any
//! route runs:
//!
//! 1. a `User-Agent` starting with `Mozilla/` is refused, as Toxiproxy does
//!    (every browser sends one);
//! 2. a `Host` that is neither a loopback name (`localhost`, `*.localhost`)
//!    nor an IP address of loopback or of the socket the request came in on
//!    is refused: a DNS-rebinding page always sends its own name;
//! 3. an `Origin`, if present, must be this API itself (`http://`, a host
//!    as allowed by 2, and the API's port): a browser adds `Origin` to every
//!    cross-origin request, and programs such as `toxiproxy-cli` and curl
//!    send none.
//!
//! Refusals 2 and 3 are 403 with an [`ApiError`] body. Toxiproxy itself
//! checks only 1.

use std::net::{IpAddr, SocketAddr};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use tokio::net::TcpListener;

use crate::wire::ApiError;

/// The local address of an API connection: the address the client dialled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalAddr(pub Option<SocketAddr>);

impl Connected<IncomingStream<'_, TcpListener>> for LocalAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        LocalAddr(stream.io().local_addr().ok())
    }
}

/// The middleware: refuses browsers, foreign `Host`s and foreign `Origin`s.
pub(crate) async fn refuse_web_pages(
    ConnectInfo(LocalAddr(local)): ConnectInfo<LocalAddr>,
    request: Request,
    next: Next,
) -> Response {
    match check(request.headers(), local) {
        Ok(()) => next.run(request).await,
        Err(Refusal::Browser) => (StatusCode::FORBIDDEN, "User agent not allowed\n").into_response(),
        Err(Refusal::Api(error)) => error.into_response(),
    }
}

enum Refusal {
    /// Toxiproxy's own refusal, in its own plain-text shape.
    Browser,
    Api(ApiError),
}

fn check(headers: &HeaderMap, local: Option<SocketAddr>) -> Result<(), Refusal> {
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if text(header::USER_AGENT).is_some_and(|ua| ua.starts_with("Mozilla/")) {
        return Err(Refusal::Browser);
    }
    let local_ip = local.map(|a| a.ip());
    if let Some(host) = text(header::HOST) {
        if !host_is_local(split_port(host).0, local_ip) {
            return Err(Refusal::Api(ApiError::forbidden(format!(
                "Host {host:?} is not allowed: the fault proxy's API answers only to localhost and IP \
                 addresses (a defence against DNS rebinding); use http://127.0.0.1:PORT"
            ))));
        }
    }
    if let Some(origin) = text(header::ORIGIN) {
        if !origin_is_self(origin, local) {
            return Err(Refusal::Api(ApiError::forbidden(format!(
                "Origin {origin:?} is not allowed: the fault proxy's API does not answer web pages"
            ))));
        }
    }
    Ok(())
}

/// `host[:port]` → (host, port). IPv6 literals keep their brackets off.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

/// A loopback name, or an IP literal of loopback or of this socket.
fn host_is_local(host: &str, local_ip: Option<IpAddr>) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || Some(ip) == local_ip || is_mapped_loopback(ip),
        Err(_) => false,
    }
}

/// `::ffff:127.0.0.1`, as a dual-stack socket may see an IPv4 client.
fn is_mapped_loopback(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

/// Is `origin` this API: `http://`, a local host, and the API's port?
fn origin_is_self(origin: &str, local: Option<SocketAddr>) -> bool {
    let Some(authority) = origin.strip_prefix("http://") else { return false };
    let (host, port) = split_port(authority);
    let port = match port {
        Some(p) => p.parse::<u16>().ok(),
        None => Some(80),
    };
    host_is_local(host, local.map(|a| a.ip())) && port.is_some() && port == local.map(|a| a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn allowed(pairs: &[(&str, &str)]) -> bool {
        check(&headers(pairs), Some("127.0.0.1:8474".parse().unwrap())).is_ok()
    }

    #[test]
    fn programs_on_this_machine_are_let_in() {
        assert!(allowed(&[("host", "127.0.0.1:8474"), ("user-agent", "curl/8.5.0")]));
        assert!(allowed(&[("host", "localhost:8474"), ("user-agent", "Go-http-client/1.1")]));
        assert!(allowed(&[("host", "[::1]:8474")]));
        assert!(allowed(&[("host", "api.localhost:8474")]));
        assert!(allowed(&[]), "no Host at all (HTTP/1.0) is not a browser");
        assert!(allowed(&[("host", "localhost:8474"), ("origin", "http://localhost:8474")]));
        assert!(allowed(&[("host", "127.0.0.1:8474"), ("origin", "http://127.0.0.1:8474")]));
    }

    #[test]
    fn web_pages_are_kept_out() {
        assert!(!allowed(&[("host", "127.0.0.1:8474"), ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")]));
        assert!(!allowed(&[("host", "evil.example:8474")]), "DNS rebinding");
        assert!(!allowed(&[("host", "localhost.evil.example:8474")]));
        assert!(!allowed(&[("host", "127.0.0.1:8474"), ("origin", "http://evil.example")]));
        assert!(!allowed(&[("host", "127.0.0.1:8474"), ("origin", "null")]));
        assert!(!allowed(&[("host", "127.0.0.1:8474"), ("origin", "http://localhost:3000")]), "another local page");
        assert!(!allowed(&[("host", "127.0.0.1:8474"), ("origin", "https://127.0.0.1:8474")]));
    }

    #[test]
    fn the_address_a_client_dialled_is_its_own_host() {
        let lan = Some("192.0.2.10:8474".parse().unwrap());
        assert!(check(&headers(&[("host", "192.0.2.10:8474")]), lan).is_ok());
        assert!(check(&headers(&[("host", "192.0.2.11:8474")]), lan).is_err());
    }
}
