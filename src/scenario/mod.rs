//! Scenarios: fault windows as files.

pub mod schedule;
