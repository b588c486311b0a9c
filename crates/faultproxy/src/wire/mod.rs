//! The JSON shapes of Toxiproxy's HTTP API and `-config` file: the bottom
//! layer, shared by the server, the client and the config loader.
//!
//! - [`toxic`]: [`Toxic`], [`ToxicKind`], [`Stream`].
//! - [`proxy`]: [`ProxyConfig`] (what a client creates, what a `-config`
//!   file lists), [`ProxyInfo`] (what the API shows), [`ProxyUpdate`].
//! - [`error`]: [`ApiError`], the API's `{"error": ..., "status": N}`.
//!
//! Nothing here does I/O.

pub mod error;
pub mod proxy;
pub mod toxic;

pub use error::ApiError;
pub use proxy::{ProxyConfig, ProxyInfo, ProxyUpdate};
pub use toxic::{Stream, Toxic, ToxicKind};
