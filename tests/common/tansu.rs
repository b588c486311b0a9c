//! A tansu broker process of a test's own, or of the benchmark's: where
//! tansu is installed, and one started on a given port. `benches/perf`
//! includes this file by its path, so it uses nothing else of the tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The storage engine every test broker uses. `memory://` (the dynostore
/// feature): see the README's "dualwrite found it" for why this one, and
/// what is wrong with each of tansu's engines.
pub const TANSU_STORAGE: &str = "memory://tansu/";

/// Where tansu is installed: `TANSU_BIN`, else on PATH, else cargo's bin
/// directory; `None` when it is in none of them.
pub fn installed() -> Option<PathBuf> {
    let from_env = std::env::var_os("TANSU_BIN").map(PathBuf::from);
    let on_path: Vec<PathBuf> =
        std::env::var("PATH").unwrap_or_default().split(':').map(|dir| PathBuf::from(dir).join("tansu")).collect();
    let cargo = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/tansu"));
    from_env.into_iter().chain(on_path).chain(cargo).find(|candidate| candidate.is_file())
}

/// A tansu broker process, killed on drop.
pub struct Tansu {
    child: Child,
    pub listen: SocketAddr,
}

/// Why a tansu could not be started.
#[derive(Debug)]
pub enum NotStarted {
    /// It exited instead of listening: the port, free a moment ago, was
    /// taken meanwhile (by a parallel test, whose broker then answers the
    /// connect check, which is why the process itself is checked too).
    Exited,
    /// It could not be run, or did not listen in time.
    Failed(String),
}

impl Tansu {
    /// Starts `bin` on `port`, advertising `advertised` (the address
    /// clients must come back through: a proxy's kafka link, or itself).
    pub fn start_with(bin: &PathBuf, port: u16, advertised: SocketAddr) -> Result<Tansu, NotStarted> {
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("a loopback address");
        let child = Command::new(bin)
            .args(["broker", "--listener-url", &format!("tcp://{listen}")])
            .args(["--advertised-listener-url", &format!("tcp://{advertised}")])
            .args(["--storage-engine", TANSU_STORAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| NotStarted::Failed(format!("cannot start {}: {e}", bin.display())))?;
        let mut tansu = Tansu { child, listen };
        let started = Instant::now();
        while std::net::TcpStream::connect(listen).is_err() {
            if tansu.exited() {
                return Err(NotStarted::Exited);
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err(NotStarted::Failed(format!("tansu did not listen on {listen} within 20 s")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        if tansu.exited() {
            return Err(NotStarted::Exited);
        }
        Ok(tansu)
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
