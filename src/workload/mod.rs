//! The workload: writers placing orders, readers sampling the stores.

// The seeded generator is a leaf (a strategy draws its cache-fill pauses from
// it too); it is named here as well, where the workload uses it.
pub use crate::generate;
pub mod tasks;
