//! Kafka: the embedded broker, the producer, and reading a topic back.

pub mod embedded;
pub mod producer;
pub mod quiet;
pub mod read;
pub mod topic;

pub use producer::{Delivery, Publisher, PublisherConfig};
