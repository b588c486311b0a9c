//! A PostgreSQL cluster of the test's own that demands a password.
//!
//! The shared server trusts loopback connections, where a wrong or missing
//! password still gets in, so it cannot show that a client sends the right
//! one. This cluster is initialised with `scram-sha-256` for every
//! connection, `wal_level=logical` (for the CDC connector), on a free
//! loopback port, in a temporary directory; it is stopped and removed on
//! drop. As root, the server runs as the `postgres` user (initdb refuses
//! root).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct ScramPostgres {
    data: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    pub user: &'static str,
    pub password: &'static str,
}

/// The newest installed PostgreSQL's bin directory (Debian's layout), or
/// the one `pg_config --bindir` names.
fn bindir() -> PathBuf {
    let debian = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|dirs| {
        dirs.filter_map(|d| d.ok()).map(|d| d.path().join("bin")).filter(|p| p.join("initdb").exists()).max()
    });
    if let Some(dir) = debian {
        return dir;
    }
    let out = Command::new("pg_config").arg("--bindir").output().expect("PostgreSQL's server binaries (initdb)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc_getuid() == 0 }
}

extern "C" {
    #[link_name = "getuid"]
    fn libc_getuid() -> u32;
}

/// `program args…`, as the postgres user when we are root.
fn command(program: PathBuf) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl ScramPostgres {
    pub fn start() -> ScramPostgres {
        let user = "dw_scram";
        let password = "s3cret/with@odd:chars";
        let dir = tempfile::Builder::new().prefix("dw-scram-pg-").tempdir().unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, password).unwrap();
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:"]).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown the cluster's directory to postgres");
        }
        let out = command(bindir().join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", user, "--auth=scram-sha-256", "--pwfile"])
            .arg(&pwfile)
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c wal_level=logical \
             -c max_connections=100 -c fsync=off",
            dir.path().display()
        );
        // -w: returns once the server accepts connections (or fails).
        let out = command(bindir().join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.path().join("log"))
            .args(["-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "the scram cluster did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        ScramPostgres { data, dir, port, user, password }
    }

    /// A URL with the password, percent-encoded.
    pub fn url(&self) -> String {
        let encoded: String = self
            .password
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        format!("postgres://{}:{encoded}@127.0.0.1:{}/postgres", self.user, self.port)
    }

    /// The same URL without the password.
    pub fn url_without_password(&self) -> String {
        format!("postgres://{}@127.0.0.1:{}/postgres", self.user, self.port)
    }
}

impl Drop for ScramPostgres {
    fn drop(&mut self) {
        // Immediate: nothing in this cluster is worth a checkpoint. The
        // temporary directory goes with `self.dir`.
        let _ = command(bindir().join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = &self.dir;
    }
}
