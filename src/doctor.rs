//! `dualwrite doctor`: is every service dualwrite needs there, set up as it
//! must be? Each check says what it found and, when something is wrong, the
//! command that fixes it. It also lists what runs left behind — a
//! replication slot nobody reads holds WAL on the server forever — and,
//! with `--drop-stale`, removes it, but only what no live run owns: every
//! run holds a lease while it lives (see [`crate::lease`]).
//!
//! The checks run at once, each bounded by [`CHECK_LIMIT`], so that one
//! unreachable service costs two seconds, not the sum of every timeout.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use crate::cli::DoctorArgs;
use crate::config::Services;
use crate::error::{Error, Result, EXIT_OK, EXIT_TOOL};
use crate::leftovers::{self, Stores, Survey, REMOVE_COMMAND};

/// How long one check may take.
pub const CHECK_LIMIT: Duration = Duration::from_secs(2);

/// The result of one check.
struct Check {
    name: &'static str,
    ok: bool,
    found: String,
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, found: impl Into<String>) -> Check {
        Check { name, ok: true, found: found.into(), fix: None }
    }

    fn failed(name: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name, ok: false, found: found.into(), fix: Some(fix.into()) }
    }
}

/// Runs every check, prints them, and returns 0 if all passed, 2 if not.
pub async fn doctor(args: &DoctorArgs, out: &mut impl Write) -> Result<i32> {
    let services = Services::from_args(&args.services)?;
    // In the order they are printed. A dead two-phase run's prepared
    // transactions are among the leftovers (see `leftovers`).
    let postgres_at = crate::db::parse_url(&services.database_url)
        .map(|o| format!("PostgreSQL at {}", crate::db::address(&o)))
        .unwrap_or_else(|_| "PostgreSQL".into());
    let redis_at = format!("Redis at {}", crate::redact::redact_url(&services.redis_url));
    let kafka_at = format!("Kafka at {}", services.brokers.as_deref().unwrap_or("-"));
    let proxy_at = format!(
        "the fault proxy at {}",
        services.toxiproxy.as_deref().map(crate::redact::redact_url).unwrap_or_else(|| "-".into())
    );
    let (postgres, leftovers, redis, kafka, toxiproxy) = tokio::join!(
        bounded("postgres", &postgres_at, postgres(&services)),
        leftovers(&services, args.drop_stale),
        bounded("redis", &redis_at, redis(&services)),
        bounded("kafka", &kafka_at, kafka(&services)),
        bounded("fault proxy", &proxy_at, toxiproxy(&services)),
    );
    let checks: Vec<Check> = [postgres, leftovers, redis, kafka, toxiproxy].into_iter().flatten().collect();

    let io = |e| Error::Write { path: "standard output".into(), source: e };
    for check in &checks {
        writeln!(out, "{} {:<22} {}", if check.ok { "✓" } else { "✗" }, check.name, check.found).map_err(io)?;
        if let Some(fix) = &check.fix {
            writeln!(out, "  {:<22} fix: {fix}", "").map_err(io)?;
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        writeln!(out, "\nall good: `dualwrite compare` will run.").map_err(io)?;
        Ok(EXIT_OK)
    } else {
        writeln!(out, "\n{failed} check(s) failed.").map_err(io)?;
        Ok(EXIT_TOOL)
    }
}

/// Bounds a check by [`CHECK_LIMIT`]: past it, the check fails saying so.
async fn bounded(name: &'static str, what: &str, check: impl Future<Output = Vec<Check>>) -> Vec<Check> {
    match tokio::time::timeout(CHECK_LIMIT, check).await {
        Ok(checks) => checks,
        Err(_) => vec![Check::failed(
            name,
            format!("no answer from {what} within {CHECK_LIMIT:?}"),
            "is it running, and is this its address?",
        )],
    }
}

async fn postgres(services: &Services) -> Vec<Check> {
    let options = match crate::db::parse_url(&services.database_url) {
        Ok(o) => o,
        Err(e) => return vec![Check::failed("postgres", crate::error::chain(&e), "pass a postgres:// URL")],
    };
    let address = crate::db::address(&options);
    let pool = match crate::db::connect_direct(&options, None, 1).await {
        Ok(p) => p,
        Err(e) => {
            return vec![Check::failed(
                "postgres",
                crate::error::chain(&e),
                "`make setup` installs and starts PostgreSQL; or set --database-url / DATABASE_URL",
            )]
        }
    };
    let mut checks = Vec::new();
    let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&pool).await.unwrap_or_default();
    let major: u32 = version.split('.').next().and_then(|v| v.parse().ok()).unwrap_or(0);
    checks.push(Check {
        name: "postgres",
        ok: major >= 15,
        found: format!("PostgreSQL {version} at {address}"),
        fix: (major < 15).then(|| "dualwrite needs PostgreSQL 15 or newer".into()),
    });
    let wal: String = sqlx::query_scalar("SHOW wal_level").fetch_one(&pool).await.unwrap_or_default();
    checks.push(Check {
        name: "postgres wal_level",
        ok: wal == "logical",
        found: format!("wal_level={wal}"),
        fix: (wal != "logical").then(|| {
            "`make setup` sets it; by hand: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL".into()
        }),
    });
    let can_replicate: bool =
        sqlx::query_scalar("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&pool)
            .await
            .unwrap_or(false);
    checks.push(Check {
        name: "postgres replication",
        ok: can_replicate,
        found: if can_replicate { "the user may replicate".into() } else { "the user may not replicate".into() },
        fix: (!can_replicate).then(|| "ALTER ROLE <user> REPLICATION; (the CDC strategies need it)".into()),
    });
    // two-phase's PREPARE TRANSACTION is refused while this is 0 (the default).
    let prepared: i64 =
        sqlx::query_scalar("SELECT setting::bigint FROM pg_settings WHERE name = 'max_prepared_transactions'")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
    checks.push(Check {
        name: "postgres prepared",
        ok: prepared > 0,
        found: format!("max_prepared_transactions={prepared}"),
        fix: (prepared == 0).then(|| {
            "`make setup` sets it (two-phase needs it); by hand: ALTER SYSTEM SET max_prepared_transactions = 64; \
             then restart PostgreSQL"
                .into()
        }),
    });
    pool.close().await;
    checks
}

/// What runs left behind, per run; with `drop_stale`, removed — all but
/// what a live run owns. Bounded inside: each store's look by
/// [`leftovers::LOOK_LIMIT`], each removal by the same.
async fn leftovers(services: &Services, drop_stale: bool) -> Vec<Check> {
    let Ok(options) = crate::db::parse_url(&services.database_url) else {
        return vec![Check::ok("leftovers", "not checked (see postgres)")];
    };
    // Topics only on a broker dualwrite reaches directly; the embedded
    // broker's end with each run.
    let brokers = if services.toxiproxy.is_none() { services.brokers.as_deref() } else { None };
    let stores = Stores { db: &options, redis_url: Some(&services.redis_url), brokers };
    let survey = leftovers::survey(stores).await;
    if let Some(why) = survey.unchecked.iter().find(|u| u.starts_with("PostgreSQL")) {
        // Without the database's listing and leases, nothing can be judged.
        return vec![Check::failed("leftovers", format!("not checked: {why}"), "see the postgres check")];
    }
    let mut checks = vec![];
    if drop_stale {
        let (removed, failed) = leftovers::remove_dead(stores, &survey).await;
        checks.push(Check {
            name: "leftovers",
            ok: failed.is_empty(),
            found: match removed.is_empty() {
                true => "nothing to remove".to_string(),
                false => format!("removed {}", removed.join("; ")),
            },
            fix: (!failed.is_empty()).then(|| format!("could not remove {}", failed.join("; "))),
        });
    } else {
        checks.push(describe(&survey));
    }
    checks.push(cache_keys(&survey, drop_stale));
    let live: Vec<&str> = survey.runs.iter().filter(|r| r.live).map(|r| r.name.as_str()).collect();
    if !live.is_empty() {
        checks.push(Check::ok("live runs", format!("{} (holding a lease; never touched)", names(&live))));
    }
    if !survey.foreign.is_empty() {
        let foreign: Vec<&str> = survey.foreign.iter().map(String::as_str).collect();
        checks
            .push(Check::ok("other dw_* names", format!("{} (not a run's namespace; never touched)", names(&foreign))));
    }
    if !survey.unchecked.is_empty() {
        checks.push(Check::failed("leftovers unchecked", survey.unchecked.join("; "), "see the checks above"));
    }
    checks
}

/// The leftovers check without `--drop-stale`: what each dead run left.
fn describe(survey: &Survey) -> Check {
    let dead: Vec<_> = survey.dead().collect();
    if dead.is_empty() {
        return Check::ok("leftovers", "nothing left by earlier runs");
    }
    let shown: Vec<String> = dead
        .iter()
        .take(5)
        .map(|r| format!("{} ({}{})", r.name, r.parts(), if r.kept { ", kept with --keep" } else { "" }))
        .collect();
    let more = if dead.len() > 5 { format!(" and {} more", dead.len() - 5) } else { String::new() };
    // Kept schemas and databases are harmless; an orphaned slot is not, nor
    // a prepared transaction (both hold WAL; the latter also row locks).
    let orphaned_slot = dead.iter().any(|r| r.slot.as_ref().is_some_and(|s| !s.active));
    let prepared = dead.iter().any(|r| !r.prepared.is_empty());
    Check {
        name: "leftovers",
        ok: !orphaned_slot && !prepared,
        found: format!("{} run(s) over, not cleaned up: {}{more}", dead.len(), shown.join("; ")),
        fix: Some(format!("`{REMOVE_COMMAND}` removes them (never a live run's)")),
    }
}

/// Cache keys of runs that are over — counted whether or not their schema
/// is still there.
fn cache_keys(survey: &Survey, drop_stale: bool) -> Check {
    let name = "leftover cache keys";
    if survey.unchecked.iter().any(|u| u.starts_with("Redis")) {
        return Check::ok(name, "not checked (see redis)");
    }
    let dead: Vec<_> = survey.dead().filter(|r| !r.cache_keys.is_empty()).collect();
    let keys: usize = dead.iter().map(|r| r.cache_keys.len()).sum();
    if keys == 0 {
        return Check::ok(name, "none");
    }
    let verb = if drop_stale { "removed" } else { "left:" };
    let check = Check::ok(name, format!("{verb} {keys} keys of {} run(s) that are over", dead.len()));
    match drop_stale {
        true => check,
        false => Check { fix: Some(format!("`{REMOVE_COMMAND}` deletes them")), ..check },
    }
}

/// Up to five names, then a count.
fn names(names: &[&str]) -> String {
    let shown = names.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    match names.len() {
        n if n > 5 => format!("{shown} and {} more", n - 5),
        _ => shown,
    }
}

async fn redis(services: &Services) -> Vec<Check> {
    let cache = match crate::cache::Cache::new(&services.redis_url, None, "dw_doctor:", CHECK_LIMIT) {
        Ok(c) => c,
        Err(e) => return vec![Check::failed("redis", crate::error::chain(&e), "pass a redis:// URL")],
    };
    vec![match cache.ping().await {
        Ok(()) => Check::ok("redis", format!("answering at {}", cache.address())),
        Err(e) => Check::failed(
            "redis",
            crate::error::chain(&e),
            "`make setup` installs and starts Redis; or set --redis-url / REDIS_URL",
        ),
    }]
}

async fn kafka(services: &Services) -> Vec<Check> {
    let Some(brokers) = &services.brokers else {
        let found = if services.toxiproxy.is_some() {
            "behind the fault proxy's kafka link (checked with toxiproxy)"
        } else {
            "embedded (librdkafka's mock cluster, started in-process by each run)"
        };
        return vec![Check::ok("kafka", found)];
    };
    vec![match advertised_brokers(brokers.clone()).await {
        Ok(advertised) => Check::ok("kafka", format!("{brokers} answers; it advertises {}", advertised.join(", "))),
        Err(e) => Check::failed(
            "kafka",
            format!("cannot reach Kafka at {brokers}: {e}"),
            "start the broker, or drop --brokers / KAFKA_BROKERS to use the embedded one",
        ),
    }]
}

/// The addresses the broker advertises, asked within [`CHECK_LIMIT`] — so
/// that librdkafka's blocking call ends by itself and does not hold up the
/// process's exit.
async fn advertised_brokers(brokers: String) -> std::result::Result<Vec<String>, String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let config = crate::kafka::topic::consumer_config(&brokers, "dualwrite-doctor");
    let limit = CHECK_LIMIT - Duration::from_millis(200);
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer<crate::kafka::quiet::Quiet> =
            config.create_with_context(crate::kafka::quiet::Quiet).map_err(|e| e.to_string())?;
        let metadata = consumer.fetch_metadata(None, limit).map_err(|e| e.to_string())?;
        Ok(metadata.brokers().iter().map(|b| format!("{}:{}", b.host(), b.port())).collect())
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn toxiproxy(services: &Services) -> Vec<Check> {
    let Some(url) = &services.toxiproxy else {
        return vec![Check::ok("fault proxy", "built in (started by each run)")];
    };
    let client = match crate::proxy::ToxiproxyClient::new(url) {
        Ok(c) => c,
        Err(e) => return vec![Check { name: "fault proxy", ok: false, found: crate::error::chain(&e), fix: None }],
    };
    let url = crate::redact::redact_url(url);
    vec![match client.proxies().await {
        Ok(proxies) => {
            let missing: Vec<&str> = crate::links::ALL.iter().copied().filter(|l| !proxies.contains_key(*l)).collect();
            Check::ok(
                "fault proxy",
                if missing.is_empty() {
                    format!("Toxiproxy at {url} has every link")
                } else {
                    format!("Toxiproxy at {url}; a run will create {}", missing.join(", "))
                },
            )
        }
        Err(e) => Check::failed(
            "fault proxy",
            crate::error::chain(&e),
            "start it (`docker compose up -d` or `dualwrite toxiproxy`), or drop --toxiproxy",
        ),
    }]
}
