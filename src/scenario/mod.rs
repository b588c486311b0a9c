//! Scenarios: fault windows as files.

pub mod schedule;

/// Placeholder until the scenario branch lands.
#[derive(Debug, thiserror::Error)]
#[error("scenario error")]
pub struct ScenarioError;
