//! Proxy declarations in Toxiproxy's `-config` file format.
//!
//! `toxiproxy.json` is a JSON array of proxies, exactly what a real
//! `toxiproxy-server -config toxiproxy.json` reads and what `POST /populate`
//! takes, so one file serves the built-in server, the Docker image and the
//! runner:
//!
//! ```json
//! [{"name": "redis", "listen": "127.0.0.1:26379", "upstream": "127.0.0.1:6379", "enabled": true}]
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ProxyError;

fn enabled_by_default() -> bool {
    true
}

/// One proxy: a name, where it listens and where it forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyConfig {
    /// Unique name, e.g. `postgres` (see [`crate::links`]).
    pub name: String,
    /// `host:port` to listen on; port 0 picks a free port, which the API then
    /// reports in its `listen` field.
    #[serde(default)]
    pub listen: String,
    /// `host:port` every accepted connection is forwarded to.
    pub upstream: String,
    /// `false` creates the proxy "down" (not listening). Defaults to `true`,
    /// as in Toxiproxy.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

impl ProxyConfig {
    /// An enabled proxy.
    pub fn new(name: impl Into<String>, listen: impl Into<String>, upstream: impl Into<String>) -> Self {
        ProxyConfig { name: name.into(), listen: listen.into(), upstream: upstream.into(), enabled: true }
    }
}

/// Reads a Toxiproxy `-config` file.
pub fn load_config(path: &Path) -> Result<Vec<ProxyConfig>, ProxyError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ProxyError::ConfigRead { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|source| ProxyError::ConfigParse { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_toxiproxys_own_example() {
        // The example config from Toxiproxy's README.
        let json = r#"[
          {"name": "web_dev_frontend_1", "listen": "[::]:18080", "upstream": "webapp.domain:8080", "enabled": true},
          {"name": "web_dev_mysql_1", "listen": "[::]:13306", "upstream": "database.domain:3306"}
        ]"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("toxiproxy.json");
        std::fs::write(&path, json).unwrap();
        let proxies = load_config(&path).unwrap();
        assert_eq!(proxies.len(), 2);
        assert_eq!(proxies[1], ProxyConfig::new("web_dev_mysql_1", "[::]:13306", "database.domain:3306"));
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("toxiproxy.json");
        std::fs::write(&path, r#"{"name": "not an array"}"#).unwrap();
        let err = load_config(&path).unwrap_err();
        assert!(matches!(err, ProxyError::ConfigParse { .. }));
        assert!(err.to_string().contains("toxiproxy.json is not a Toxiproxy config"), "{err}");
        let err = load_config(&dir.path().join("missing.json")).unwrap_err();
        assert!(err.to_string().starts_with("cannot read the fault proxy config"), "{err}");
    }
}
