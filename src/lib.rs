//! dualwrite: makes the dual-write problem visible.

pub mod history;
pub mod kafka;
pub mod links;
pub mod proxy;
pub mod scenario;
pub mod strategy;
