//! Reading a Toxiproxy `-config` file: a JSON array of
//! [`ProxyConfig`](crate::ProxyConfig)s, the same file a real
//! `toxiproxy-server -config FILE` reads.

use std::io::Read;
use std::path::Path;

use crate::wire::ProxyConfig;
use crate::ProxyError;

/// The largest config file read: a list of proxies is a few hundred bytes
/// each, and a path such as `/dev/zero` must fail instead of filling memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads a Toxiproxy `-config` file.
pub fn load_config(path: &Path) -> Result<Vec<ProxyConfig>, ProxyError> {
    let read_error = |source| ProxyError::ConfigRead { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text).map_err(read_error)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ProxyError::ConfigTooLarge { path: path.to_path_buf(), limit: MAX_CONFIG_BYTES });
    }
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

    #[test]
    fn an_endless_file_is_refused_not_read_to_the_end() {
        let err = load_config(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(err, ProxyError::ConfigTooLarge { .. }), "{err:?}");
    }
}
