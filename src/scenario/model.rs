//! The scenario file's TOML model: what serde reads, before any check.
//!
//! Everything a user can get wrong is an `Option` or a raw value, each
//! [`Spanned`] with its byte offset, so that the checks (`check/`), not
//! serde, word the error and name its line. Unknown keys are refused here.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(super) type Str = Spanned<String>;
pub(super) type Val = Spanned<toml::Value>;
pub(super) type Attributes = Spanned<BTreeMap<Str, Val>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileModel {
    pub(super) description: Option<Str>,
    pub(super) duration: Option<Val>,
    pub(super) expect: Option<BTreeMap<Str, Str>>,
    #[serde(default)]
    pub(super) window: Vec<Spanned<WindowModel>>,
    #[serde(default)]
    pub(super) random: Vec<Spanned<RandomModel>>,
    #[serde(default)]
    pub(super) crash: Vec<Spanned<CrashModel>>,
    pub(super) workload: Option<WorkloadModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowModel {
    pub(super) link: Option<Str>,
    pub(super) from: Option<Val>,
    pub(super) until: Option<Val>,
    #[serde(rename = "type")]
    pub(super) kind: Option<Str>,
    pub(super) stream: Option<Str>,
    pub(super) attributes: Option<Attributes>,
    /// Read only to refuse it with a reason (see [`Checker::fault`]).
    pub(super) toxicity: Option<Val>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RandomModel {
    pub(super) link: Option<Str>,
    #[serde(rename = "type")]
    pub(super) kind: Option<Str>,
    pub(super) stream: Option<Str>,
    pub(super) attributes: Option<Attributes>,
    pub(super) toxicity: Option<Val>,
    pub(super) count: Option<Spanned<i64>>,
    pub(super) length: Option<Val>,
    pub(super) within: Option<Val>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CrashModel {
    pub(super) component: Option<Str>,
    pub(super) at: Option<Val>,
    pub(super) restart_after: Option<Val>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkloadModel {
    pub(super) cache_fill_delay: Option<Val>,
    pub(super) event_key: Option<Str>,
}
