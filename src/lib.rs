//! dualwrite: makes the dual-write problem visible.
//!
//! # Layout
//!
//! In the order data flows through a run:
//!
//! - [`cli`] → [`config`]: flags as typed, then resolved and validated
//!   ([`cli::limits`]: every duration's and count's range); [`files`]:
//!   input files read with a cap, output files checked up front and written
//!   atomically; [`redact`]: no password in any output.
//! - [`commands`]: the subcommands; [`doctor`] checks the services.
//! - [`infra`]: reaches Postgres, Redis, Kafka ([`kafka::embedded`] when none
//!   is given) and the fault proxy ([`proxy`]: the `faultproxy` crate's
//!   server built in, or a real Toxiproxy), and wires the proxy's [`links`]
//!   between them.
//! - [`scenario`]: fault windows and crashes as TOML files, expanded from the
//!   seed into a [`scenario::schedule::Schedule`].
//! - [`runner`]: one strategy under one scenario, in phases — prepare, main,
//!   heal, drain, snapshot, reconcile, cleanup. During main: [`workload`]
//!   (writers, readers, the pool probe), [`faults`] (the schedule through
//!   the proxy's API), [`consumer`] (the downstream consumer), [`progress`],
//!   and a direct watch on each store ([`runner::watch`]). A run holds a
//!   [`lease`] on its namespace for its whole life; [`signals`] stop it
//!   cleanly; [`leftovers`] finds what dead runs left.
//! - [`strategy`]: the ways of keeping the stores in step, one file
//!   each, written to be read, named in [`names`] and built from an [`env`];
//!   they use the store clients [`db`], [`cache`] and [`kafka`], each of
//!   which classifies its own errors into the three-valued outcomes of the
//!   [`history`]. The CDC strategies' connector ([`cdc`]) streams the
//!   Postgres WAL to the topic (for cache-cdc, into the cache). [`generate`]
//!   is the seeded generator every order, read and cache-fill pause is drawn from.
//! - [`snapshot`] → [`reconcile`]: the final read of every store (and what
//!   it did not see), and the pure function that compares it with the
//!   history — a verdict only over complete evidence.
//! - [`report`]: the text laid out for the terminal, the stories, the JSON,
//!   the HTML picture; [`layout`] wraps and tabulates text for a width.
//! - [`error`]: failures of the tool itself, and the exit codes;
//!   [`backoff`]: the retry policy the relay and the connector share.
//!
//! The modules form layers that import only downwards (leaf types, the
//! pure checker, store clients, configuration, strategies, the run, report,
//! commands): ARCHITECTURE.md draws them.

pub mod backoff;
pub mod cache;
pub mod cdc;
pub mod cli;
pub mod commands;
pub mod config;
pub mod consumer;
pub mod db;
pub mod doctor;
pub mod env;
pub mod error;
pub mod event;
pub mod faults;
pub mod files;
pub mod generate;
pub mod history;
pub mod infra;
pub mod kafka;
pub mod layout;
pub mod lease;
pub mod leftovers;
pub mod links;
pub mod names;
pub mod progress;
pub mod proxy;
pub mod reconcile;
pub mod redact;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod signals;
pub mod snapshot;
pub mod strategy;
pub mod workload;
