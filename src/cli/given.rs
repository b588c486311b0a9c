//! What a `run` or `compare` was given, flag by flag and as typed: what the
//! `reproduce:` line repeats.

use clap::parser::ValueSource;
use clap::ArgMatches;

/// One flag as the user gave it — on the command line or through its
/// environment variable — with its values as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenFlag {
    /// The flag's name without dashes (`writer-tasks`); `None` for the
    /// positional strategy.
    pub long: Option<String>,
    /// Its values as typed; empty for a flag without a value (`--keep`).
    pub values: Vec<String>,
    /// True when it came from the environment (`DATABASE_URL`).
    pub from_env: bool,
}

/// The flags a `run` or `compare` was given, in the order `--help` lists
/// them: what the `reproduce:` line repeats, and what the warnings about
/// flags a strategy does not use look at. Flags left at their default are
/// not in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    pub flags: Vec<GivenFlag>,
}

impl Given {
    /// The flags of `command` that `matches` holds values for from the
    /// command line or the environment.
    pub(super) fn from_matches(command: &clap::Command, matches: &ArgMatches) -> Given {
        let mut flags = Vec::new();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            let source = matches.value_source(id);
            if !matches!(source, Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
                continue;
            }
            let takes_values = arg.get_action().takes_values();
            let values = if takes_values {
                matches
                    .get_raw(id)
                    .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            flags.push(GivenFlag {
                long: arg.get_long().map(str::to_owned),
                values,
                from_env: source == Some(ValueSource::EnvVariable),
            });
        }
        Given { flags }
    }

    /// Whether `--long` was given (by flag or environment).
    pub fn has(&self, long: &str) -> bool {
        self.flags.iter().any(|f| f.long.as_deref() == Some(long))
    }
}
