//! The proxies of one server: listening, accepting, going down, coming back.
//!
//! A [`Proxy`] is a name, a listen address, an upstream address, its toxics
//! and — while enabled — a listener task plus one task per connection. "Down"
//! (`enabled: false`) is not a toxic: it closes the listener and every
//! connection, so new connections are refused and pooled ones break, exactly
//! as Toxiproxy does. The [`Collection`] holds the proxies by name and
//! implements the operations behind the HTTP API, each returning Toxiproxy's
//! own errors ([`ApiError`]).
//!
//! Every proxy listens where the server's [`BindPolicy`] puts it, and
//! numbers its connections, so that each connection's random draws (jitter,
//! slicer cuts, toxicity) come from the server's seed and its place in the
//! proxy's sequence of connections.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bind::{warn_if_exposed, BindPolicy};
use crate::link::{self, DrawKey};
use crate::plane::DataPlane;
use crate::toxic_set::{Chain, ToxicSet};
use crate::wire::{ApiError, ProxyConfig, ProxyInfo, Stream};

/// How long a new connection may take to reach the upstream before the
/// client is dropped (Toxiproxy waits for the OS; a bound keeps a dead
/// upstream from piling up tasks).
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a proxy listens when its `listen` field is empty.
const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// The live connections of one running proxy.
#[derive(Default)]
struct Connections {
    next_id: u64,
    tasks: HashMap<u64, JoinHandle<()>>,
}

/// A running proxy: its accept loop and its connections.
struct Running {
    accept: JoinHandle<()>,
    connections: Arc<Mutex<Connections>>,
}

/// What every connection of a proxy needs to know, whoever accepts it.
#[derive(Clone)]
struct Accepting {
    name: String,
    upstream: String,
    chains: (watch::Receiver<Chain>, watch::Receiver<Chain>),
    /// The server's seed, shared so that a reseed reaches running proxies.
    seed: Arc<AtomicU64>,
    /// The next connection's number on this proxy (kept across down/up).
    next_number: Arc<AtomicU64>,
}

/// One proxy.
pub(crate) struct Proxy {
    name: String,
    /// The configured address while down; the bound address once started
    /// (so a port 0 becomes the real port, and stays it across down/up).
    listen: String,
    upstream: String,
    pub(crate) toxics: ToxicSet,
    running: Option<Running>,
    next_number: Arc<AtomicU64>,
}

impl Proxy {
    fn new(config: &ProxyConfig) -> Proxy {
        Proxy {
            name: config.name.clone(),
            listen: config.listen.clone(),
            upstream: config.upstream.clone(),
            toxics: ToxicSet::new(),
            running: None,
            next_number: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.running.is_some()
    }

    pub(crate) fn info(&self) -> ProxyInfo {
        ProxyInfo {
            name: self.name.clone(),
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            enabled: self.enabled(),
            toxics: self.toxics.list(),
        }
    }

    /// Starts listening where `policy` puts the configured address. A no-op
    /// if already running.
    fn start(&mut self, plane: &DataPlane, policy: BindPolicy, seed: &Arc<AtomicU64>) -> Result<(), ApiError> {
        if self.running.is_some() {
            return Ok(());
        }
        let addr = policy.apply(if self.listen.is_empty() { DEFAULT_LISTEN } else { &self.listen });
        // A std bind is synchronous, so that when the API answers, the port is
        // already open (or the error already known).
        let listener = std::net::TcpListener::bind(&addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| ApiError::internal(format!("listen tcp {addr}: {e}")))?;
        let bound = listener.local_addr().map_err(|e| ApiError::internal(format!("listen tcp {addr}: {e}")))?;
        warn_if_exposed(&format!("proxy {:?}", self.name), bound);
        self.listen = bound.to_string();
        let connections = Arc::new(Mutex::new(Connections::default()));
        let accepting = Accepting {
            name: self.name.clone(),
            upstream: self.upstream.clone(),
            chains: (self.toxics.subscribe(Stream::Upstream), self.toxics.subscribe(Stream::Downstream)),
            seed: seed.clone(),
            next_number: self.next_number.clone(),
        };
        let accept = plane.spawn(accept_loop(listener, accepting, connections.clone()));
        tracing::info!(name = %self.name, listen = %self.listen, upstream = %self.upstream, "started proxy");
        self.running = Some(Running { accept, connections });
        Ok(())
    }

    /// Stops listening and closes every connection; returns once the port
    /// is closed and every connection task is gone.
    async fn stop(&mut self) {
        let Some(running) = self.running.take() else { return };
        running.accept.abort();
        let _ = running.accept.await;
        // The accept loop is gone, so no connection can be added any more.
        let tasks: Vec<_> = running.connections.lock().expect("connections lock").tasks.drain().collect();
        let count = tasks.len();
        for (_, task) in &tasks {
            task.abort();
        }
        for (_, task) in tasks {
            let _ = task.await;
        }
        tracing::info!(name = %self.name, listen = %self.listen, connections = count, "terminated proxy");
    }
}

/// Accepts connections on the data plane (whose reactor the listener joins
/// here) and runs each on a task of its own there.
async fn accept_loop(listener: std::net::TcpListener, proxy: Accepting, connections: Arc<Mutex<Connections>>) {
    let Accepting { name, upstream, chains: toxics, seed, next_number } = proxy;
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(name = %name, error = %e, "cannot watch the proxy's listening socket");
            return;
        }
    };
    // Toxiproxy draws from its process-wide generator; here every connection
    // has its own stream, keyed by the seed, the proxy and the connection's
    // number, so the same seed and the same connections give the same draws.
    let proxy_key = link::name_key(&name);
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(name = %name, error = %e, "error while accepting client");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tracing::debug!(name = %name, client = %peer, upstream = %upstream, "accepted client");
        let upstream = upstream.clone();
        let name = name.clone();
        let (up, down) = (toxics.0.clone(), toxics.1.clone());
        let key = DrawKey {
            seed: seed.load(Ordering::Relaxed),
            proxy: proxy_key,
            connection: next_number.fetch_add(1, Ordering::Relaxed),
        };
        let registry = connections.clone();
        // Spawn and register under the lock, so that a connection that ends
        // at once cannot try to deregister before it is registered.
        let mut guard = connections.lock().expect("connections lock");
        let id = guard.next_id;
        guard.next_id += 1;
        let task = tokio::spawn(async move {
            match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(&upstream)).await {
                Ok(Ok(server)) => link::run(client, server, up, down, key).await,
                Ok(Err(e)) => {
                    tracing::warn!(name = %name, client = %peer, upstream = %upstream, error = %e, "unable to open connection to upstream")
                }
                Err(_) => {
                    tracing::warn!(name = %name, client = %peer, upstream = %upstream, "timed out opening connection to upstream")
                }
            }
            registry.lock().expect("connections lock").tasks.remove(&id);
        });
        guard.tasks.insert(id, task);
    }
}

/// Every proxy of a server, by name.
pub(crate) struct Collection {
    /// One lock for all API operations: they are rare, and serialising them
    /// keeps start/stop/replace free of races (connections never take it).
    proxies: tokio::sync::Mutex<BTreeMap<String, Proxy>>,
    policy: BindPolicy,
    seed: Arc<AtomicU64>,
    /// Where the listeners and connections run.
    plane: DataPlane,
}

impl Collection {
    pub fn new(policy: BindPolicy, seed: u64) -> std::io::Result<Collection> {
        let plane = DataPlane::start()?;
        Ok(Collection { proxies: Default::default(), policy, seed: Arc::new(AtomicU64::new(seed)), plane })
    }

    /// Sets the seed of every connection opened from now on, and numbers
    /// the next connection of every proxy 0 again: after a reseed, the
    /// draws depend only on the new seed and the connections that follow.
    pub async fn reseed(&self, seed: u64) {
        let proxies = self.proxies.lock().await;
        self.seed.store(seed, Ordering::Relaxed);
        for proxy in proxies.values() {
            proxy.next_number.store(0, Ordering::Relaxed);
        }
    }

    pub async fn infos(&self) -> BTreeMap<String, ProxyInfo> {
        self.proxies.lock().await.iter().map(|(name, p)| (name.clone(), p.info())).collect()
    }

    /// Runs `f` on the named proxy.
    pub async fn with_proxy<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Proxy) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies.get_mut(name).ok_or_else(ApiError::proxy_not_found)?;
        f(proxy)
    }

    /// `POST /proxies`: 409 if the name is taken.
    pub async fn create(&self, config: &ProxyConfig) -> Result<ProxyInfo, ApiError> {
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&config.name) {
            return Err(ApiError::proxy_already_exists());
        }
        let mut proxy = Proxy::new(config);
        if config.enabled {
            proxy.start(&self.plane, self.policy, &self.seed)?;
        }
        let info = proxy.info();
        proxies.insert(config.name.clone(), proxy);
        Ok(info)
    }

    /// `POST /populate`: creates each proxy, or replaces an existing one of
    /// the same name whose listen or upstream address differs. A proxy whose
    /// addresses match is left untouched, toxics, state and connections
    /// included, so populating twice is harmless. On an error part-way (a
    /// port in use), the proxies made so far stay, and are returned beside
    /// the error, as Toxiproxy does.
    pub async fn populate(&self, configs: &[ProxyConfig]) -> Result<Vec<ProxyInfo>, (ApiError, Vec<ProxyInfo>)> {
        // Validate everything before changing anything.
        let mut names = HashSet::new();
        for (i, config) in configs.iter().enumerate() {
            if config.name.is_empty() {
                return Err((ApiError::missing_field(&format!("name at proxy {}", i + 1)), Vec::new()));
            }
            if config.upstream.is_empty() {
                return Err((ApiError::missing_field(&format!("upstream at proxy {}", i + 1)), Vec::new()));
            }
            // Toxiproxy lets a later entry replace an earlier one of the same
            // name; a list that names a proxy twice is a mistake worth saying.
            if !names.insert(config.name.as_str()) {
                return Err((ApiError::bad_request(format!("duplicate proxy name {:?}", config.name)), Vec::new()));
            }
        }
        let mut proxies = self.proxies.lock().await;
        let mut result = Vec::with_capacity(configs.len());
        for config in configs {
            if let Some(existing) = proxies.get_mut(&config.name) {
                if !differs(existing, config, self.policy) {
                    result.push(existing.info());
                    continue;
                }
                existing.stop().await;
            }
            let mut proxy = Proxy::new(config);
            if config.enabled {
                if let Err(e) = proxy.start(&self.plane, self.policy, &self.seed) {
                    return Err((e, result));
                }
            }
            result.push(proxy.info());
            proxies.insert(config.name.clone(), proxy);
        }
        Ok(result)
    }

    /// `POST/PATCH /proxies/{name}`: changing `listen` or `upstream` restarts
    /// the proxy (dropping its connections); `enabled` takes it down or up.
    pub async fn update(
        &self,
        name: &str,
        listen: Option<String>,
        upstream: Option<String>,
        enabled: Option<bool>,
    ) -> Result<ProxyInfo, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies.get_mut(name).ok_or_else(ApiError::proxy_not_found)?;
        let listen = listen.unwrap_or_else(|| proxy.listen.clone());
        let upstream = upstream.unwrap_or_else(|| proxy.upstream.clone());
        let enabled = enabled.unwrap_or(proxy.enabled());
        if listen != proxy.listen || upstream != proxy.upstream {
            // Restarted below if it is to be enabled.
            proxy.stop().await;
            proxy.listen = listen;
            proxy.upstream = upstream;
        }
        if enabled && !proxy.enabled() {
            proxy.start(&self.plane, self.policy, &self.seed)?;
        } else if !enabled && proxy.enabled() {
            proxy.stop().await;
        }
        Ok(proxy.info())
    }

    /// `DELETE /proxies/{name}`.
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut proxy = proxies.remove(name).ok_or_else(ApiError::proxy_not_found)?;
        proxy.stop().await;
        Ok(())
    }

    /// `POST /reset`: every proxy enabled, every toxic removed.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            proxy.start(&self.plane, self.policy, &self.seed)?;
            proxy.toxics.reset();
        }
        Ok(())
    }

    /// Stops every proxy (server shutdown).
    pub async fn stop_all(&self) {
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            proxy.stop().await;
        }
    }
}

/// Toxiproxy's `Differs`: the new listen address, resolved, against the
/// bound one, and the upstream as written. The new address is first put
/// where the bind policy would bind it, or `0.0.0.0:25432` would never match
/// the `127.0.0.1:25432` it was bound on.
fn differs(existing: &Proxy, config: &ProxyConfig, policy: BindPolicy) -> bool {
    let listen = policy.apply(if config.listen.is_empty() { DEFAULT_LISTEN } else { &config.listen });
    let resolved = listen.to_socket_addrs().ok().and_then(|mut addrs| addrs.next()).map(|a| a.to_string());
    resolved.as_deref() != Some(existing.listen.as_str()) || config.upstream != existing.upstream
}
