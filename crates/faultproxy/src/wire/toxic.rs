//! Toxics in Toxiproxy's own JSON wire format.
//!
//! A toxic is data: a type, a direction and attributes in Toxiproxy's units.
//! The same JSON an instructor pastes into `toxiproxy-cli` or `curl` is what
//! the server accepts, what a client sends and what a scenario file of a
//! program built on this crate can declare:
//!
//! ```json
//! {"name": "latency_downstream", "type": "latency", "stream": "downstream",
//!  "toxicity": 1.0, "attributes": {"latency": 1000, "jitter": 0}}
//! ```
//!
//! As in Toxiproxy 2.12, whose Go structs hold every attribute in an `int64`
//! that starts at zero:
//! - a missing attribute is 0, and so is a missing or `null` `attributes`
//!   object: `{"type": "timeout"}` is a valid black hole;
//! - a negative attribute is accepted, and acts as Toxiproxy's code makes it
//!   act (a negative latency subtracts from the others on its stream, a
//!   negative `bandwidth` rate means unlimited, ...);
//! - `stream` is matched without regard to case, and kept as written:
//!   `"UPSTREAM"` acts upstream and is shown as `"UPSTREAM"`.
//!
//! "down" is not a toxic: it is a disabled proxy (`enabled: false`).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which half of a proxied connection a toxic acts on.
///
/// `upstream` is client → server (requests), `downstream` is server → client
/// (responses). Toxiproxy's default is downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Stream {
    Upstream,
    #[default]
    Downstream,
}

impl Stream {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }

    /// Toxiproxy's `ParseDirection`: `upstream` or `downstream` in any case;
    /// anything else (the empty string included) is not a stream.
    pub fn parse(text: &str) -> Option<Stream> {
        if text.eq_ignore_ascii_case("upstream") {
            Some(Stream::Upstream)
        } else if text.eq_ignore_ascii_case("downstream") {
            Some(Stream::Downstream)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Stream {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Stream {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Stream::parse(&text).ok_or_else(|| {
            D::Error::custom(format!("unknown stream {text:?}, expected \"upstream\" or \"downstream\""))
        })
    }
}

/// A toxic's type and attributes, exactly as Toxiproxy names them.
///
/// Serialised adjacently tagged: `"type": "latency", "attributes": {...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum ToxicKind {
    /// Delay every chunk by `latency` ms, ± `jitter` ms.
    Latency {
        #[serde(default)]
        latency: i64,
        #[serde(default)]
        jitter: i64,
    },
    /// Drop all data. With `timeout > 0`, close the connection once no data
    /// has arrived for `timeout` ms (every chunk restarts the count); with
    /// `timeout <= 0`, hold the connection open until the toxic is removed,
    /// which closes it (a black hole).
    Timeout {
        #[serde(default)]
        timeout: i64,
    },
    /// On the next data (or EOF), drop it, wait `timeout` ms, then close the
    /// connection: with a TCP RST if the connection was opened while a
    /// `reset_peer` toxic existed on its proxy, with a FIN otherwise (as
    /// Toxiproxy does; see the `link` module).
    ResetPeer {
        #[serde(default)]
        timeout: i64,
    },
    /// Limit throughput to `rate` KB/s (`rate <= 0`: unlimited).
    Bandwidth {
        #[serde(default)]
        rate: i64,
    },
    /// Delay the close of the connection by `delay` ms.
    SlowClose {
        #[serde(default)]
        delay: i64,
    },
    /// Cut each chunk in halves, recursively, until the pieces are within
    /// `size_variation` bytes of `average_size`, with `delay`
    /// **microseconds** after each piece.
    Slicer {
        #[serde(default)]
        average_size: i64,
        #[serde(default)]
        size_variation: i64,
        #[serde(default)]
        delay: i64,
    },
    /// Close the connection after `bytes` bytes have passed.
    LimitData {
        #[serde(default)]
        bytes: i64,
    },
    /// Pass everything through unchanged (Toxiproxy's `noop`, the toxic it
    /// runs when toxicity says a toxic does not apply).
    Noop {},
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
            ToxicKind::Noop {} => "noop",
        }
    }

    /// The type names of the toxics that act on a connection. `noop` is a
    /// valid type too ([`ToxicKind::is_type_name`]) but does nothing, so a
    /// program offering a list of faults can leave it out.
    pub const TYPE_NAMES: [&'static str; 7] =
        ["latency", "timeout", "reset_peer", "bandwidth", "slow_close", "slicer", "limit_data"];

    /// Is `name` a type Toxiproxy 2.12 knows (the seven of
    /// [`TYPE_NAMES`](Self::TYPE_NAMES), or `noop`)? Case-sensitive, as there.
    pub fn is_type_name(name: &str) -> bool {
        name == "noop" || Self::TYPE_NAMES.contains(&name)
    }
}

fn default_toxicity() -> f32 {
    1.0
}

/// One toxic on one proxy, in Toxiproxy's JSON shape.
///
/// Deserialised by hand (see the `Deserialize` impl) so that a missing
/// `attributes` key is accepted as Toxiproxy accepts it, and serialised by
/// hand so that `stream` reads back as it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Unique per proxy. Toxiproxy defaults it to `<type>_<stream>`.
    pub name: String,
    pub stream: Stream,
    /// Probability that the toxic applies to a connection (drawn once per
    /// connection, from the server's seed).
    pub toxicity: f32,
    pub kind: ToxicKind,
    /// `stream` as the client wrote it, when that is not the lowercase name
    /// (`"UPSTREAM"`): Toxiproxy keeps and shows the client's spelling.
    spelling: Option<String>,
}

impl Toxic {
    /// A toxic with Toxiproxy's default name `<type>_<stream>` and toxicity 1.
    pub fn new(kind: ToxicKind, stream: Stream) -> Toxic {
        Toxic { name: format!("{}_{}", kind.type_name(), stream), stream, toxicity: 1.0, kind, spelling: None }
    }

    /// `stream` as written by the client that created the toxic.
    pub fn stream_as_written(&self) -> &str {
        self.spelling.as_deref().unwrap_or(self.stream.as_str())
    }
}

/// What a toxic serialises as: `stream` spelled as written.
#[derive(Serialize)]
struct WireOut<'a> {
    name: &'a str,
    stream: &'a str,
    toxicity: f32,
    #[serde(flatten)]
    kind: &'a ToxicKind,
}

impl Serialize for Toxic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut { name: &self.name, stream: self.stream_as_written(), toxicity: self.toxicity, kind: &self.kind }
            .serialize(serializer)
    }
}

/// The fields of a toxic before its type is known. serde's adjacently tagged
/// enums insist on the content key, so `attributes` is read as an optional
/// map first and handed to [`ToxicKind`] afterwards (an empty map when absent,
/// which gives every attribute its default). `serde_json::Value` works as the
/// go-between for any format, TOML included.
#[derive(Deserialize)]
struct WireIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    stream: Option<String>,
    /// `null` keeps the default, as Go's decoder leaves a field it reads
    /// `null` for untouched.
    #[serde(default)]
    toxicity: Option<f32>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

impl<'de> Deserialize<'de> for Toxic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireIn::deserialize(deserializer)?;
        let written = wire.stream.unwrap_or_else(|| Stream::Downstream.as_str().to_string());
        let stream = Stream::parse(&written).ok_or_else(|| {
            D::Error::custom(format!("unknown stream {written:?}, expected \"upstream\" or \"downstream\""))
        })?;
        let tagged = serde_json::json!({
            "type": wire.kind,
            "attributes": wire.attributes.unwrap_or_default(),
        });
        let kind = ToxicKind::deserialize(tagged).map_err(D::Error::custom)?;
        Ok(Toxic {
            name: wire.name.unwrap_or_default(),
            spelling: (written != stream.as_str()).then_some(written),
            stream,
            toxicity: wire.toxicity.unwrap_or_else(default_toxicity),
            kind,
        })
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
        let toxic: Toxic = serde_json::from_str(r#"{"type": "noop", "toxicity": null}"#).unwrap();
        assert_eq!((toxic.kind, toxic.toxicity), (ToxicKind::Noop {}, 1.0));
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
    fn stream_is_matched_in_any_case_and_kept_as_written() {
        let toxic: Toxic = serde_json::from_str(r#"{"type": "timeout", "stream": "UPSTREAM"}"#).unwrap();
        assert_eq!((toxic.stream, toxic.stream_as_written()), (Stream::Upstream, "UPSTREAM"));
        assert_eq!(serde_json::to_value(&toxic).unwrap()["stream"], "UPSTREAM");
        assert!(serde_json::from_str::<Toxic>(r#"{"type": "timeout", "stream": ""}"#).is_err());
        assert!(serde_json::from_str::<Toxic>(r#"{"type": "timeout", "stream": "sideways"}"#).is_err());
    }

    #[test]
    fn reads_from_toml_too() {
        let toxic: Toxic =
            toml::from_str("type = \"bandwidth\"\nstream = \"upstream\"\n[attributes]\nrate = 64\n").unwrap();
        assert_eq!(toxic.kind, ToxicKind::Bandwidth { rate: 64 });
    }

    #[test]
    fn negative_attributes_are_accepted_as_toxiproxy_does() {
        let toxic: Toxic = serde_json::from_str(r#"{"type": "latency", "attributes": {"latency": -5}}"#).unwrap();
        assert_eq!(toxic.kind, ToxicKind::Latency { latency: -5, jitter: 0 });
    }

    #[test]
    fn non_integer_attributes_are_refused() {
        for attributes in [r#"{"latency": "slow"}"#, r#"{"latency": 1.5}"#, r#"{"latency": 1e3}"#] {
            let body = format!(r#"{{"type": "latency", "attributes": {attributes}}}"#);
            assert!(serde_json::from_str::<Toxic>(&body).is_err(), "{body}");
        }
    }

    #[test]
    fn unknown_type_is_refused() {
        let err = serde_json::from_str::<Toxic>(r#"{"type": "gremlins", "attributes": {}}"#);
        assert!(err.is_err());
        assert!(ToxicKind::is_type_name("noop") && !ToxicKind::is_type_name("Latency"));
    }
}
