//! The built-in fault proxy: a Toxiproxy-compatible server in-process.
//!
//! [`ProxyServer::start`] binds the HTTP API and serves it on the current
//! tokio runtime; the runner starts one when no `--toxiproxy` URL is given
//! and then drives it through [`ToxiproxyClient`](super::ToxiproxyClient)
//! like any Toxiproxy. [`serve`] is the `dualwrite toxiproxy` subcommand: the
//! same server as a standalone process, populated from a `-config` file.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::api;
use super::collection::Collection;
use super::config::load_config;
use super::ProxyError;

/// How long [`ProxyServer::shutdown`] lets in-flight API requests finish.
const API_DRAIN: Duration = Duration::from_secs(2);

/// A running built-in Toxiproxy.
pub struct ProxyServer {
    addr: SocketAddr,
    collection: Arc<Collection>,
    stop_api: Option<oneshot::Sender<()>>,
    api: JoinHandle<std::io::Result<()>>,
}

impl ProxyServer {
    /// Binds the HTTP API on `api_listen` (port 0 picks a free port, see
    /// [`api_addr`](Self::api_addr)) and starts serving it, with no proxies.
    pub async fn start(api_listen: SocketAddr) -> Result<ProxyServer, ProxyError> {
        let listener = tokio::net::TcpListener::bind(api_listen)
            .await
            .map_err(|source| ProxyError::ApiBind { addr: api_listen, source })?;
        let addr = listener.local_addr().map_err(|source| ProxyError::ApiBind { addr: api_listen, source })?;
        let collection = Arc::new(Collection::default());
        let router = api::router(collection.clone());
        let (stop_api, stopped) = oneshot::channel::<()>();
        let api = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(api = %addr, "fault proxy API listening");
        Ok(ProxyServer { addr, collection, stop_api: Some(stop_api), api })
    }

    /// The address the HTTP API is bound to.
    pub fn api_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, `http://127.0.0.1:PORT`, for a
    /// [`ToxiproxyClient`](super::ToxiproxyClient).
    pub fn url(&self) -> String {
        let host = if self.addr.ip().is_unspecified() {
            // Bound to every interface: loopback reaches it.
            match self.addr {
                SocketAddr::V4(_) => "127.0.0.1".to_string(),
                SocketAddr::V6(_) => "[::1]".to_string(),
            }
        } else {
            match self.addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            }
        };
        format!("http://{host}:{}", self.addr.port())
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

/// `dualwrite toxiproxy`: serves the API on `api_listen`, creates the
/// proxies of `config` (Toxiproxy's `-config` file) if given, and runs until
/// Ctrl-C. Logs go through `tracing` (the binary sends them to stderr).
///
/// Unlike Toxiproxy, which logs a bad config file and carries on, this fails:
/// a workshop participant should see at once that `toxiproxy.json` is wrong.
pub async fn serve(api_listen: SocketAddr, config: Option<&Path>) -> Result<(), ProxyError> {
    let mut server = ProxyServer::start(api_listen).await?;
    if let Some(path) = config {
        let configs = match load_config(path) {
            Ok(configs) => configs,
            Err(e) => {
                server.shutdown().await;
                return Err(e);
            }
        };
        match server.collection.populate(&configs).await {
            Ok(proxies) => {
                tracing::info!(config = %path.display(), proxies = proxies.len(), "populated proxies from file")
            }
            Err(source) => {
                server.shutdown().await;
                return Err(ProxyError::ConfigApply { path: path.to_path_buf(), source });
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
