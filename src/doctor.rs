//! `dualwrite doctor`: is every service dualwrite needs there, set up as it
//! must be? Each check says what it found and, when something is wrong, the
//! command that fixes it. It also finds what interrupted runs left behind: a
//! replication slot nobody reads holds WAL on the server forever.

use std::io::Write;
use std::time::Duration;

use sqlx::Row;

use crate::cli::DoctorArgs;
use crate::config::Services;
use crate::error::{Error, Result, EXIT_OK, EXIT_TOOL};

/// The result of one check.
struct Check {
    name: &'static str,
    ok: bool,
    found: String,
    fix: Option<String>,
}

/// Runs every check, prints them, and returns 0 if all passed, 2 if not.
pub async fn doctor(args: &DoctorArgs, out: &mut impl Write) -> Result<i32> {
    let services = Services::from_args(&args.services)?;
    let mut checks = Vec::new();
    checks.extend(postgres(&services, args.drop_stale).await);
    checks.push(redis(&services).await);
    checks.push(redis_leftovers(&services, args.drop_stale).await);
    checks.push(kafka(&services).await);
    checks.push(toxiproxy(&services).await);

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

async fn postgres(services: &Services, drop_stale: bool) -> Vec<Check> {
    let options = match crate::db::parse_url(&services.database_url) {
        Ok(o) => o,
        Err(e) => {
            return vec![Check {
                name: "postgres",
                ok: false,
                found: crate::error::chain(&e),
                fix: Some("pass a postgres:// URL".into()),
            }]
        }
    };
    let address = crate::db::address(&options);
    let pool = match crate::db::connect_direct(&options, None, 1).await {
        Ok(p) => p,
        Err(e) => {
            return vec![Check {
                name: "postgres",
                ok: false,
                found: crate::error::chain(&e),
                fix: Some("`make setup` installs and starts PostgreSQL; or set --database-url / DATABASE_URL".into()),
            }]
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

    // Leftovers of interrupted runs: dualwrite names everything `dw_...`.
    // A slot lives in one database, and a logical slot can only be dropped
    // from a session in that database.
    let slots: Vec<(String, bool, String)> = sqlx::query(
        "SELECT slot_name::text AS name, active, coalesce(database::text, '') AS database
         FROM pg_replication_slots WHERE slot_name LIKE 'dw\\_%' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .map(|rows| rows.iter().map(|r| (r.get("name"), r.get("active"), r.get("database"))).collect())
    .unwrap_or_default();
    let stale_slots: Vec<(String, String)> =
        slots.iter().filter(|(_, active, _)| !active).map(|(n, _, d)| (n.clone(), d.clone())).collect();
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'dw\\_%' ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    // The CDC runs' own databases.
    let databases: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE 'dw\\_%' ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    if drop_stale {
        let mut dropped = Vec::new();
        for (slot, database) in &stale_slots {
            let Ok(there) = crate::db::connect_direct(&options.clone().database(database), None, 1).await else {
                continue;
            };
            if sqlx::query("SELECT pg_drop_replication_slot($1)").bind(slot).execute(&there).await.is_ok() {
                dropped.push(format!("slot {slot}"));
            }
            let _ = sqlx::query(&format!("DROP PUBLICATION IF EXISTS {}", crate::db::quote_ident(slot)))
                .execute(&there)
                .await;
            there.close().await;
        }
        for schema in &schemas {
            let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", crate::db::quote_ident(schema));
            if sqlx::query(&drop).execute(&pool).await.is_ok() {
                dropped.push(format!("schema {schema}"));
            }
        }
        for database in &databases {
            if crate::db::drop_database(&options, database).await.is_ok() {
                dropped.push(format!("database {database}"));
            }
        }
        checks.push(Check {
            name: "leftovers",
            ok: true,
            found: if dropped.is_empty() {
                "nothing to drop".into()
            } else {
                format!("dropped {}", dropped.join(", "))
            },
            fix: None,
        });
    } else {
        let list = |names: &[String]| {
            if names.is_empty() || names.len() > 5 {
                String::new()
            } else {
                format!(" ({})", names.join(", "))
            }
        };
        let slot_names: Vec<String> = stale_slots.iter().map(|(n, _)| n.clone()).collect();
        let found = if stale_slots.is_empty() && schemas.is_empty() && databases.is_empty() {
            "no replication slots, schemas or databases left by earlier runs".to_string()
        } else {
            format!(
                "{} inactive replication slot(s) holding WAL{}; {} schema(s){} and {} database(s){} from earlier runs",
                stale_slots.len(),
                list(&slot_names),
                schemas.len(),
                list(&schemas),
                databases.len(),
                list(&databases),
            )
        };
        checks.push(Check {
            name: "leftovers",
            // Kept schemas and databases are harmless; an orphaned slot is not.
            ok: stale_slots.is_empty(),
            found,
            fix: (!stale_slots.is_empty() || !schemas.is_empty() || !databases.is_empty())
                .then(|| "`dualwrite doctor --drop-stale` drops them (runs kept with --keep included)".into()),
        });
    }
    pool.close().await;
    checks
}

async fn redis(services: &Services) -> Check {
    let cache = match crate::cache::Cache::new(&services.redis_url, None, "dw_doctor:", Duration::from_secs(2)) {
        Ok(c) => c,
        Err(e) => {
            return Check {
                name: "redis",
                ok: false,
                found: crate::error::chain(&e),
                fix: Some("pass a redis:// URL".into()),
            }
        }
    };
    match cache.ping().await {
        Ok(()) => Check { name: "redis", ok: true, found: format!("answering at {}", cache.address()), fix: None },
        Err(e) => Check {
            name: "redis",
            ok: false,
            found: crate::error::chain(&e),
            fix: Some("`make setup` installs and starts Redis; or set --redis-url / REDIS_URL".into()),
        },
    }
}

/// Cache keys of runs whose schema is gone (kept with --keep, then dropped;
/// or interrupted): every run's keys start with its schema's name.
async fn redis_leftovers(services: &Services, drop_stale: bool) -> Check {
    let name = "leftover cache keys";
    let (Ok(options), Ok(client)) =
        (crate::db::parse_url(&services.database_url), redis::Client::open(services.redis_url.as_str()))
    else {
        return Check { name, ok: true, found: "not checked (see above)".into(), fix: None };
    };
    let Ok(pool) = crate::db::connect_direct(&options, None, 1).await else {
        return Check { name, ok: true, found: "not checked (PostgreSQL unreachable)".into(), fix: None };
    };
    let schemas: std::collections::HashSet<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'dw\\_%'")
            .fetch_all(&pool)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
    pool.close().await;
    let scan = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut keys = Vec::new();
        let mut iter: redis::AsyncIter<String> = redis::AsyncCommands::scan_match(&mut conn, "dw_*").await?;
        while let Some(key) = iter.next_item().await {
            keys.push(key?);
        }
        drop(iter);
        Ok::<_, redis::RedisError>((conn, keys))
    };
    let Ok(Ok((mut conn, keys))) = tokio::time::timeout(Duration::from_secs(5), scan).await else {
        return Check { name, ok: true, found: "not checked (Redis unreachable)".into(), fix: None };
    };
    let orphans: Vec<String> =
        keys.into_iter().filter(|k| k.split(':').next().is_some_and(|prefix| !schemas.contains(prefix))).collect();
    if orphans.is_empty() {
        return Check { name, ok: true, found: "none".into(), fix: None };
    }
    if drop_stale {
        let deleted: std::result::Result<(), _> = redis::AsyncCommands::del::<_, ()>(&mut conn, &orphans).await;
        return Check {
            name,
            ok: deleted.is_ok(),
            found: format!("deleted {} keys of runs whose schema is gone", orphans.len()),
            fix: None,
        };
    }
    Check {
        name,
        ok: true,
        found: format!("{} keys of runs whose schema is gone", orphans.len()),
        fix: Some("`dualwrite doctor --drop-stale` deletes them".into()),
    }
}

async fn kafka(services: &Services) -> Check {
    let Some(brokers) = &services.brokers else {
        return Check {
            name: "kafka",
            ok: true,
            found: if services.toxiproxy.is_some() {
                "behind the fault proxy's kafka link (checked with toxiproxy)".into()
            } else {
                "embedded (librdkafka's mock cluster, started in-process by each run)".into()
            },
            fix: None,
        };
    };
    match crate::kafka::topic::advertised_brokers(brokers).await {
        Ok(advertised) => Check {
            name: "kafka",
            ok: true,
            found: format!("{brokers} answers; it advertises {}", advertised.join(", ")),
            fix: None,
        },
        Err(e) => Check {
            name: "kafka",
            ok: false,
            found: format!("cannot reach Kafka at {brokers}: {e}"),
            fix: Some("start the broker, or drop --brokers / KAFKA_BROKERS to use the embedded one".into()),
        },
    }
}

async fn toxiproxy(services: &Services) -> Check {
    let Some(url) = &services.toxiproxy else {
        return Check { name: "fault proxy", ok: true, found: "built in (started by each run)".into(), fix: None };
    };
    let client = match crate::proxy::ToxiproxyClient::new(url) {
        Ok(c) => c,
        Err(e) => return Check { name: "fault proxy", ok: false, found: crate::error::chain(&e), fix: None },
    };
    let url = crate::redact::redact_url(url);
    match client.proxies().await {
        Ok(proxies) => {
            let missing: Vec<&str> = crate::links::ALL.iter().copied().filter(|l| !proxies.contains_key(*l)).collect();
            Check {
                name: "fault proxy",
                ok: true,
                found: if missing.is_empty() {
                    format!("Toxiproxy at {url} has every link")
                } else {
                    format!("Toxiproxy at {url}; a run will create {}", missing.join(", "))
                },
                fix: None,
            }
        }
        Err(e) => Check {
            name: "fault proxy",
            ok: false,
            found: crate::error::chain(&e),
            fix: Some("start it (`docker compose up -d` or `dualwrite toxiproxy`), or drop --toxiproxy".into()),
        },
    }
}
