//! No password in any output: a run with a password in both service URLs,
//! and every way dualwrite can print a URL — the report, the JSON, the
//! history, an HTML report if there is one, the error for a URL that does
//! not parse, `doctor`, `--help` with the URLs in the environment, debug
//! logs — is searched for either password.
//!
//! PostgreSQL on these machines trusts loopback connections, so any password
//! is accepted; Redis gets a user of this test's own (an ACL user, removed
//! at the end) so that the cache-aside run really authenticates with one.

use std::process::{Command, Output, Stdio};

/// Redis database used by this test's runs (the battery's, see cli_battery.rs).
const REDIS_DB: u32 = 11;

struct RedisUser {
    name: String,
}

impl RedisUser {
    fn create(password: &str) -> RedisUser {
        let name = format!("dualwrite_secrets_{}", std::process::id());
        let status = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "ACL", "SETUSER", &name, "on", &format!(">{password}"), "~*", "&*", "+@all"])
            .output()
            .expect("redis-cli is installed");
        assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "OK", "{status:?}");
        RedisUser { name }
    }
}

impl Drop for RedisUser {
    fn drop(&mut self) {
        let _ = Command::new("redis-cli").args(["-h", "127.0.0.1", "ACL", "DELUSER", &self.name]).output();
    }
}

fn dualwrite(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dualwrite"));
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("KAFKA_BROKERS")
        .env_remove("TOXIPROXY_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run dualwrite")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn no_password_appears_in_any_output() {
    let pg = format!("pg-s3cr3t-{}", std::process::id());
    let rd = format!("rd-s3cr3t-{}", std::process::id());
    let user = RedisUser::create(&rd);
    let database_url = format!("postgres://postgres:{pg}@127.0.0.1:5432/postgres");
    let redis_url = format!("redis://{}:{rd}@127.0.0.1:6379/{REDIS_DB}", user.name);
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).display().to_string();
    let mut seen: Vec<(String, String)> = Vec::new();

    // A whole cache-aside run: the report, the JSON, the history, the picture.
    let run = dualwrite(
        &[
            "run",
            "cache-aside",
            "--scenario",
            "calm",
            "--seed",
            "1",
            "--duration",
            "2s",
            "--database-url",
            &database_url,
            "--redis-url",
            &redis_url,
            "--json",
            &out("r.json"),
            "--history",
            &out("h.jsonl"),
            "--html",
            &out("r.html"),
        ],
        &[],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    seen.push(("run cache-aside".into(), text(&run)));
    let json = std::fs::read_to_string(out("r.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    // The URL is there, with its password hidden: the test looks at the right place.
    assert_eq!(report["runs"][0]["where"]["database_url"], "postgres://postgres:***@127.0.0.1:5432/postgres");
    assert!(report["reproduce"].as_str().unwrap().contains(&format!("{}:***@127.0.0.1:6379/{REDIS_DB}", user.name)));

    // The same URLs from the environment, with debug logs on.
    let logged = dualwrite(
        &["-vv", "run", "naive", "--scenario", "calm", "--seed", "1", "--duration", "1s"],
        &[("DATABASE_URL", &database_url), ("REDIS_URL", &redis_url)],
    );
    assert_eq!(logged.status.code(), Some(0), "{}", text(&logged));
    seen.push(("run -vv".into(), text(&logged)));

    // URLs that do not parse, with a password in them.
    for (flag, url) in [
        ("--database-url", format!("postgres://postgres:{pg}@127.0.0.1:notaport/postgres")),
        ("--database-url", format!("postgres://postgres:{pg}@[::1/postgres")),
        ("--redis-url", format!("redis://:{rd}@127.0.0.1:notaport")),
        ("--toxiproxy", format!("http://user:{rd}@[::1")),
    ] {
        let refused = dualwrite(&["run", "cache-aside", flag, &url], &[]);
        assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
        seen.push((format!("{flag} that does not parse"), text(&refused)));
    }
    // A password with a wrong host: refused after trying to connect.
    let unreachable =
        dualwrite(&["run", "naive", "--database-url", &format!("postgres://postgres:{pg}@127.0.0.1:1/postgres")], &[]);
    assert_eq!(unreachable.status.code(), Some(2));
    seen.push(("unreachable database".into(), text(&unreachable)));

    // doctor, with both.
    let doctor = dualwrite(&["doctor", "--database-url", &database_url, "--redis-url", &redis_url], &[]);
    seen.push(("doctor".into(), text(&doctor)));

    // --help, with both in the environment.
    for args in [&["run", "--help"][..], &["compare", "--help"], &["doctor", "--help"]] {
        let help = dualwrite(
            args,
            &[
                ("DATABASE_URL", &database_url),
                ("REDIS_URL", &redis_url),
                ("TOXIPROXY_URL", &format!("http://proxy:{rd}@127.0.0.1:8474")),
            ],
        );
        assert_eq!(help.status.code(), Some(0));
        seen.push((format!("{args:?}"), text(&help)));
    }

    // Every file the runs wrote.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let content = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        seen.push((path.display().to_string(), content));
    }
    assert!(seen.iter().any(|(what, _)| what.ends_with("h.jsonl")), "the history was written");
    assert!(seen.iter().any(|(what, _)| what.ends_with("r.html")), "the picture was written");

    for (what, content) in &seen {
        for secret in [&pg, &rd] {
            assert!(!content.contains(secret.as_str()), "{what} shows a password:\n{content}");
        }
    }
}
