//! The server: a Toxiproxy-compatible fault proxy in-process, or as a
//! standalone process until Ctrl-C.
//!
//! [`ProxyServer::start`] binds the HTTP API and serves it on the current
//! tokio runtime, with no proxies; a program then drives it through
//! [`ToxiproxyClient`](crate::ToxiproxyClient) like any Toxiproxy. [`serve`]
//! is the same server populated from a `-config` file, running until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{self, LocalAddr};
use crate::bind::{warn_if_exposed, BindPolicy};
use crate::collection::Collection;
use crate::config::load_config;
use crate::ProxyError;

/// How long [`ProxyServer::shutdown`] lets in-flight API requests finish.
const API_DRAIN: Duration = Duration::from_secs(2);

/// How a server is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Where the HTTP API listens; port 0 picks a free port (see
    /// [`ProxyServer::api_addr`]). An unspecified address is bound on
    /// loopback under [`BindPolicy::LoopbackOnly`].
    pub api_listen: SocketAddr,
    /// Where the API and every proxy may listen.
    pub bind: BindPolicy,
    /// The seed of the toxics' random draws (see [`ProxyServer::reseed`]).
    pub seed: u64,
}

impl Default for ServerOptions {
    /// The API on a free loopback port, loopback only, seed 0.
    fn default() -> Self {
        ServerOptions { api_listen: SocketAddr::from(([127, 0, 0, 1], 0)), bind: BindPolicy::LoopbackOnly, seed: 0 }
    }
}

/// A running server.
pub struct ProxyServer {
    addr: SocketAddr,
    collection: Arc<Collection>,
    stop_api: Option<oneshot::Sender<()>>,
    api: JoinHandle<std::io::Result<()>>,
}

impl ProxyServer {
    /// Binds the HTTP API on `api_listen` and starts serving it, with no
    /// proxies, loopback only, seed 0.
    pub async fn start(api_listen: SocketAddr) -> Result<ProxyServer, ProxyError> {
        ProxyServer::start_with(ServerOptions { api_listen, ..ServerOptions::default() }).await
    }

    /// Binds the HTTP API and starts serving it, with no proxies.
    pub async fn start_with(options: ServerOptions) -> Result<ProxyServer, ProxyError> {
        let api_listen = options.bind.apply_addr(options.api_listen);
        let listener = tokio::net::TcpListener::bind(api_listen)
            .await
            .map_err(|source| ProxyError::ApiBind { addr: api_listen, source })?;
        let addr = listener.local_addr().map_err(|source| ProxyError::ApiBind { addr: api_listen, source })?;
        warn_if_exposed("the fault proxy's HTTP API", addr);
        let collection = Arc::new(Collection::new(options.bind, options.seed).map_err(ProxyError::DataPlane)?);
        let service = api::router(collection.clone()).into_make_service_with_connect_info::<LocalAddr>();
        let (stop_api, stopped) = oneshot::channel::<()>();
        let api = tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(api = %addr, seed = options.seed, "fault proxy API listening");
        Ok(ProxyServer { addr, collection, stop_api: Some(stop_api), api })
    }

    /// The address the HTTP API is bound to.
    pub fn api_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, `http://127.0.0.1:PORT`, for a
    /// [`ToxiproxyClient`](crate::ToxiproxyClient).
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            // Bound to every interface: loopback reaches it.
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".parse().expect("an address"),
            ip if ip.is_unspecified() => "::1".parse().expect("an address"),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// Sets the seed of the toxics' draws for every connection opened from
    /// now on, and restarts every proxy's connection count: the n-th
    /// connection on a proxy after `reseed(s)` draws the same jitter, slicer
    /// cuts and toxicity rolls whatever ran before. Connections already open
    /// keep their draws.
    pub async fn reseed(&self, seed: u64) {
        self.collection.reseed(seed).await;
        tracing::debug!(seed, "fault proxy reseeded");
    }

    /// Creates the proxies of a `-config` file (see [`crate::load_config`]).
    pub async fn populate_from(&self, path: &std::path::Path) -> Result<usize, ProxyError> {
        let configs = load_config(path)?;
        match self.collection.populate(&configs).await {
            Ok(proxies) => Ok(proxies.len()),
            Err((source, _)) => Err(ProxyError::ConfigApply { path: path.to_path_buf(), source }),
        }
    }

    /// Stops every proxy (closing all their connections) and the API.
    pub async fn shutdown(mut self) {
        self.collection.stop_all().await;
        if let Some(stop) = self.stop_api.take() {
            let _ = stop.send(());
        }
        // An idle keep-alive client cannot hold the shutdown up for long.
        if tokio::time::timeout(API_DRAIN, &mut self.api).await.is_err() {
            self.api.abort();
        }
        tracing::info!(api = %self.addr, "fault proxy stopped");
    }
}

/// What [`serve`] runs.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub server: ServerOptions,
    /// Proxies to create at start, in Toxiproxy's `-config` format.
    pub config: Option<PathBuf>,
}

/// Serves the API, creates the proxies of the config file if one is given,
/// and runs until Ctrl-C. Logs go through `tracing`.
///
/// Unlike Toxiproxy, which logs a bad config file and carries on, this fails:
/// whoever started it should see at once that the file is wrong.
pub async fn serve(options: ServeOptions) -> Result<(), ProxyError> {
    let mut server = ProxyServer::start_with(options.server).await?;
    if let Some(path) = &options.config {
        match server.populate_from(path).await {
            Ok(count) => tracing::info!(config = %path.display(), proxies = count, "populated proxies from file"),
            Err(e) => {
                server.shutdown().await;
                return Err(e);
            }
        }
    }
    tokio::select! {
        signal = tokio::signal::ctrl_c() => {
            tracing::info!("Ctrl-C: stopping the fault proxy");
            server.shutdown().await;
            signal.map_err(ProxyError::Signal)
        }
        served = &mut server.api => {
            let addr = server.addr;
            server.collection.stop_all().await;
            match served {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(ProxyError::ApiServe { addr, source }),
                Err(join) => Err(ProxyError::ApiServe { addr, source: std::io::Error::other(join) }),
            }
        }
    }
}
