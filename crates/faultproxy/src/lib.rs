//! faultproxy: a Toxiproxy-compatible fault proxy — server and client — on
//! tokio.
//!
//! The server speaks Toxiproxy 2.12's HTTP API (the same paths, JSON and
//! status codes, so `toxiproxy-cli`, curl and Toxiproxy's client libraries
//! work against it) and applies its toxics with its semantics, to live
//! connections: a toxic added mid-run hits the pooled connections opened
//! before it, and its removal ends the effect at once. Beyond Toxiproxy, its
//! random draws are seeded, it listens on loopback unless told otherwise,
//! and its API refuses web pages. The client drives any Toxiproxy, this one
//! or the real one.
//!
//! ```no_run
//! # async fn example() -> Result<(), faultproxy::ProxyError> {
//! use faultproxy::{ProxyConfig, ProxyServer, Stream, Toxic, ToxicKind, ToxiproxyClient};
//!
//! let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await?;
//! let client = ToxiproxyClient::new(&server.url())?;
//! client.create_proxy(&ProxyConfig::new("redis", "127.0.0.1:26379", "127.0.0.1:6379")).await?;
//! client.add_toxic("redis", &Toxic::new(ToxicKind::Latency { latency: 100, jitter: 10 }, Stream::Downstream)).await?;
//! client.reset().await?;
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! From the bottom up; each module uses only those above it in this list.
//!
//! - [`wire`]: the JSON shapes — toxics, proxies, API errors. No I/O.
//! - [`error`]: [`ProxyError`], every failure of the server or the client.
//! - [`config`]: reading a `-config` file.
//! - [`client`]: [`ToxiproxyClient`], which speaks the API to any Toxiproxy.
//! - `bind`: [`BindPolicy`], where the server's sockets may listen.
//! - `toxic_set`: a proxy's toxics, published to its live connections.
//! - `link`: one connection, two pumps applying the live toxics — in place
//!   while there are none. The heart of it.
//! - `plane`: the thread of its own that every proxied byte goes through.
//! - `collection`: the proxies — listening, accepting, going down.
//! - `api`: the HTTP API, route by route as Toxiproxy has it, behind a guard
//!   that refuses web pages.
//! - [`server`]: [`ProxyServer`] in-process, and [`serve`] until Ctrl-C.
//!
//! # Why hand-written
//!
//! The `noxious` crate (a Rust port of Toxiproxy) was tried first: toxic
//! changes on live connections were sometimes not applied or not removed,
//! `bandwidth` panicked on large chunks, and `reset_peer` is missing. The
//! real Toxiproxy is a Go server. So this crate implements Toxiproxy's API
//! and toxics against its Go sources; where it departs from them on purpose,
//! the module that does says why.

mod api;
mod bind;
pub mod client;
mod collection;
pub mod config;
pub mod error;
mod link;
mod plane;
pub mod server;
mod toxic_set;
pub mod wire;

pub use api::VERSION;
pub use bind::BindPolicy;
pub use client::ToxiproxyClient;
pub use config::load_config;
pub use error::ProxyError;
pub use server::{serve, ProxyServer, ServeOptions, ServerOptions};
pub use wire::{ApiError, ProxyConfig, ProxyInfo, ProxyUpdate, Stream, Toxic, ToxicKind};
