//! The data plane: the thread every proxied byte goes through.
//!
//! A server's listeners and connections run on a single-threaded tokio
//! runtime of their own, on one dedicated thread, whatever runtime the
//! program that starts the server uses. A proxied round trip is a
//! ping-pong — read from one socket, write to the other, wait — and on a
//! multi-threaded runtime every wait parks a worker and every wake-up may
//! rouse another one to look for work it will not find; measured, that
//! scheduling cost more than the proxying (`benches/throughput.rs`). One
//! thread waiting in `epoll` and doing the work itself costs what the
//! system calls cost. It also keeps the proxy's cost off the program's own
//! workers. One thread moves several hundred megabytes a second, far more
//! than a fault-injection proxy is asked to.

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The runtime of a server's sockets; stopped when dropped.
pub(crate) struct DataPlane {
    handle: Handle,
    /// Dropping it ends the thread, which drops the runtime and so every
    /// task still on it (closing their sockets).
    _stop: oneshot::Sender<()>,
}

impl DataPlane {
    pub fn start() -> std::io::Result<DataPlane> {
        // Sockets and timers only: the signal and process drivers would add
        // work to every wait for nothing.
        let runtime = Builder::new_current_thread().enable_io().enable_time().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("faultproxy-io".into()).spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
            });
        })?;
        Ok(DataPlane { handle, _stop: stop })
    }

    /// Runs `future` on the data plane.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }
}
