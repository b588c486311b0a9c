//! dualwrite: makes the dual-write problem visible.
//!
//! # Layout
//!
//! In the order data flows through a run:
//!
//! - [`cli`] → [`config`]: flags as typed, then resolved and validated.
//! - [`commands`]: the subcommands; [`doctor`] checks the services.
//! - [`infra`]: reaches Postgres, Redis, Kafka ([`kafka::embedded`] when none
//!   is given) and the fault proxy ([`proxy`]: the `faultproxy` crate's
//!   server built in, or a real Toxiproxy), and wires the proxy's [`links`]
//!   between them.
//! - [`scenario`]: fault windows and crashes as TOML files, expanded from the
//!   seed into a [`scenario::schedule::Schedule`].
//! - [`runner`]: one strategy under one scenario, in phases — prepare, main,
//!   heal, drain, snapshot, reconcile. During main: [`workload`] (writers,
//!   readers, the pool probe), [`faults`] (the schedule through the proxy's
//!   API), [`consumer`] (the downstream consumer), [`progress`].
//! - [`strategy`]: the six ways of keeping the stores in step, one file
//!   each, written to be read; they use the store clients [`db`], [`cache`]
//!   and [`kafka`], each of which classifies its own errors into the
//!   three-valued outcomes of the [`history`]. The CDC strategies' connector
//!   ([`cdc`]) streams the Postgres WAL to the topic.
//! - [`snapshot`] → [`reconcile`]: the final read of every store, and the
//!   pure function that compares it with the history.
//! - [`report`]: the table, the stories, the JSON.
//! - [`error`]: failures of the tool itself, and the exit codes.

pub mod cache;
pub mod cdc;
pub mod cli;
pub mod commands;
pub mod config;
pub mod consumer;
pub mod db;
pub mod doctor;
pub mod error;
pub mod event;
pub mod faults;
pub mod history;
pub mod infra;
pub mod kafka;
pub mod links;
pub mod progress;
pub mod proxy;
pub mod reconcile;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod snapshot;
pub mod strategy;
pub mod workload;
