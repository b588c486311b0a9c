//! The `reproduce:` line every report prints, and the warnings for flags a
//! run was given but does not use.
//!
//! The line is a command that, pasted into a shell, runs the same run again:
//! the same strategies, scenario (a file by its absolute path), seed and
//! duration — so the same fault schedule and the same orders — and every
//! other flag that was given (on the command line or through its
//! environment variable) as it was typed. Only the output flags (`--json`,
//! `--history`, `--html`, `--width`, `--keep`) are left out, so that pasting it does not
//! overwrite the first run's files, and passwords are shown as `***` (see
//! [`crate::redact`]).

use std::time::Duration;

use crate::cli::Given;
use crate::names::Strategy;
use crate::redact::redact_url;
use crate::scenario::Scenario;

/// Flags that say where results go, not what the run does.
const OUTPUT_FLAGS: [&str; 5] = ["json", "history", "html", "width", "keep"];

/// Flags the line always writes out, from the resolved values.
const RESOLVED_FLAGS: [&str; 3] = ["scenario", "seed", "duration"];

/// Flags whose values may hold a password.
const SECRET_FLAGS: [&str; 3] = ["database-url", "redis-url", "toxiproxy"];

/// Flags that name a file, written out as an absolute path.
const PATH_FLAGS: [&str; 1] = ["toxiproxy-config"];

/// The command that reproduces a run: `command` is `run` or `compare`.
pub fn reproduce_line(command: &str, given: &Given, scenario: &Scenario, seed: u64, duration: Duration) -> String {
    let mut words = vec!["dualwrite".to_owned(), command.to_owned()];
    // The positional strategy of `run` first, as typed.
    for flag in given.flags.iter().filter(|f| f.long.is_none()) {
        words.extend(flag.values.iter().cloned());
    }
    words.push("--scenario".into());
    words.push(scenario_argument(scenario));
    words.push("--seed".into());
    words.push(seed.to_string());
    words.push("--duration".into());
    words.push(super::limits::show(duration));
    for flag in &given.flags {
        let Some(long) = flag.long.as_deref() else { continue };
        if OUTPUT_FLAGS.contains(&long) || RESOLVED_FLAGS.contains(&long) {
            continue;
        }
        words.push(format!("--{long}"));
        if !flag.values.is_empty() {
            let value = flag.values.join(",");
            words.push(if SECRET_FLAGS.contains(&long) {
                redact_url(&value)
            } else if PATH_FLAGS.contains(&long) {
                absolute(&value)
            } else {
                value
            });
        }
    }
    words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
}

/// A built-in scenario by name; a file by its absolute path, so the line
/// works from any directory.
fn scenario_argument(scenario: &Scenario) -> String {
    if scenario.source == "built-in" {
        return scenario.name.clone();
    }
    absolute(&scenario.source)
}

/// A path made absolute (as it is now), or as given if it cannot be.
fn absolute(path: &str) -> String {
    std::fs::canonicalize(path).map(|p| p.display().to_string()).unwrap_or_else(|_| path.to_owned())
}

/// A word as a POSIX shell reads it back: bare when that is safe, in single
/// quotes otherwise.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Which strategies use a strategy-specific flag.
const USED_BY: [(&str, &[Strategy]); 4] = [
    ("relays", &[Strategy::Outbox]),
    ("outbox-cdc-mode", &[Strategy::OutboxCdc]),
    ("cache-ttl", &[Strategy::CacheAside, Strategy::CacheCdc]),
    (
        "publish-timeout",
        &[Strategy::Naive, Strategy::PublishInTx, Strategy::Outbox, Strategy::Cdc, Strategy::OutboxCdc],
    ),
];

/// One warning per flag given on the command line that none of
/// `strategies` (or the chosen services) uses, so that a mistyped run is not
/// taken for the run that was meant. Flags from the environment are not
/// warned about: an environment is set once for many runs.
pub fn unused_flags(given: &Given, strategies: &[Strategy]) -> Vec<String> {
    let typed = |long: &str| given.flags.iter().any(|f| f.long.as_deref() == Some(long) && !f.from_env);
    let mut warnings = Vec::new();
    for (flag, users) in USED_BY {
        if !typed(flag) || strategies.iter().any(|s| users.contains(s)) {
            continue;
        }
        let users = users.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
        let running = strategies.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
        warnings.push(format!("--{flag} is used only by {users}; it has no effect on {running}"));
    }
    if typed("redis-url") && !strategies.iter().any(|s| s.caches()) {
        warnings.push("--redis-url is used only by cache-aside and cache-cdc; this run does not use Redis".into());
    }
    let toxiproxy = given.has("toxiproxy");
    if typed("brokers") && toxiproxy {
        warnings.push(
            "--brokers has no effect with --toxiproxy: Kafka is whatever that proxy's `kafka` link forwards to".into(),
        );
    }
    if typed("kafka-proxy-listen") && (toxiproxy || !given.has("brokers")) {
        warnings.push(
            "--kafka-proxy-listen is used only with --brokers and the built-in proxy; it has no effect here".into(),
        );
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{try_parse, Command};

    fn given(args: &[&str]) -> Given {
        let mut all = vec!["dualwrite"];
        all.extend_from_slice(args);
        match try_parse(all).unwrap().command {
            Command::Run(a) => a.given,
            Command::Compare(a) => a.given,
            _ => panic!("run or compare"),
        }
    }

    #[test]
    fn words_are_quoted_only_when_the_shell_needs_it() {
        assert_eq!(shell_quote("--seed"), "--seed");
        assert_eq!(shell_quote("/tmp/my faults.toml"), "'/tmp/my faults.toml'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("naive,outbox"), "naive,outbox");
    }

    #[test]
    fn the_line_repeats_every_flag_but_the_outputs_and_hides_passwords() {
        let scenario = Scenario::builtin("kafka-resets").unwrap();
        let g = given(&[
            "run",
            "outbox",
            "--relays",
            "3",
            "--writers",
            "250ms",
            "--json",
            "r.json",
            "--keep",
            "--database-url",
            "postgres://u:secret@db:5432/x",
            "--scenario",
            "kafka-resets",
        ]);
        let line = reproduce_line("run", &g, &scenario, 7, Duration::from_secs(12));
        assert_eq!(
            line,
            "dualwrite run outbox --scenario kafka-resets --seed 7 --duration 12s --writers 250ms \
             --database-url 'postgres://u:***@db:5432/x' --relays 3"
        );
        // What it says parses back to the same run.
        let words: Vec<String> = line.split(' ').map(|w| w.trim_matches('\'').to_owned()).collect();
        let Command::Run(again) = try_parse(words).unwrap().command else { panic!("run") };
        assert_eq!((again.strategy, again.workload.seed, again.tuning.relays), (Strategy::Outbox, Some(7), 3));
        assert_eq!(again.duration, Duration::from_secs(12));
        assert!(again.output.json.is_none() && !again.output.keep);
    }

    #[test]
    fn compare_keeps_its_strategy_list() {
        let scenario = Scenario::builtin("calm").unwrap();
        let g = given(&["compare", "--strategies", "naive,outbox"]);
        assert_eq!(
            reproduce_line("compare", &g, &scenario, 1, Duration::from_secs(8)),
            "dualwrite compare --scenario calm --seed 1 --duration 8s --strategies naive,outbox"
        );
    }

    #[test]
    fn flags_a_strategy_does_not_use_are_named() {
        let w = unused_flags(&given(&["run", "naive", "--relays", "2"]), &[Strategy::Naive]);
        assert_eq!(w, ["--relays is used only by outbox; it has no effect on naive"]);
        let w = unused_flags(&given(&["run", "cdc", "--outbox-cdc-mode", "table"]), &[Strategy::Cdc]);
        assert_eq!(w, ["--outbox-cdc-mode is used only by outbox-cdc; it has no effect on cdc"]);
        let w = unused_flags(&given(&["run", "cache-aside", "--publish-timeout", "3s"]), &[Strategy::CacheAside]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(unused_flags(&given(&["run", "outbox", "--relays", "2"]), &[Strategy::Outbox]).is_empty());
        // compare: a flag is used if any compared strategy uses it.
        let all = Strategy::ALL.to_vec();
        assert!(unused_flags(&given(&["compare", "--relays", "2", "--cache-ttl", "1s"]), &all).is_empty());
        let w = unused_flags(&given(&["run", "naive", "--kafka-proxy-listen", "127.0.0.1:1"]), &[Strategy::Naive]);
        assert_eq!(w.len(), 1, "{w:?}");
    }
}
