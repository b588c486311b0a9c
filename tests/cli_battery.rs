//! The bad-input battery: every way a participant (or an adversary) can get
//! the command line, a scenario file, a URL, a path or the environment
//! wrong, each run through the real binary.
//!
//! Every case must exit 2 within 5 s, with nothing on stdout and exactly one
//! line on stderr — `error: …`, naming the cause and the fix (the needles) —
//! no panic, no hang, and nothing left behind: after each case no schema,
//! database, publication or replication slot of the battery's own database
//! role, and no key in the battery's own Redis database.
//!
//! Isolation on shared services: the cases run as a PostgreSQL role of
//! their own (`battery_input_<pid>`, owning a database of the same name), so
//! anything a case created is recognisable whatever other tests do on the
//! server at the same time, and against Redis database 11, which no other
//! test of this repository uses. Both are made at the start and removed at
//! the end. The cases run concurrently, twelve at a time.
//!
//! After each case the catalogs are read over one kept-open connection (a
//! `psql` per case costs more than the case itself on a loaded machine);
//! at the end `psql` and `redis-cli` read them once more, independently.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Redis database the battery's runs use (see the module doc).
const REDIS_DB: u32 = 11;

/// The time a case may take.
const LIMIT: Duration = Duration::from_secs(5);

/// One bad input.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    args: Vec<String>,
    /// Environment variables set for this case (after the battery's own).
    env: Vec<(&'static str, String)>,
    /// What the error line must contain: the cause and the fix.
    needles: Vec<String>,
}

fn case(name: &str, args: &[&str], needles: &[&str]) -> Case {
    Case {
        name: name.to_owned(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        needles: needles.iter().map(|s| s.to_string()).collect(),
    }
}

fn with_env(mut c: Case, key: &'static str, value: &str) -> Case {
    c.env.push((key, value.to_owned()));
    c
}

/// The battery's PostgreSQL role and database, and its Redis database.
struct Isolation {
    role: String,
}

fn psql(database: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database, "-tAc", sql])
        .output()
        .expect("psql (PostgreSQL's client) is installed");
    assert!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Isolation {
    fn create() -> Isolation {
        let role = format!("battery_input_{}", std::process::id());
        psql("postgres", &format!("DROP DATABASE IF EXISTS {role}"));
        psql("postgres", &format!("DROP ROLE IF EXISTS {role}"));
        psql("postgres", &format!("CREATE ROLE {role} LOGIN CREATEDB REPLICATION"));
        psql("postgres", &format!("CREATE DATABASE {role} OWNER {role}"));
        Isolation { role }
    }

    fn database_url(&self) -> String {
        format!("postgres://{0}@127.0.0.1:5432/{0}", self.role)
    }

    /// What a run of this role could have left behind: the query reads,
    /// from the role's own database, catalogs every database sees (databases,
    /// slots) and its own (schemas, publications).
    fn query(&self) -> String {
        let role = &self.role;
        format!(
            "SELECT 'database ' || datname FROM pg_database \
                   WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = '{role}') AND datname <> '{role}' \
                 UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots \
                   WHERE database IN (SELECT datname FROM pg_database \
                     WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = '{role}')) \
                 UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname LIKE 'dw\\_%' \
                 UNION ALL SELECT 'publication ' || pubname FROM pg_publication"
        )
    }

    /// Everything left behind, read with psql and redis-cli.
    fn leftovers(&self) -> Vec<String> {
        let found = psql(&self.role, &self.query());
        let keys = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-n", &REDIS_DB.to_string(), "--scan", "--pattern", "dw_*"])
            .output()
            .expect("redis-cli is installed");
        let keys = String::from_utf8_lossy(&keys.stdout).into_owned();
        found
            .lines()
            .map(str::to_owned)
            .chain(keys.lines().map(|k| format!("redis key {k}")))
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// The same check as [`Isolation::leftovers`] over connections kept open.
struct Watcher {
    runtime: tokio::runtime::Runtime,
    pool: sqlx::PgPool,
    redis: redis::Client,
    query: String,
}

impl Watcher {
    fn new(iso: &Isolation) -> Watcher {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let url = format!("postgres://postgres@127.0.0.1:5432/{}", iso.role);
        let pool = runtime.block_on(sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url)).unwrap();
        let redis = redis::Client::open(format!("redis://127.0.0.1:6379/{REDIS_DB}")).unwrap();
        Watcher { runtime, pool, redis, query: iso.query() }
    }

    fn leftovers(&self) -> Vec<String> {
        self.runtime.block_on(async {
            let mut found: Vec<String> = sqlx::query_scalar(&self.query).fetch_all(&self.pool).await.unwrap();
            let mut conn = self.redis.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS").arg("dw_*").query_async(&mut conn).await.unwrap();
            found.extend(keys.into_iter().map(|k| format!("redis key {k}")));
            found
        })
    }
}

static WATCHER: OnceLock<Watcher> = OnceLock::new();

impl Drop for Isolation {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.role))
            .output();
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!("DROP ROLE IF EXISTS {}", self.role))
            .output();
    }
}

/// Files, folders and sockets the cases point at.
struct Fixtures {
    dir: tempfile::TempDir,
    /// A port nothing listens on.
    closed: u16,
    /// A port that accepts connections and never answers (held open).
    silent: TcpListener,
}

impl Fixtures {
    fn create() -> Fixtures {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("folder")).unwrap();
        std::fs::write(d.join("empty.toml"), "").unwrap();
        std::fs::write(d.join("binary.toml"), [0xff, 0xfe, 0x00, 0x01]).unwrap();
        std::fs::write(d.join("big.toml"), vec![b'#'; 2 << 20]).unwrap();
        std::fs::write(d.join("plain-file"), "x").unwrap();
        std::fs::write(d.join("notjson.json"), "this is not json").unwrap();
        std::fs::write(d.join("empty-list.json"), "[]").unwrap();
        std::fs::write(d.join("object.json"), r#"{"name": "postgres"}"#).unwrap();
        std::fs::write(
            d.join("three-links.json"),
            r#"[{"name": "postgres", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:5432"},
                {"name": "postgres_relay", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:5432"},
                {"name": "redis", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:6379"}]"#,
        )
        .unwrap();
        std::os::unix::fs::symlink(d.join("plain-file"), d.join("link.json")).unwrap();
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling.json")).unwrap();
        let fifo = d.join("fifo.toml");
        let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success());
        let scenario = |name: &str, body: &str| {
            std::fs::write(d.join(name), format!("description = \"{name}\"\n{body}")).unwrap();
        };
        scenario("no-windows-key.toml", "[[window]]\nlink = \"kafka\"\n");
        scenario(
            "far-future.toml",
            "[[window]]\nlink = \"kafka\"\nfrom = \"1s\"\nuntil = \"500000000000y\"\ntype = \"down\"\n",
        );
        scenario("huge-duration.toml", "duration = \"99999h\"\n");
        scenario(
            "count-too-big.toml",
            "[[random]]\nlink = \"redis\"\ntype = \"down\"\ncount = 99999\nlength = [\"1%\", \"2%\"]\n",
        );
        scenario(
            "too-many-random.toml",
            &"[[random]]\nlink = \"redis\"\ntype = \"down\"\ncount = 1000\nlength = [\"1ms\", \"1ms\"]\n".repeat(3),
        );
        scenario(
            "too-many-windows.toml",
            &(0..2001)
                .map(|i| {
                    format!(
                        "[[window]]\nlink = \"kafka\"\nfrom = \"{i}s\"\nuntil = \"{}ms\"\ntype = \"down\"\n",
                        i * 1000 + 1
                    )
                })
                .collect::<String>(),
        );
        scenario("bad-expect.toml", "[expect]\nnaive = \"maybe\"\n");
        scenario(
            "random-in-the-past.toml",
            "[[random]]\nlink = \"redis\"\ntype = \"down\"\ncount = 1\nlength = [\"0%\", \"1%\"]\n",
        );
        scenario("crash-unknown.toml", "[[crash]]\ncomponent = \"database\"\nat = \"1s\"\nrestart_after = \"1s\"\n");
        scenario("negative-attribute.toml", "[[window]]\nlink = \"kafka\"\nfrom = \"1s\"\nuntil = \"2s\"\ntype = \"latency\"\nattributes = { latency = -5 }\n");
        scenario("fill-delay-percent.toml", "[workload]\ncache_fill_delay = [\"1%\", \"2%\"]\n");
        // Two windows that overlap only once the run's length is known.
        scenario(
            "mixed-overlap.toml",
            "[[window]]\nlink = \"kafka\"\nfrom = \"1s\"\nuntil = \"50%\"\ntype = \"down\"\n\
             [[window]]\nlink = \"kafka\"\nfrom = \"10%\"\nuntil = \"90%\"\ntype = \"down\"\n",
        );
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        Fixtures { dir, closed, silent }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn silent(&self) -> String {
        self.silent.local_addr().unwrap().to_string()
    }
}

/// Every case, grouped as the issue lists them.
fn cases(f: &Fixtures) -> Vec<Case> {
    let mut cases = Vec::new();
    let closed = f.closed;
    let silent = f.silent();

    // ── Durations: each flag, each way of being wrong ──────────────────────
    let durations: [(&str, &[&str], &str); 7] = [
        ("--duration", &["run", "naive"], "from 1s to 1h"),
        ("--readers", &["run", "naive"], "from 1ms to 1m"),
        ("--writers", &["compare"], "from 1ms to 1m"),
        ("--acquire-timeout", &["run", "outbox"], "from 10ms to 1m"),
        ("--publish-timeout", &["run", "naive"], "from 100ms to 5m"),
        ("--drain-timeout", &["compare"], "from 1s to 10m"),
        ("--cache-ttl", &["run", "cache-aside"], "from 1ms to 24h"),
    ];
    for (flag, command, range) in durations {
        for bad in ["banana", "0s", "1ns", "500000000000y", "99999h", "-1s", "", "12", "1 parsec"] {
            let mut args: Vec<&str> = command.to_vec();
            args.extend([flag, bad]);
            let mut needles = vec![flag, range];
            if !bad.is_empty() {
                needles.push(bad);
            }
            cases.push(case(&format!("{flag} {bad:?}"), &args, &needles));
        }
    }
    cases.push(case(
        "scenarios show, 500000000000y",
        &["scenarios", "show", "calm", "--seed", "1", "--duration", "500000000000y"],
        &["--duration", "from 1s to 1h"],
    ));
    cases.push(case(
        "scenarios show, 1ns",
        &["scenarios", "show", "flaky-network", "--duration", "1ns"],
        &["--duration", "from 1s to 1h"],
    ));

    // ── Counts ───────────────────────────────────────────────────────────
    let counts: [(&str, &str); 4] = [
        ("--writer-tasks", "from 1 to 256"),
        ("--products", "from 1 to 10000"),
        ("--pool-size", "from 1 to 100"),
        ("--relays", "from 1 to 16"),
    ];
    for (flag, range) in counts {
        for bad in ["0", "banana", "99999999999999999999", "1.5", "", "257000"] {
            let mut needles = vec![flag, range];
            if !bad.is_empty() {
                needles.push(bad);
            }
            cases.push(case(&format!("{flag} {bad:?}"), &["run", "outbox", flag, bad], &needles));
        }
    }
    // Sizes that are fine one by one, but not together.
    cases.push(case(
        "too many orders",
        &["run", "naive", "--writers", "1ms", "--writer-tasks", "256", "--duration", "1h"],
        &["plans 921600000 orders", "fewer tasks"],
    ));
    cases.push(case(
        "too many reads",
        &["compare", "--readers", "1ms", "--duration", "1h"],
        &["plans 3600000 reads", "read less often"],
    ));

    // ── Seeds, strategies, flags ───────────────────────────────────────────
    for bad in ["banana", "-1", "1e3", "18446744073709551616", ""] {
        cases.push(case(
            &format!("--seed {bad:?}"),
            &["run", "naive", "--seed", bad],
            &["--seed", "whole number from 0 to"],
        ));
    }
    cases.push(case("unknown strategy", &["run", "nieve"], &["nieve", "possible values: naive", "tip"]));
    cases.push(case("no strategy", &["run"], &["<STRATEGY>", "usage: dualwrite run"]));
    cases.push(case(
        "unknown strategy in a list",
        &["compare", "--strategies", "naive,bogus"],
        &["bogus", "possible values"],
    ));
    cases.push(case("empty strategy list", &["compare", "--strategies", ""], &["--strategies", "possible values"]));
    cases.push(case("unknown flag", &["run", "naive", "--bogus"], &["--bogus", "--help"]));
    cases.push(case("misspelt flag", &["run", "naive", "--sede", "1"], &["--sede", "--seed"]));
    cases.push(case("unknown subcommand", &["runn"], &["runn", "run"]));
    cases.push(case("flag without value", &["run", "naive", "--duration"], &["--duration", "value"]));
    cases.push(case(
        "unknown outbox-cdc mode",
        &["run", "outbox-cdc", "--outbox-cdc-mode", "wal"],
        &["wal", "message, table"],
    ));
    cases.push(case(
        "a flag given twice",
        &["run", "naive", "--seed", "1", "--seed", "2"],
        &["--seed", "cannot be used multiple times"],
    ));
    cases.push(case("positional in compare", &["compare", "naive"], &["naive", "--strategies naive"]));
    cases.push(case("scenarios: unknown action", &["scenarios", "delete", "calm"], &["delete", "--help"]));
    cases.push(case("scenarios show without a name", &["scenarios", "show"], &["<NAME>", "usage"]));
    cases.push(case("scenarios show, bad seed", &["scenarios", "show", "calm", "--seed", "x"], &["--seed", "x"]));
    cases.push(case("toxiproxy, bad listen", &["toxiproxy", "--listen", "banana"], &["--listen", "banana"]));

    // ── Scenarios ─────────────────────────────────────────────────────────
    cases.push(case("unknown scenario", &["run", "naive", "--scenario", "sunny"], &["sunny", "calm", ".toml"]));
    cases.push(case("empty scenario name", &["run", "naive", "--scenario", ""], &["no scenario named", "calm"]));
    cases.push(case(
        "scenario /dev/zero",
        &["run", "naive", "--scenario", "/dev/zero"],
        &["/dev/zero", "character device", "pass a file"],
    ));
    cases.push(case(
        "scenario missing",
        &["run", "naive", "--scenario", "/no/such/dir/x.toml"],
        &["/no/such/dir/x.toml", "No such file"],
    ));
    cases.push(case(
        "scenario a directory",
        &["run", "naive", "--scenario", &format!("{}/", f.path("folder"))],
        &["folder", "a directory", "pass a file"],
    ));
    cases.push(case(
        "scenario a named pipe",
        &["compare", "--scenario", &f.path("fifo.toml")],
        &["fifo.toml", "named pipe"],
    ));
    cases.push(case(
        "scenario empty",
        &["run", "naive", "--scenario", &f.path("empty.toml")],
        &["empty.toml", "missing \"description\""],
    ));
    cases.push(case(
        "scenario binary",
        &["run", "naive", "--scenario", &f.path("binary.toml")],
        &["binary.toml", "not UTF-8"],
    ));
    cases.push(case(
        "scenario 2 MiB",
        &["run", "naive", "--scenario", &f.path("big.toml")],
        &["big.toml", "larger than 1024 KiB"],
    ));
    cases.push(case(
        "scenario window without times",
        &["run", "naive", "--scenario", &f.path("no-windows-key.toml")],
        &["no-windows-key.toml:2", "missing"],
    ));
    cases.push(case(
        "scenario far future",
        &["run", "naive", "--scenario", &f.path("far-future.toml")],
        &["far-future.toml:5", "later than any run"],
    ));
    cases.push(case(
        "scenario huge duration",
        &["run", "naive", "--scenario", &f.path("huge-duration.toml")],
        &["huge-duration.toml:2", "longer than any run"],
    ));
    cases.push(case(
        "scenario count too big",
        &["run", "naive", "--scenario", &f.path("count-too-big.toml")],
        &["count-too-big.toml:5", "between 1 and 1000"],
    ));
    cases.push(case(
        "scenario too many random",
        &["run", "naive", "--scenario", &f.path("too-many-random.toml")],
        &["too-many-random.toml:", "at most 2000"],
    ));
    cases.push(case(
        "scenario too many windows",
        &["run", "naive", "--scenario", &f.path("too-many-windows.toml")],
        &["too-many-windows.toml:", "at most 2000 windows"],
    ));
    cases.push(case(
        "scenario bad expect",
        &["run", "naive", "--scenario", &f.path("bad-expect.toml")],
        &["bad-expect.toml:3", "unknown verdict", "consistent"],
    ));
    cases.push(case(
        "scenario zero length",
        &["run", "naive", "--scenario", &f.path("random-in-the-past.toml")],
        &["random-in-the-past.toml:6", "longer than zero"],
    ));
    cases.push(case(
        "scenario unknown component",
        &["run", "naive", "--scenario", &f.path("crash-unknown.toml")],
        &["crash-unknown.toml:3", "unknown component", "writer"],
    ));
    cases.push(case(
        "scenario negative attribute",
        &["run", "naive", "--scenario", &f.path("negative-attribute.toml")],
        &["negative-attribute.toml:7", "whole number"],
    ));
    cases.push(case(
        "scenario fill delay in percent",
        &["run", "cache-aside", "--scenario", &f.path("fill-delay-percent.toml")],
        &["fill-delay-percent.toml:3", "durations"],
    ));
    cases.push(case(
        "scenario overlap once resolved",
        &["run", "naive", "--scenario", &f.path("mixed-overlap.toml"), "--duration", "10s"],
        &["mixed-overlap.toml:", "overlaps window 1"],
    ));
    cases.push(case("check /dev/zero", &["scenarios", "check", "/dev/zero"], &["/dev/zero", "character device"]));
    cases.push(case("check a directory", &["scenarios", "check", &f.path("folder")], &["folder", "a directory"]));
    cases.push(case(
        "check a file that is not there",
        &["scenarios", "check", "nothing-here"],
        &["nothing-here", "No such file"],
    ));
    cases.push(case(
        "show a file that is 2 MiB",
        &["scenarios", "show", &f.path("big.toml")],
        &["big.toml", "larger than"],
    ));
    // Every malformed file of tests/scenarios/bad, as a run's scenario.
    let bad_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/bad");
    let expected = std::fs::read_to_string(bad_dir.join("expected.txt")).unwrap();
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        let (file, rest) = line.split_once(".toml:").unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("{file}.toml"));
        let message = rest.split_once(": ").unwrap().1;
        cases.push(case(
            &format!("bad scenario {file}"),
            &["run", "outbox", "--scenario", path.to_str().unwrap()],
            &[&format!("{}:", path.display()), message],
        ));
    }

    // ── URLs ─────────────────────────────────────────────────────────────
    let db_fix = "postgres://postgres@127.0.0.1:5432/postgres";
    for bad in ["mysql://root@db/x", "banana", "", "postgres//host/db", "http://127.0.0.1:5432/postgres"] {
        cases.push(case(
            &format!("--database-url {bad:?}"),
            &["run", "naive", "--database-url", bad],
            &["--database-url", db_fix],
        ));
    }
    cases.push(case(
        "--database-url bad port",
        &["run", "naive", "--database-url", "postgres://postgres@127.0.0.1:notaport/db"],
        &["--database-url", "not a PostgreSQL URL", db_fix],
    ));
    cases.push(case(
        "--database-url socket",
        &["run", "naive", "--database-url", "postgres:///postgres?host=/var/run/postgresql"],
        &["Unix socket", "give a host"],
    ));
    cases.push(case(
        "--database-url unreachable",
        &["run", "naive", "--database-url", &format!("postgres://postgres@127.0.0.1:{closed}/postgres")],
        &["PostgreSQL", &format!("127.0.0.1:{closed}"), "make setup"],
    ));
    cases.push(case(
        "--database-url no such database",
        &["run", "naive", "--database-url", "postgres://postgres@127.0.0.1:5432/no_such_db_here"],
        &["PostgreSQL", "refused", "no_such_db_here"],
    ));
    cases.push(case(
        "--database-url no such role",
        &["run", "naive", "--database-url", "postgres://no_such_role_here@127.0.0.1:5432/postgres"],
        &["PostgreSQL", "refused", "no_such_role_here"],
    ));
    cases.push(case(
        "--database-url silent server",
        &["run", "naive", "--database-url", &format!("postgres://postgres@{silent}/postgres")],
        &["PostgreSQL", &silent, "no answer"],
    ));
    let redis_fix = "redis://127.0.0.1:6379";
    for bad in [
        "banana",
        "http://127.0.0.1:6379",
        "redis://",
        "redis://127.0.0.1:6379/banana",
        "redis+unix:///tmp/no-such.sock",
    ] {
        cases.push(case(
            &format!("--redis-url {bad:?}"),
            &["run", "cache-aside", "--redis-url", bad],
            &["--redis-url", redis_fix],
        ));
    }
    cases.push(case(
        "--redis-url unreachable",
        &["run", "cache-aside", "--redis-url", &format!("redis://127.0.0.1:{closed}")],
        &["Redis", &format!("127.0.0.1:{closed}"), "make setup"],
    ));
    cases.push(case(
        "--redis-url no such database",
        &["run", "cache-aside", "--redis-url", "redis://127.0.0.1:6379/99"],
        &["Redis", "refused", "database number"],
    ));
    cases.push(case(
        "--redis-url wrong password",
        &["run", "cache-aside", "--redis-url", "redis://:wrong-password@127.0.0.1:6379"],
        &["Redis", "refused", "password"],
    ));
    cases.push(case(
        "--redis-url wrong user",
        &["run", "cache-aside", "--redis-url", "redis://nobody:pw@127.0.0.1:6379"],
        &["Redis", "refused", "password"],
    ));
    cases.push(case(
        "--redis-url silent server",
        &["compare", "--redis-url", &format!("redis://{silent}")],
        &["Redis", &silent, "make setup"],
    ));
    cases.push(case(
        "--redis-url tls",
        &["run", "cache-aside", "--redis-url", "rediss://127.0.0.1:6379"],
        &["--redis-url", "TLS", redis_fix],
    ));
    let broker_fix = "--brokers";
    for bad in [
        "banana",
        "banana:",
        ":9092",
        "127.0.0.1:99999",
        "kafka://127.0.0.1:9092",
        "127.0.0.1:0",
        "a:1,",
        "host name:9092",
    ] {
        cases.push(case(
            &format!("--brokers {bad:?}"),
            &["run", "naive", "--brokers", bad],
            &[broker_fix, "host:port", "127.0.0.1:9092"],
        ));
    }
    cases.push(case(
        "--brokers closed port",
        &["run", "naive", "--brokers", &format!("127.0.0.1:{closed}")],
        &["Kafka", &format!("127.0.0.1:{closed}"), "--brokers"],
    ));
    cases.push(case(
        "--brokers unknown host",
        &["run", "naive", "--brokers", "banana:9092"],
        &["Kafka", "banana:9092", "--brokers"],
    ));
    cases.push(case(
        "--brokers silent server",
        &["run", "naive", "--brokers", &silent],
        &["Kafka", &silent, "does not answer as a Kafka broker"],
    ));
    cases.push(case(
        "--brokers second one closed",
        &["run", "naive", "--brokers", &format!("{silent},127.0.0.1:{closed}")],
        &["Kafka", &format!("127.0.0.1:{closed}")],
    ));
    for bad in ["banana", "ftp://127.0.0.1:8474", "http://", "127.0.0.1:8474", "http://[::1"] {
        cases.push(case(
            &format!("--toxiproxy {bad:?}"),
            &["run", "naive", "--toxiproxy", bad],
            &["--toxiproxy", "http://127.0.0.1:8474"],
        ));
    }
    cases.push(case(
        "--toxiproxy closed port",
        &["run", "naive", "--toxiproxy", &format!("http://127.0.0.1:{closed}")],
        &["fault proxy", &format!("127.0.0.1:{closed}"), "dualwrite toxiproxy"],
    ));
    cases.push(case(
        "--toxiproxy silent server",
        &["run", "naive", "--toxiproxy", &format!("http://{silent}")],
        &["fault proxy", &silent, "no answer"],
    ));
    cases.push(case(
        "--kafka-proxy-listen banana",
        &["run", "naive", "--kafka-proxy-listen", "banana"],
        &["--kafka-proxy-listen", "banana"],
    ));
    cases.push(case(
        "--kafka-proxy-listen no port",
        &["run", "naive", "--kafka-proxy-listen", "127.0.0.1"],
        &["--kafka-proxy-listen", "127.0.0.1"],
    ));

    // ── The proxy list ───────────────────────────────────────────────────
    cases.push(case(
        "--toxiproxy-config /dev/zero",
        &["run", "naive", "--toxiproxy-config", "/dev/zero"],
        &["--toxiproxy-config", "/dev/zero", "character device"],
    ));
    cases.push(case(
        "--toxiproxy-config missing",
        &["run", "naive", "--toxiproxy-config", "/no/such/proxies.json"],
        &["--toxiproxy-config", "No such file"],
    ));
    cases.push(case(
        "--toxiproxy-config folder",
        &["run", "naive", "--toxiproxy-config", &f.path("folder")],
        &["--toxiproxy-config", "a directory"],
    ));
    cases.push(case(
        "--toxiproxy-config fifo",
        &["run", "naive", "--toxiproxy-config", &f.path("fifo.toml")],
        &["--toxiproxy-config", "named pipe"],
    ));
    cases.push(case(
        "--toxiproxy-config big",
        &["run", "naive", "--toxiproxy-config", &f.path("big.toml")],
        &["--toxiproxy-config", "larger than"],
    ));
    cases.push(case(
        "--toxiproxy-config not json",
        &["run", "naive", "--toxiproxy-config", &f.path("notjson.json")],
        &["--toxiproxy-config", "not a Toxiproxy config", "JSON array"],
    ));
    cases.push(case(
        "--toxiproxy-config object",
        &["run", "naive", "--toxiproxy-config", &f.path("object.json")],
        &["--toxiproxy-config", "JSON array"],
    ));
    cases.push(case(
        "--toxiproxy-config empty list",
        &["run", "naive", "--toxiproxy-config", &f.path("empty-list.json")],
        &["--toxiproxy-config", "no proxy named", "postgres_relay, redis, kafka"],
    ));
    cases.push(case(
        "--toxiproxy-config no kafka",
        &["run", "naive", "--toxiproxy-config", &f.path("three-links.json")],
        &["no proxy named \"kafka\""],
    ));
    cases.push(case(
        "toxiproxy --config /dev/zero",
        &["toxiproxy", "--listen", "127.0.0.1:0", "--config", "/dev/zero"],
        &["--config", "character device"],
    ));
    cases.push(case(
        "toxiproxy --config fifo",
        &["toxiproxy", "--listen", "127.0.0.1:0", "--config", &f.path("fifo.toml")],
        &["--config", "named pipe"],
    ));

    // ── Output paths ─────────────────────────────────────────────────────
    for flag in ["--json", "--history"] {
        cases.push(case(
            &format!("{flag} a directory"),
            &["run", "naive", flag, &f.path("folder")],
            &[flag, "folder", "add a file name"],
        ));
        cases.push(case(
            &format!("{flag} with a slash"),
            &["run", "naive", flag, &format!("{}/new/", f.path("folder"))],
            &[flag, "names a folder"],
        ));
        cases.push(case(
            &format!("{flag} missing folder"),
            &["run", "naive", flag, &f.path("no/such/folder/r.json")],
            &[flag, "does not exist", "mkdir -p"],
        ));
        cases.push(case(
            &format!("{flag} under a file"),
            &["run", "naive", flag, &f.path("plain-file/r.json")],
            &[flag, "is not a folder"],
        ));
        cases.push(case(
            &format!("{flag} a symlink"),
            &["run", "naive", flag, &f.path("link.json")],
            &[flag, "symbolic link", "name the file itself"],
        ));
        cases.push(case(
            &format!("{flag} a dangling symlink"),
            &["compare", flag, &f.path("dangling.json")],
            &[flag, "symbolic link"],
        ));
        cases.push(case(
            &format!("{flag} a device"),
            &["run", "naive", flag, "/dev/null"],
            &[flag, "character device"],
        ));
        cases.push(case(&format!("{flag} empty"), &["run", "naive", flag, ""], &[flag, "a value is required"]));
        cases.push(case(
            &format!("{flag} in /proc"),
            &["run", "naive", flag, "/proc/dualwrite-report.json"],
            &[flag, "cannot create a file"],
        ));
    }
    let same = f.path("same.json");
    cases.push(case(
        "--json and --history the same",
        &["run", "naive", "--json", &same, "--history", &same],
        &["--json and --history", "its own file"],
    ));
    let dotted = format!("{}/./same.json", f.dir.path().display());
    cases.push(case(
        "--json and --history the same, spelt twice",
        &["compare", "--json", &same, "--history", &dotted],
        &["--json and --history"],
    ));

    // ── The environment ──────────────────────────────────────────────────
    cases.push(with_env(
        case("DATABASE_URL banana", &["run", "naive"], &["--database-url", "banana", db_fix]),
        "DATABASE_URL",
        "banana",
    ));
    cases.push(with_env(
        case("DATABASE_URL unreachable", &["run", "naive"], &["PostgreSQL", &format!("127.0.0.1:{closed}")]),
        "DATABASE_URL",
        &format!("postgres://postgres@127.0.0.1:{closed}/postgres"),
    ));
    cases.push(with_env(
        case("REDIS_URL banana", &["run", "cache-aside"], &["--redis-url", "banana"]),
        "REDIS_URL",
        "banana",
    ));
    cases.push(with_env(
        case("REDIS_URL unreachable", &["run", "cache-aside"], &["Redis", &format!("127.0.0.1:{closed}")]),
        "REDIS_URL",
        &format!("redis://127.0.0.1:{closed}"),
    ));
    cases.push(with_env(
        case("KAFKA_BROKERS banana", &["run", "naive"], &["--brokers", "banana", "host:port"]),
        "KAFKA_BROKERS",
        "banana",
    ));
    cases.push(with_env(
        case("KAFKA_BROKERS closed", &["compare"], &["Kafka", &format!("127.0.0.1:{closed}")]),
        "KAFKA_BROKERS",
        &format!("127.0.0.1:{closed}"),
    ));
    cases.push(with_env(
        case("TOXIPROXY_URL banana", &["run", "naive"], &["--toxiproxy", "banana"]),
        "TOXIPROXY_URL",
        "banana",
    ));
    cases.push(with_env(
        case("TOXIPROXY_URL closed", &["run", "naive"], &["fault proxy", &format!("127.0.0.1:{closed}")]),
        "TOXIPROXY_URL",
        &format!("http://127.0.0.1:{closed}"),
    ));
    cases.push(with_env(
        case("TOXIPROXY_CONFIG /dev/zero", &["run", "naive"], &["--toxiproxy-config", "/dev/zero"]),
        "TOXIPROXY_CONFIG",
        "/dev/zero",
    ));
    cases.push(with_env(
        case("KAFKA_PROXY_LISTEN banana", &["run", "naive"], &["--kafka-proxy-listen", "banana"]),
        "KAFKA_PROXY_LISTEN",
        "banana",
    ));
    cases.push(with_env(
        case(
            "DATABASE_URL with a password, unreachable",
            &["run", "naive"],
            &["PostgreSQL", &format!("127.0.0.1:{closed}")],
        ),
        "DATABASE_URL",
        &format!("postgres://postgres:env-secret@127.0.0.1:{closed}/postgres"),
    ));
    cases.push(with_env(
        case("RUST_LOG nonsense does not hide the error", &["run", "naive", "--duration", "0s"], &["--duration"]),
        "RUST_LOG",
        "=;;garbage",
    ));
    cases
}

/// Runs one case and returns what went wrong with it, if anything, and how
/// long dualwrite took.
fn check(c: &Case, iso: &Isolation) -> (Option<String>, Duration) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dualwrite"));
    command
        .args(&c.args)
        .env_remove("KAFKA_BROKERS")
        .env_remove("TOXIPROXY_URL")
        .env_remove("TOXIPROXY_CONFIG")
        .env_remove("KAFKA_PROXY_LISTEN")
        .env_remove("RUST_LOG")
        .env("DATABASE_URL", iso.database_url())
        .env("REDIS_URL", format!("redis://127.0.0.1:6379/{REDIS_DB}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in &c.env {
        command.env(key, value);
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("start dualwrite");
    // Killed if it outlives the limit by far: a hang is a failure, not a
    // stuck test.
    let output = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        if started.elapsed() > LIMIT * 3 {
            let _ = child.kill();
            let _ = child.wait();
            return (Some(format!("{}: still running after {:?}, killed", c.name, LIMIT * 3)), started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut problems = Vec::new();
    if output.status.code() != Some(2) {
        problems.push(format!("exit {:?}, not 2", output.status.code()));
    }
    if took > LIMIT {
        problems.push(format!("took {took:?}"));
    }
    if stderr.contains("panicked") {
        problems.push("panicked".into());
    }
    if !stdout.is_empty() {
        problems.push(format!("printed on stdout: {stdout:?}"));
    }
    if lines.len() != 1 || !lines[0].starts_with("error: ") {
        problems.push(format!("stderr is not one `error:` line: {lines:?}"));
    } else {
        for needle in &c.needles {
            if !lines[0].contains(needle.as_str()) {
                problems.push(format!("the line does not mention {needle:?}"));
            }
        }
    }
    let left = WATCHER.get_or_init(|| Watcher::new(iso)).leftovers();
    if !left.is_empty() {
        problems.push(format!("left behind: {left:?}"));
    }
    let failure = (!problems.is_empty())
        .then(|| format!("{} ({:?}): {}\n    stderr: {}", c.name, c.args, problems.join("; "), stderr.trim()));
    (failure, took)
}

#[test]
fn every_bad_input_exits_2_quickly_with_one_line_and_leaves_nothing() {
    let iso = Arc::new(Isolation::create());
    // The check sees what a run would leave: a schema and a key put there
    // on purpose are found, by both readers, then removed.
    let probe = format!("dw_battery_probe_{}", std::process::id());
    psql(&iso.role, &format!("CREATE SCHEMA {probe}"));
    let key = Command::new("redis-cli").args(["-n", &REDIS_DB.to_string(), "SET", &probe, "x"]).output().unwrap();
    assert!(key.status.success());
    let expected = vec![format!("schema {probe}"), format!("redis key {probe}")];
    assert_eq!(WATCHER.get_or_init(|| Watcher::new(&iso)).leftovers(), expected);
    assert_eq!(iso.leftovers(), expected);
    psql(&iso.role, &format!("DROP SCHEMA {probe}"));
    Command::new("redis-cli").args(["-n", &REDIS_DB.to_string(), "DEL", &probe]).output().unwrap();

    let fixtures = Fixtures::create();
    let all = cases(&fixtures);
    assert!(all.len() >= 150, "only {} cases", all.len());
    let total = all.len();
    let queue = Arc::new(Mutex::new(all.into_iter().collect::<VecDeque<Case>>()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let times = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..12)
        .map(|_| {
            let (queue, failures, times, iso) = (queue.clone(), failures.clone(), times.clone(), iso.clone());
            std::thread::spawn(move || loop {
                let Some(c) = queue.lock().unwrap().pop_front() else { break };
                let (failure, took) = check(&c, &iso);
                times.lock().unwrap().push((took, c.name.clone()));
                if let Some(failure) = failure {
                    failures.lock().unwrap().push(failure);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    // Once more, with the command-line clients.
    assert_eq!(iso.leftovers(), Vec::<String>::new(), "left behind, by psql and redis-cli");
    let mut times = times.lock().unwrap().clone();
    times.sort();
    let spent: Duration = times.iter().map(|(t, _)| *t).sum();
    eprintln!(
        "{total} bad inputs in {:?} (dualwrite itself: {spent:?} in all; slowest: {:?})",
        started.elapsed(),
        &times[times.len().saturating_sub(5)..]
    );
    assert!(failures.is_empty(), "{} of {total} cases failed:\n{}", failures.len(), failures.join("\n"));
    drop(fixtures);
}

/// The one-line output of a refused scenario path, for the output-path
/// cases above, really leaves the folder as it was.
#[test]
fn a_refused_output_path_leaves_its_folder_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["run", "naive", "--json"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let names: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(names, vec![dir.path().join("out")]);
    assert_eq!(std::fs::read_dir(dir.path().join("out")).unwrap().count(), 0);
}
