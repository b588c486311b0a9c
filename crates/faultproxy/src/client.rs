//! A client for Toxiproxy's HTTP API, real or built in.
//!
//! The same calls work against the in-process
//! [`ProxyServer`](crate::ProxyServer) and a Toxiproxy in Docker. Every
//! request has a timeout (5 s unless told otherwise): a fault proxy that
//! hangs must not hang whoever heals it.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::{ProxyConfig, ProxyInfo, ProxyUpdate, Toxic};
use crate::ProxyError;

/// The default timeout of every request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What an unreachable-server error suggests unless told otherwise.
pub const DEFAULT_HINT: &str = "is a Toxiproxy server running there?";

/// A handle on one Toxiproxy API.
#[derive(Debug, Clone)]
pub struct ToxiproxyClient {
    base: Url,
    http: reqwest::Client,
    timeout: Duration,
    hint: String,
}

impl ToxiproxyClient {
    /// A client for the API at `base_url` (e.g. `http://127.0.0.1:8474`),
    /// with the default timeout.
    pub fn new(base_url: &str) -> Result<ToxiproxyClient, ProxyError> {
        ToxiproxyClient::with_timeout(base_url, DEFAULT_TIMEOUT)
    }

    /// A client whose every request gives up after `timeout`.
    pub fn with_timeout(base_url: &str, timeout: Duration) -> Result<ToxiproxyClient, ProxyError> {
        let base = reqwest::Client::new()
            .get(base_url)
            .build()
            .map(|request| request.url().clone())
            .map_err(|source| ProxyError::InvalidUrl { url: base_url.to_string(), source })?;
        let http = reqwest::Client::builder().timeout(timeout).build().map_err(ProxyError::HttpClient)?;
        Ok(ToxiproxyClient { base, http, timeout, hint: DEFAULT_HINT.to_string() })
    }

    /// Sets what an unreachable-server error tells the user to do, e.g. the
    /// command that starts the server in the program that uses this client.
    pub fn with_hint(mut self, hint: impl Into<String>) -> ToxiproxyClient {
        self.hint = hint.into();
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `GET /version`: the server's version string.
    pub async fn version(&self) -> Result<String, ProxyError> {
        #[derive(serde::Deserialize)]
        struct Version {
            version: String,
        }
        let v: Version = self.call(Method::GET, &["version"], None::<&()>).await?;
        Ok(v.version)
    }

    /// `GET /proxies`: every proxy by name, with its toxics.
    pub async fn proxies(&self) -> Result<BTreeMap<String, ProxyInfo>, ProxyError> {
        self.call(Method::GET, &["proxies"], None::<&()>).await
    }

    /// `POST /populate`: creates the proxies, replacing any of the same name
    /// whose `listen` or `upstream` differs; leaves matching ones untouched.
    pub async fn populate(&self, proxies: &[ProxyConfig]) -> Result<Vec<ProxyInfo>, ProxyError> {
        #[derive(serde::Deserialize)]
        struct Populated {
            proxies: Vec<ProxyInfo>,
        }
        let p: Populated = self.call(Method::POST, &["populate"], Some(proxies)).await?;
        Ok(p.proxies)
    }

    /// `POST /proxies`: creates one proxy (refused if the name is taken).
    pub async fn create_proxy(&self, proxy: &ProxyConfig) -> Result<ProxyInfo, ProxyError> {
        self.call(Method::POST, &["proxies"], Some(proxy)).await
    }

    /// `GET /proxies/{name}`.
    pub async fn get_proxy(&self, name: &str) -> Result<ProxyInfo, ProxyError> {
        self.call(Method::GET, &["proxies", name], None::<&()>).await
    }

    /// Updates a proxy's `listen`, `upstream` or `enabled`.
    pub async fn update_proxy(&self, name: &str, update: &ProxyUpdate) -> Result<ProxyInfo, ProxyError> {
        // POST rather than PATCH: every Toxiproxy 2.x accepts it (PATCH came
        // in 2.5); newer ones log a deprecation warning, nothing more.
        self.call(Method::POST, &["proxies", name], Some(update)).await
    }

    /// `DELETE /proxies/{name}`.
    pub async fn delete_proxy(&self, name: &str) -> Result<(), ProxyError> {
        self.call_empty(Method::DELETE, &["proxies", name]).await
    }

    /// Takes a proxy down (`false`: no listener, every connection closed) or
    /// brings it back up (`true`).
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), ProxyError> {
        self.update_proxy(name, &ProxyUpdate { enabled: Some(enabled), ..ProxyUpdate::default() }).await.map(|_| ())
    }

    /// `GET /proxies/{proxy}/toxics`.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, ProxyError> {
        self.call(Method::GET, &["proxies", proxy, "toxics"], None::<&()>).await
    }

    /// `POST /proxies/{proxy}/toxics`: adds a toxic; returns it as stored
    /// (with its default name filled in if it had none).
    pub async fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<Toxic, ProxyError> {
        self.call(Method::POST, &["proxies", proxy, "toxics"], Some(toxic)).await
    }

    /// `DELETE /proxies/{proxy}/toxics/{toxic}`.
    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ProxyError> {
        self.call_empty(Method::DELETE, &["proxies", proxy, "toxics", toxic]).await
    }

    /// `POST /reset`: every proxy enabled, every toxic removed.
    pub async fn reset(&self) -> Result<(), ProxyError> {
        self.call_empty(Method::POST, &["reset"]).await
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // Percent-encodes each segment: a proxy name is data, not a path.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<reqwest::Response, ProxyError> {
        let path = format!("/{}", segments.join("/"));
        let mut request = self.http.request(method.clone(), self.url(segments));
        if let Some(body) = body {
            request = request.json(body);
        }
        let method = method_name(&method);
        let response = request.send().await.map_err(|source| self.transport_error(method, &path, source))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        // Toxiproxy's refusals are `{"error": "...", "status": N}`.
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        Err(ProxyError::Api { url: self.base_url().to_string(), method, path, status, message })
    }

    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<T, ProxyError> {
        let response = self.send(method.clone(), segments, body).await?;
        response.json().await.map_err(|source| {
            let path = format!("/{}", segments.join("/"));
            if source.is_timeout() {
                self.transport_error(method_name(&method), &path, source)
            } else {
                ProxyError::BadResponse { url: self.base_url().to_string(), method: method_name(&method), path, source }
            }
        })
    }

    async fn call_empty(&self, method: Method, segments: &[&str]) -> Result<(), ProxyError> {
        self.send(method, segments, None::<&()>).await.map(|_| ())
    }

    fn transport_error(&self, method: &'static str, path: &str, source: reqwest::Error) -> ProxyError {
        let url = self.base_url().to_string();
        if source.is_timeout() {
            ProxyError::Timeout { url, method, path: path.to_string(), timeout: self.timeout, source }
        } else {
            ProxyError::Unreachable { url, reason: root_cause(&source), hint: self.hint.clone(), source }
        }
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "a request",
    }
}

/// The innermost cause of an error, as a few lowercase words: "connection
/// refused" rather than reqwest's "error sending request for url (...)".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_names() {
        let client = ToxiproxyClient::new("http://127.0.0.1:8474/").unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:8474");
        assert_eq!(
            client.url(&["proxies", "a b/c", "toxics"]).as_str(),
            "http://127.0.0.1:8474/proxies/a%20b%2Fc/toxics"
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        let err = ToxiproxyClient::new("not a url").unwrap_err();
        assert!(err.to_string().contains("is not a valid fault proxy URL"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_server_names_the_fix() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let err = ToxiproxyClient::new(&url).unwrap().version().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot reach the fault proxy at {url}: connection refused (is a Toxiproxy server running there?)")
        );
        let err = ToxiproxyClient::new(&url).unwrap().with_hint("start one").version().await.unwrap_err();
        assert!(err.to_string().ends_with("connection refused (start one)"), "{err}");
    }
}
