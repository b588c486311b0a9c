//! The part of the report's JSON the picture reads: what `--html` and
//! `dualwrite report --from` draw from, so that both give the same file.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::super::timeline::Timeline;
use super::super::Report;
use crate::reconcile::Orders;
use crate::scenario::schedule::Schedule;

/// The part of the report's JSON the picture reads. Unknown fields are
/// ignored, so newer reports stay readable.
#[derive(Debug, Clone, Deserialize)]
pub struct Picture {
    pub seed: u64,
    pub scenario: String,
    pub duration_ms: u64,
    pub schedule: Schedule,
    pub runs: Vec<RunPicture>,
}

/// One strategy's part of the picture.
#[derive(Debug, Clone, Deserialize)]
pub struct RunPicture {
    pub strategy: String,
    pub verdict: String,
    pub expected: String,
    pub as_expected: bool,
    #[serde(default)]
    pub reasons: Vec<String>,
    pub orders: Orders,
    pub anomalies: BTreeMap<String, Option<u64>>,
    #[serde(default)]
    pub unknown: BTreeMap<String, UnknownPicture>,
    pub latency_ms: LatencyPicture,
    /// Absent from reports written before it was counted.
    #[serde(default)]
    pub redeliveries: Option<crate::reconcile::Redeliveries>,
    /// Absent from reports written before it was counted.
    #[serde(default)]
    pub arrival_order: Option<crate::reconcile::ArrivalOrder>,
    #[serde(default)]
    pub faults: Vec<AppliedPicture>,
    #[serde(default)]
    pub stories: Vec<StoryPicture>,
    /// Absent from reports written before the timeline existed.
    pub timeline: Option<Timeline>,
    /// two-phase only.
    #[serde(default)]
    pub in_doubt: Option<InDoubtPicture>,
}

/// two-phase's in-doubt figure, as the picture says it.
#[derive(Debug, Clone, Deserialize)]
pub struct InDoubtPicture {
    pub resolved: u64,
    pub blocked: u64,
    #[serde(default)]
    pub lock_wait_p99_ms: Option<u64>,
    #[serde(default)]
    pub story: Option<String>,
}

/// A figure the run could not count (`?`): why, and how many were seen.
#[derive(Debug, Clone, Deserialize)]
pub struct UnknownPicture {
    pub reason: String,
    #[serde(default)]
    pub at_least: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct LatencyPicture {
    pub write_p50: Option<f64>,
    pub write_p99: Option<f64>,
    pub event_lag_p50: Option<f64>,
    pub event_lag_p99: Option<f64>,
}

/// A fault as the executor applied it.
#[derive(Debug, Clone, Deserialize)]
pub struct AppliedPicture {
    pub window: usize,
    pub at: u64,
    pub action: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StoryPicture {
    pub anomaly: String,
    #[serde(default)]
    pub order_id: Option<uuid::Uuid>,
    pub product_id: i32,
    pub text: String,
}

/// Why a picture cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("the file is not a dualwrite report (written with --json)")]
    NotAReport(#[source] serde_json::Error),
    #[error("run {0} has no timeline: the report was written by an older dualwrite; run it again with --json")]
    NoTimeline(String),
}

impl Picture {
    /// The picture of a report, read through its JSON.
    pub fn of(report: &Report) -> Result<Picture, PictureError> {
        let json = serde_json::to_value(report).map_err(PictureError::NotAReport)?;
        Picture::from_json(json)
    }

    /// The picture of a report's JSON.
    pub fn from_json(json: serde_json::Value) -> Result<Picture, PictureError> {
        let picture: Picture = serde_json::from_value(json).map_err(PictureError::NotAReport)?;
        if let Some(run) = picture.runs.iter().find(|r| r.timeline.is_none()) {
            return Err(PictureError::NoTimeline(run.strategy.clone()));
        }
        Ok(picture)
    }
}
