//! The fault proxy, from the [`faultproxy`] crate: a Toxiproxy-compatible
//! server (built in, or `dualwrite toxiproxy`) and the client dualwrite uses
//! to drive any Toxiproxy, built in or real.
//!
//! The crate knows nothing of dualwrite; this module is dualwrite's door to
//! it, so the rest of the program names `crate::proxy::...` as before. The
//! proxy's links (which proxies dualwrite needs) are dualwrite's own: see
//! [`crate::links`].

pub use faultproxy::{
    load_config, serve, ApiError, BindPolicy, ProxyConfig, ProxyError, ProxyInfo, ProxyServer, ProxyUpdate,
    ServeOptions, ServerOptions, ToxiproxyClient,
};

/// Toxics in Toxiproxy's wire format, shared with scenario files.
pub mod toxic {
    pub use faultproxy::{Stream, Toxic, ToxicKind};
}

pub use toxic::{Stream, Toxic, ToxicKind};
