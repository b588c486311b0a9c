//! Kafka: the embedded broker, the producer, and reading a topic back.

pub mod embedded;
pub mod producer;
pub mod quiet;
pub mod read;
pub mod topic;

pub use producer::{Delivery, Publisher, PublisherConfig};

/// Lets a librdkafka client go without waiting for it. Dropping one blocks
/// for a tenth of a second or more: a producer joins its polling thread,
/// which wakes every 100 ms, then flushes for up to 500 ms; a consumer
/// waits for its close in polls of 100 ms. Once a client's work is over
/// nobody needs that wait, so the client is dropped on the runtime's
/// blocking threads and not waited for (outside a runtime, here).
pub(crate) fn let_go<T: Send + 'static>(client: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(move || drop(client))),
        Err(_) => drop(client),
    }
}
