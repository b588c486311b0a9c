//! A client context that keeps librdkafka's chatter out of the way.
//!
//! During a Kafka fault librdkafka reports every failed connection attempt
//! ("all broker connections are down") through its error callback, which
//! rdkafka logs at error level by default. Those are the very faults dualwrite
//! injects, and their effect is measured where it matters (each publish's
//! outcome), so they are logged at debug level here: `-vv` shows them.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

/// A context that logs librdkafka's errors and logs at debug level.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        tracing::debug!(?level, facility, "librdkafka: {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("librdkafka: {error}: {reason}");
    }
}

impl ConsumerContext for Quiet {}
