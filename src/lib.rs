//! dualwrite: makes the dual-write problem visible.

pub mod cache;
pub mod cdc;
pub mod cli;
pub mod config;
pub mod consumer;
pub mod db;
pub mod error;
pub mod event;
pub mod history;
pub mod kafka;
pub mod links;
pub mod proxy;
pub mod reconcile;
pub mod scenario;
pub mod snapshot;
pub mod strategy;
pub mod workload;
