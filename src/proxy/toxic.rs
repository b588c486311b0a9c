//! Toxics in Toxiproxy's own JSON wire format.
//!
//! A toxic is data: a type, a direction and attributes in Toxiproxy's units.
//! The same JSON an instructor pastes into `toxiproxy-cli` or `curl` is what
//! the built-in server accepts, what a scenario file declares, and what the
//! runner sends to a real Toxiproxy:
//!
//! ```json
//! {"name": "latency_downstream", "type": "latency", "stream": "downstream",
//!  "toxicity": 1.0, "attributes": {"latency": 1000, "jitter": 0}}
//! ```
//!
//! Missing attributes default to 0, as in Toxiproxy (its Go structs start at
//! their zero values), and so does a missing or `null` `attributes` object:
//! `{"type": "timeout"}` is a valid black hole. "down" is not a toxic here
//! either: it is a disabled proxy (`enabled: false`).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// Which half of a proxied connection a toxic acts on.
///
/// `upstream` is client → server (requests), `downstream` is server → client
/// (responses). Toxiproxy's default is downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream,
    #[default]
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A toxic's type and attributes, exactly as Toxiproxy names them.
///
/// Serialised adjacently tagged: `"type": "latency", "attributes": {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum ToxicKind {
    /// Delay every chunk by `latency` ms, ± `jitter` ms.
    Latency {
        #[serde(default)]
        latency: u64,
        #[serde(default)]
        jitter: u64,
    },
    /// Stop all data; close the connection after `timeout` ms. With
    /// `timeout = 0` the connection stays open and data is held until the
    /// toxic is removed (a black hole).
    Timeout {
        #[serde(default)]
        timeout: u64,
    },
    /// On the next data, wait `timeout` ms and then close both sides with a
    /// TCP RST ("connection reset by peer").
    ResetPeer {
        #[serde(default)]
        timeout: u64,
    },
    /// Limit throughput to `rate` KB/s.
    Bandwidth {
        #[serde(default)]
        rate: u64,
    },
    /// Delay the close of the connection by `delay` ms.
    SlowClose {
        #[serde(default)]
        delay: u64,
    },
    /// Cut data into pieces of `average_size` ± `size_variation` bytes, with
    /// `delay` **microseconds** between them.
    Slicer {
        #[serde(default)]
        average_size: u64,
        #[serde(default)]
        size_variation: u64,
        #[serde(default)]
        delay: u64,
    },
    /// Close the connection after `bytes` bytes have passed.
    LimitData {
        #[serde(default)]
        bytes: u64,
    },
}

impl ToxicKind {
    /// Toxiproxy's name for this type (`"reset_peer"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
        }
    }

    /// Every type name Toxiproxy (and the built-in server) knows.
    pub const TYPE_NAMES: [&'static str; 7] =
        ["latency", "timeout", "reset_peer", "bandwidth", "slow_close", "slicer", "limit_data"];
}

fn default_toxicity() -> f32 {
    1.0
}

/// One toxic on one proxy, in Toxiproxy's JSON shape.
///
/// Deserialised by hand (see the `Deserialize` impl) so that a missing
/// `attributes` key is accepted as Toxiproxy accepts it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Toxic {
    /// Unique per proxy. Toxiproxy defaults it to `<type>_<stream>`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub stream: Stream,
    /// Probability that the toxic applies to a connection. dualwrite always
    /// sends 1.0: all of its randomness comes from its own seeded schedule.
    #[serde(default = "default_toxicity")]
    pub toxicity: f32,
    #[serde(flatten)]
    pub kind: ToxicKind,
}

impl Toxic {
    /// A toxic with Toxiproxy's default name `<type>_<stream>` and toxicity 1.
    pub fn new(kind: ToxicKind, stream: Stream) -> Toxic {
        Toxic { name: format!("{}_{}", kind.type_name(), stream), stream, toxicity: 1.0, kind }
    }
}

/// The fields of a toxic before its type is known. serde's adjacently tagged
/// enums insist on the content key, so `attributes` is read as an optional
/// map first and handed to [`ToxicKind`] afterwards (an empty map when absent,
/// which gives every attribute its default). `serde_json::Value` works as the
/// go-between for any format, TOML scenario files included.
#[derive(Deserialize)]
struct WireToxic {
    #[serde(default)]
    name: String,
    #[serde(default)]
    stream: Stream,
    #[serde(default = "default_toxicity")]
    toxicity: f32,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

impl<'de> Deserialize<'de> for Toxic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireToxic::deserialize(deserializer)?;
        let tagged = serde_json::json!({
            "type": wire.kind,
            "attributes": wire.attributes.unwrap_or_default(),
        });
        let kind = ToxicKind::deserialize(tagged).map_err(D::Error::custom)?;
        Ok(Toxic { name: wire.name, stream: wire.stream, toxicity: wire.toxicity, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_matches_toxiproxy() {
        let toxic = Toxic::new(ToxicKind::Latency { latency: 1000, jitter: 50 }, Stream::Upstream);
        let json = serde_json::to_value(&toxic).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "latency_upstream", "stream": "upstream", "toxicity": 1.0,
                "type": "latency", "attributes": {"latency": 1000, "jitter": 50}
            })
        );
        let back: Toxic = serde_json::from_value(json).unwrap();
        assert_eq!(back, toxic);
    }

    #[test]
    fn missing_fields_take_toxiproxys_defaults() {
        let toxic: Toxic = serde_json::from_str(r#"{"type": "reset_peer", "attributes": {}}"#).unwrap();
        assert_eq!(toxic.kind, ToxicKind::ResetPeer { timeout: 0 });
        assert_eq!(toxic.stream, Stream::Downstream);
        assert_eq!(toxic.toxicity, 1.0);
        assert_eq!(toxic.name, "");
    }

    #[test]
    fn attributes_may_be_missing_or_null() {
        // Toxiproxy accepts a toxic POST without `attributes`; so do we.
        let toxic: Toxic = serde_json::from_str(r#"{"type": "timeout", "stream": "upstream"}"#).unwrap();
        assert_eq!(toxic.kind, ToxicKind::Timeout { timeout: 0 });
        assert_eq!(toxic.stream, Stream::Upstream);
        let toxic: Toxic = serde_json::from_str(r#"{"type": "latency", "attributes": null}"#).unwrap();
        assert_eq!(toxic.kind, ToxicKind::Latency { latency: 0, jitter: 0 });
    }

    #[test]
    fn reads_from_toml_too() {
        // Scenario files declare toxics in TOML with the same field names.
        let toxic: Toxic =
            toml::from_str("type = \"bandwidth\"\nstream = \"upstream\"\n[attributes]\nrate = 64\n").unwrap();
        assert_eq!(toxic.kind, ToxicKind::Bandwidth { rate: 64 });
    }

    #[test]
    fn bad_attributes_are_refused() {
        let err = serde_json::from_str::<Toxic>(r#"{"type": "latency", "attributes": {"latency": -5}}"#);
        assert!(err.is_err());
    }

    #[test]
    fn unknown_type_is_refused() {
        let err = serde_json::from_str::<Toxic>(r#"{"type": "gremlins", "attributes": {}}"#);
        assert!(err.is_err());
    }
}
