//! The `dualwrite` binary as a child process: started with arguments, its
//! stderr read line by line as it runs (so a test can act at a phase), sent
//! signals, and waited for within a bound.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `dualwrite`. Killed (SIGKILL) on drop if still running.
pub struct Dualwrite {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout: Option<std::thread::JoinHandle<String>>,
    started: Instant,
}

/// How a `dualwrite` ended.
#[derive(Debug)]
pub struct Finished {
    /// `None` if a signal killed it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// From start to exit.
    pub took: Duration,
}

impl Dualwrite {
    /// Starts `dualwrite ARGS` with `-v`, so that each phase is logged.
    pub fn start(args: &[&str]) -> Dualwrite {
        let mut verbose = vec!["-v"];
        verbose.extend_from_slice(args);
        Dualwrite::start_plain(&verbose)
    }

    /// Starts `dualwrite ARGS` as a user would, without `-v`.
    pub fn start_plain(args: &[&str]) -> Dualwrite {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the dualwrite binary starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        Dualwrite { child, stderr, stdout: Some(stdout), started: Instant::now() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until a line of stderr contains `needle`; panics after `limit`.
    pub fn wait_for(&self, needle: &str, limit: Duration) {
        let started = Instant::now();
        loop {
            if self.stderr.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return;
            }
            assert!(started.elapsed() < limit, "no {needle:?} on stderr within {limit:?}:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The run's namespace, from the `namespace dw_…` line of prepare.
    pub fn namespace(&self) -> String {
        self.wait_for("namespace dw_", Duration::from_secs(30));
        let lines = self.stderr.lock().unwrap();
        let line = lines.iter().find(|l| l.contains("namespace dw_")).unwrap();
        line.rsplit("namespace ").next().unwrap().trim().to_string()
    }

    /// Sends a signal: `INT`, `TERM`, `HUP`, `KILL`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Waits for the exit; panics after `limit`.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(started.elapsed() < limit, "dualwrite did not exit within {limit:?}:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = self.started.elapsed();
        let stdout = self.stdout.take().unwrap().join().unwrap_or_default();
        // The stderr reader ends at EOF, right after the exit.
        std::thread::sleep(Duration::from_millis(100));
        Finished { code: status.code(), stdout, stderr: self.stderr(), took }
    }
}

impl Drop for Dualwrite {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `dualwrite ARGS` to the end (doctor, a short run); panics after `limit`.
pub fn dualwrite(args: &[&str], limit: Duration) -> Finished {
    Dualwrite::start(args).wait(limit)
}
