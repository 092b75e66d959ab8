//! Loopback plumbing for tests: free ports, waiting for a listener with a deadline, and peers
//! that misbehave on purpose (a silent upstream that accepts and never answers).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::process::ManagedChild;

/// A loopback port that was free a moment ago (the kernel picks it; the listener is closed
/// before returning, so the caller's child can bind it).
pub fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()) {
        Ok(addr) => addr.port(),
        Err(error) => panic!("cannot bind an ephemeral loopback port: {error}"),
    }
}

/// A loopback address on which nothing listens (a port taken from the kernel and released).
pub fn closed_port_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Polls until `addr` accepts a TCP connection, failing early if `owner` exits.
pub fn wait_for_listener(
    addr: SocketAddr,
    owner: &mut ManagedChild,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = owner.exited() {
            return Err(format!(
                "{} exited with {status} before listening on {addr}\n{}",
                owner.name(),
                owner.output()
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} did not listen on {addr} within {timeout:?}\n{}",
                owner.name(),
                owner.output()
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// An upstream that accepts connections, reads whatever arrives, and never answers: the shape
/// that must turn into a 504 once the gateway's response-head timeout passes.
pub struct SilentUpstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<usize>>,
    thread: Option<JoinHandle<()>>,
}

impl SilentUpstream {
    pub fn start() -> Self {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => listener,
            Err(error) => panic!("cannot bind the silent upstream: {error}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(error) => panic!("silent upstream has no address: {error}"),
        };
        if let Err(error) = listener.set_nonblocking(true) {
            panic!("cannot make the silent upstream non-blocking: {error}");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let accepted = Arc::clone(&accepted);
            std::thread::spawn(move || {
                // Held (never written to) until the test ends, so the gateway sees a live but
                // silent peer rather than a reset.
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            held.push(stream);
                            *accepted.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Self {
            addr,
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections the gateway opened to us.
    pub fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for SilentUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
