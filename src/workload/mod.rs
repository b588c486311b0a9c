//! The workload: writers placing orders, readers sampling the stores.

pub mod generate;
pub mod tasks;
