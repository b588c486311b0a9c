//! The fault proxy: a Toxiproxy-compatible server built in, and the client
//! dualwrite uses to drive any Toxiproxy (built in or real).
//!
//! # Layout
//!
//! In the order a byte meets them:
//!
//! - [`config`]: proxy declarations in Toxiproxy's `-config` format
//!   (`toxiproxy.json`).
//! - [`server`]: [`ProxyServer`], the in-process server, and [`serve`], the
//!   `dualwrite toxiproxy` subcommand.
//! - `api`: the HTTP API, route by route as Toxiproxy has it.
//! - `collection`: the proxies — listening, accepting, going down.
//! - `toxic_set`: a proxy's toxics, published to its live connections.
//! - `link`: one connection, two pumps applying the live toxics to every
//!   chunk. The heart of it: a toxic added mid-run hits connections opened
//!   before it, and its removal ends the effect at once.
//! - [`toxic`]: the toxics' wire format, shared with scenario files.
//! - [`client`]: [`ToxiproxyClient`], which speaks the same API to any
//!   Toxiproxy.
//!
//! # Why hand-written
//!
//! The `noxious` crate (a Rust port of Toxiproxy) was tried first: toxic
//! changes on live connections were sometimes not applied or not removed,
//! `bandwidth` panicked on large chunks, and `reset_peer` is missing. Those
//! are exactly the behaviours dualwrite's scenarios stand on, so the server
//! is written here on tokio and axum, against Toxiproxy's Go sources.

pub mod api;
pub mod client;
mod collection;
pub mod config;
mod error;
mod link;
pub mod server;
pub mod toxic;
mod toxic_set;

pub use api::{ApiError, ProxyInfo, ProxyUpdate};
pub use client::ToxiproxyClient;
pub use config::{load_config, ProxyConfig};
pub use error::ProxyError;
pub use server::{serve, ProxyServer};
pub use toxic::{Stream, Toxic, ToxicKind};
