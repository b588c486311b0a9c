//! PostgreSQL's own client benchmark running the order's transactions —
//! the statements a naive and an outbox order send, in the same number of
//! round trips — straight to PostgreSQL and through the built-in proxy. It
//! is the ceiling the harness is measured against: "harness ÷ pgbench" says
//! how much of the database's throughput the harness reaches, "proxy ÷
//! direct" what the proxy takes.

use std::process::Command;

use faultproxy::{ProxyConfig, ProxyServer, ToxiproxyClient};

/// Clients: the app's pool size (`Tuning::default().pool_size`).
pub const CLIENTS: u32 = 5;

/// One order of the naive strategy: the stock update, the order row.
const NAIVE: &str = r"\set product random(1, 6)
\set delta random(-5, -1)
\set oid random(1, 9223372036854775806)
BEGIN;
UPDATE stock SET quantity = quantity + :delta, version = version + 1 WHERE product_id = :product RETURNING quantity, version \gset
INSERT INTO orders (order_id, product_id, delta, quantity, version) VALUES (md5(:oid::text)::uuid, :product, :delta, :quantity, :version);
COMMIT;
";

/// One order of the outbox strategy: the same, and its outbox row.
const OUTBOX: &str = r"\set product random(1, 6)
\set delta random(-5, -1)
\set oid random(1, 9223372036854775806)
BEGIN;
UPDATE stock SET quantity = quantity + :delta, version = version + 1 WHERE product_id = :product RETURNING quantity, version \gset
INSERT INTO orders (order_id, product_id, delta, quantity, version) VALUES (md5(:oid::text)::uuid, :product, :delta, :quantity, :version);
INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (md5(:oid::text)::uuid, 'stock', :product::text, 'StockChanged', jsonb_build_object('order_id', md5(:oid::text)::uuid, 'product_id', :product::int, 'delta', :delta::int, 'quantity', :quantity::bigint, 'version', :version::bigint));
COMMIT;
";

/// Transactions per second of each transaction, direct and proxied.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub naive_direct: f64,
    pub naive_proxied: f64,
    pub outbox_direct: f64,
    pub outbox_proxied: f64,
    /// The outbox transaction with the table's NOTIFY trigger dropped: what
    /// waking the relay costs the writers.
    pub outbox_no_notify_direct: f64,
}

fn run(command: &mut Command) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if !output.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn psql(database: &str, args: &[&str]) -> Result<String, String> {
    run(Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", database])
        .args(args))
}

/// The benchmark's database, with the run schema's tables; dropped on drop.
struct Database(String);

impl Database {
    fn create() -> Result<Database, String> {
        let name = format!("dualwrite_bench_{}", std::process::id());
        psql("postgres", &["-c", &format!("CREATE DATABASE {name}")])?;
        let db = Database(name);
        let root = env!("CARGO_MANIFEST_DIR");
        for migration in ["0001_stock_and_orders.sql", "0002_outbox.sql"] {
            psql(&db.0, &["-f", &format!("{root}/migrations/{migration}")])?;
        }
        psql(&db.0, &["-c", "INSERT INTO stock SELECT p, 1000, 0 FROM generate_series(1, 6) AS p"])?;
        Ok(db)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(e) = psql("postgres", &["-c", &format!("DROP DATABASE IF EXISTS {}", self.0)]) {
            eprintln!("warning: could not drop {}: {e}", self.0);
        }
    }
}

/// One pgbench run of `script` against the port: transactions per second.
fn pgbench(script: &str, port: u16, database: &str, seconds: u32) -> Result<f64, String> {
    let file = std::env::temp_dir().join(format!("dualwrite-bench-{}-{}.sql", std::process::id(), script.len()));
    std::fs::write(&file, script).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    // -M prepared: the app's statements are prepared (sqlx caches them).
    let out = run(Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-h", "127.0.0.1", "-U", "postgres", "-p", &port.to_string()])
        .args(["-c", &CLIENTS.to_string(), "-j", &CLIENTS.to_string(), "-T", &seconds.to_string()])
        .arg("-f")
        .arg(&file)
        .arg(database));
    let _ = std::fs::remove_file(&file);
    let out = out?;
    out.lines()
        .find_map(|line| line.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no \"tps = \" line in pgbench's output:\n{out}"))
}

/// Whether pgbench is installed.
pub fn installed() -> bool {
    Command::new("pgbench").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Measures every figure, `seconds` per pgbench run.
pub async fn measure(seconds: u32) -> Result<Figures, String> {
    let db = Database::create()?;
    let server = ProxyServer::start("127.0.0.1:0".parse().expect("an address")).await.map_err(|e| e.to_string())?;
    let client = ToxiproxyClient::new(&server.url()).map_err(|e| e.to_string())?;
    let info = client
        .create_proxy(&ProxyConfig::new("postgres", "127.0.0.1:0", "127.0.0.1:5432"))
        .await
        .map_err(|e| e.to_string())?;
    let proxied = info.listen_addr().map(|a| a.port()).ok_or("the proxy reported no address")?;
    let name = db.0.clone();
    // pgbench blocks; the proxy runs on this runtime's workers meanwhile.
    let bench = move |script: &'static str, port: u16| {
        let name = name.clone();
        async move {
            tokio::task::spawn_blocking(move || pgbench(script, port, &name, seconds))
                .await
                .map_err(|e| e.to_string())?
        }
    };
    let mut f = Figures {
        naive_direct: bench(NAIVE, 5432).await?,
        naive_proxied: bench(NAIVE, proxied).await?,
        outbox_proxied: bench(OUTBOX, proxied).await?,
        outbox_direct: bench(OUTBOX, 5432).await?,
        ..Figures::default()
    };
    psql(&db.0, &["-c", "DROP TRIGGER outbox_notify ON outbox"])?;
    f.outbox_no_notify_direct = bench(OUTBOX, 5432).await?;
    server.shutdown().await;
    drop(db);
    Ok(f)
}
