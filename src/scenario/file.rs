//! Reading a scenario file: TOML syntax, then the model (`model.rs`), then
//! the checks (`check/`), each error with the line it is on.
//!
//! Two layers, so that every error can name a line. serde reads the file into
//! loosely typed [`toml::Spanned`] fields (strings and raw TOML values, with
//! their byte offsets), refusing unknown keys; then the checker validates
//! them and reports the problem that comes first in the file.

use serde::Deserialize;

use super::check::Checker;
use super::lines::Lines;
use super::model::FileModel;
use super::spec::Spec;
use super::ScenarioError;

/// Reads and validates a scenario file. `file` names it in messages.
pub(super) fn read(file: &str, text: &str) -> Result<Spec, ScenarioError> {
    let lines = Lines::new(text);
    // Parsing and deserialising are two steps so that a file that is not
    // TOML at all (Syntax) is told apart from TOML of the wrong shape.
    let document = toml::de::Deserializer::parse(text).map_err(|e| ScenarioError::Syntax {
        file: file.to_owned(),
        line: lines.line_of(e.span().map_or(0, |s| s.start)),
        message: one_line(e.message()),
    })?;
    let model = FileModel::deserialize(document).map_err(|e| ScenarioError::Invalid {
        file: file.to_owned(),
        line: lines.line_of(e.span().map_or(0, |s| s.start)),
        // serde says "field"; the TOML spec and our users say "key". Its
        // list of keys includes `toxicity`, which a window only reads in
        // order to refuse it, so it is not offered.
        message: one_line(&e.message().replacen("unknown field", "unknown key", 1).replace(", `toxicity`", "")),
    })?;

    let mut checker = Checker { lines: &lines, problems: Vec::new() };
    let spec = checker.file(model);
    match checker.problems.into_iter().min_by_key(|(offset, _)| *offset) {
        Some((offset, message)) => {
            Err(ScenarioError::Invalid { file: file.to_owned(), line: lines.line_of(offset), message })
        }
        None => Ok(spec),
    }
}

/// toml's messages sometimes span lines; ours are one line each.
fn one_line(message: &str) -> String {
    message.trim().lines().map(str::trim).collect::<Vec<_>>().join("; ")
}
