//! Stores of a test's own: a PostgreSQL cluster and a Redis server started
//! for one test on free loopback ports. The test may kill them, restart
//! them and let `dualwrite doctor --drop-stale` loose on them: nothing that
//! other tests (or other people) share is touched.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// The directory of PostgreSQL's server programs (initdb, pg_ctl).
fn postgres_bin(program: &str) -> PathBuf {
    let found = Command::new("pg_config").arg("--bindir").output().ok().filter(|o| o.status.success());
    if let Some(output) = found {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join(program).exists() {
            return dir.join(program);
        }
    }
    PathBuf::from(program)
}

/// PostgreSQL refuses to run as root; as root, run its programs as `postgres`.
fn as_postgres(program: &str) -> Command {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(postgres_bin(program));
        command
    } else {
        Command::new(postgres_bin(program))
    }
}

/// A PostgreSQL cluster in a temporary directory, `wal_level=logical`,
/// trust authentication, listening on 127.0.0.1 only. Stopped on drop.
pub struct ThrowawayPostgres {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl ThrowawayPostgres {
    pub fn start() -> ThrowawayPostgres {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // The server's user must own its directory.
        let _ = Command::new("chown").arg("postgres").arg(dir.path()).status();
        let data = dir.path().join("data");
        let status = as_postgres("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb (postgresql) is installed");
        assert!(status.success(), "initdb failed in {}", dir.path().display());
        let postgres = ThrowawayPostgres { dir, port: free_port() };
        postgres.start_again();
        postgres
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (again, after [`ThrowawayPostgres::kill`]), on the same port.
    pub fn start_again(&self) {
        let options = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c wal_level=logical \
             -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let status = as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("pg_ctl");
        assert!(status.success(), "pg_ctl start failed: {}", self.log());
    }

    /// Stops the server the hard way (`pg_ctl stop -m immediate`: every
    /// process quits at once, as in a crash or an OOM kill).
    pub fn kill(&self) {
        let _ = as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs one statement with psql; its output, one row a line.
    pub fn psql(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-tAqX"])
            .args(["-c", sql])
            .output()
            .expect("psql (postgresql-client) is installed");
        assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    /// Every schema, database, replication slot and publication named `dw_*`.
    pub fn dualwrite_objects(&self) -> Vec<String> {
        let sql = "SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname LIKE 'dw\\_%' \
                   UNION ALL SELECT 'database ' || datname FROM pg_database WHERE datname LIKE 'dw\\_%' \
                   UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'dw\\_%' \
                   UNION ALL SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE 'dw\\_%' \
                   ORDER BY 1";
        self.psql(sql).lines().map(str::to_string).collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis server on a free port, without persistence. Killed on drop.
pub struct ThrowawayRedis {
    child: Option<Child>,
    pub port: u16,
}

impl ThrowawayRedis {
    pub fn start() -> ThrowawayRedis {
        let mut redis = ThrowawayRedis { child: None, port: free_port() };
        redis.start_again();
        redis
    }

    /// Starts the server (again, after [`ThrowawayRedis::kill`]), on the same port.
    pub fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    /// SIGKILL: Redis is gone at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Every key named `dw_*`.
    pub fn dualwrite_keys(&self) -> Vec<String> {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--scan", "--pattern", "dw_*"])
            .output()
            .expect("redis-cli is installed");
        let mut keys: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect();
        keys.sort();
        keys
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_port(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
