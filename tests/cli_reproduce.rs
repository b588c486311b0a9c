//! The `reproduce:` line is a command that really reproduces: pasted back
//! (from another directory), it runs the same strategy under the same
//! scenario file, seed and flags, so the fault schedule is the same and the
//! writers place the same orders.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Splits a line as a POSIX shell would, for the words `reproduce:` writes
/// (bare words and single-quoted ones).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn run(args: &[String], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(args)
        .current_dir(cwd)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("KAFKA_BROKERS")
        .env_remove("TOXIPROXY_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run dualwrite")
}

/// The `reproduce:` command, joined back into one line where the report
/// broke it for the width (a line ending in ` \` goes on below, as in a shell).
fn reproduce_line(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    // "reproduce: CMD", or "reproduce:" with the command on the lines below.
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("reproduce:"));
    let first = lines.next().unwrap_or_else(|| panic!("no reproduce line in {stdout}"));
    let mut command = first.trim_start_matches("reproduce:").trim().to_owned();
    if command.is_empty() {
        command = lines.next().expect("the command below its label").trim().to_owned();
    }
    while let Some(head) = command.strip_suffix(" \\") {
        command = format!("{head} {}", lines.next().expect("a continued line goes on").trim());
    }
    command
}

/// Each order a writer began: (writer, seq) → (order id, product, delta).
fn orders(history: &Path) -> BTreeMap<(u64, u64), (String, i64, i64)> {
    let text = std::fs::read_to_string(history).unwrap();
    text.lines()
        .filter_map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(event["strategy"], "naive", "{line}");
            let order = event.get("Begin")?.get("order")?.clone();
            Some((
                (order["writer"].as_u64().unwrap(), order["seq"].as_u64().unwrap()),
                (
                    order["order_id"].as_str().unwrap().to_owned(),
                    order["product_id"].as_i64().unwrap(),
                    order["delta"].as_i64().unwrap(),
                ),
            ))
        })
        .collect()
}

#[test]
fn a_reproduce_line_run_back_gives_the_same_schedule_and_orders() {
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    // A scenario of one's own, with windows placed by the seed, in a folder
    // whose name needs quoting.
    let scenarios = first_dir.path().join("my scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    std::fs::write(
        scenarios.join("seeded.toml"),
        r#"description = "Random Kafka latency, placed by the seed."
[[random]]
link = "kafka"
type = "latency"
attributes = { latency = 50 }
count = 3
length = ["5%", "10%"]
within = ["10%", "90%"]
"#,
    )
    .unwrap();
    let args: Vec<String> = [
        "run",
        "naive",
        "--scenario",
        "my scenarios/seeded.toml",
        "--seed",
        "4242",
        "--duration",
        "3s",
        "--writers",
        "100ms",
        "--writer-tasks",
        "2",
        "--products",
        "3",
        "--publish-timeout",
        "1500ms",
        "--json",
        "first.json",
        "--history",
        "first.jsonl",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let first = run(&args, first_dir.path());
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
    let line = reproduce_line(&first);
    let scenario_path = scenarios.join("seeded.toml").canonicalize().unwrap();
    assert!(line.contains(&format!("'{}'", scenario_path.display())), "the scenario by its absolute path: {line}");
    for flag in ["--writers 100ms", "--writer-tasks 2", "--products 3", "--publish-timeout 1500ms", "--seed 4242"] {
        assert!(line.contains(flag), "{flag} missing from {line}");
    }
    assert!(!line.contains("--json") && !line.contains("--history"), "{line}");

    // Pasted back in another directory, with outputs of its own.
    let mut again = shell_words(&line);
    assert_eq!(again.remove(0), "dualwrite");
    again.extend(["--json", "second.json", "--history", "second.jsonl"].map(String::from));
    let second = run(&again, second_dir.path());
    assert_eq!(second.status.code(), Some(0), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(reproduce_line(&second), line, "the line reproduces itself");

    let report = |p: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let (a, b) = (report(&first_dir.path().join("first.json")), report(&second_dir.path().join("second.json")));
    assert!(!a["schedule"]["windows"].as_array().unwrap().is_empty(), "the seed placed windows");
    assert_eq!(a["schedule"], b["schedule"], "the same fault schedule");
    for key in ["seed", "scenario", "duration_ms"] {
        assert_eq!(a[key], b[key], "{key}");
    }

    // The same orders: every (writer, seq) both runs began is the same order.
    // (How many orders a run begins depends on timing at its very end.)
    let (one, two) = (orders(&first_dir.path().join("first.jsonl")), orders(&second_dir.path().join("second.jsonl")));
    let common: Vec<_> = one.keys().filter(|k| two.contains_key(k)).collect();
    assert!(common.len() * 10 >= one.len().min(two.len()) * 9, "{} of {} / {}", common.len(), one.len(), two.len());
    assert!(common.len() >= 40, "a 3 s run at 2 × 10 orders/s: {}", common.len());
    for key in common {
        assert_eq!(one[key], two[key], "order {key:?}");
    }
}
