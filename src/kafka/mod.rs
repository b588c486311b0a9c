//! Kafka: the embedded broker, the producer, and reading a topic back.

pub mod embedded;
