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

/// Starts a child that listens on the port it is given (picked free), and returns it with its
/// address once it accepts connections. A port picked free can be taken by a parallel test
/// before the child binds it; the child then exits and another port is tried.
pub fn spawn_listening(
    what: &str,
    mut command_for: impl FnMut(u16) -> std::process::Command,
) -> (ManagedChild, SocketAddr) {
    let mut last_error = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut process = ManagedChild::spawn(format!("{what} :{port}"), command_for(port))
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        match wait_for_listener(addr, &mut process, Duration::from_secs(30)) {
            Ok(()) => return (process, addr),
            Err(error) => last_error = error,
        }
    }
    panic!("{what} did not start: {last_error}");
}

/// Waits until `owner` prints a line containing `needle` (its own "listening" line) and returns
/// that line. A successful connect alone does not prove the listener is `owner`'s: ports are
/// picked free and released, so under load another test's process can hold one for a moment.
pub fn wait_for_ready_line(
    owner: &mut ManagedChild,
    needle: &str,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let output = owner.output();
        if let Some(line) = output.lines().find(|line| line.contains(needle)) {
            return Ok(line.to_string());
        }
        if let Some(status) = owner.exited() {
            return Err(format!("{} exited with {status}\n{output}", owner.name()));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} never printed '{needle}' within {timeout:?}\n{output}",
                owner.name()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
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

/// One request as an upstream received it.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    /// The request line and header lines, exactly as sent (CRLF-separated, no final blank line).
    pub head: String,
    pub body: Vec<u8>,
}

impl CapturedRequest {
    pub fn request_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or_default()
    }

    /// Every value of the header `name` (case-insensitive), in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }
}

/// An upstream that records every request it receives (keep-alive connections included) and
/// answers each with the same canned response, or with what a script says for it
/// ([`CapturingUpstream::scripted`]): it shows what the gateway actually sent.
pub struct CapturingUpstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    captured: Arc<Mutex<Vec<CapturedRequest>>>,
    connections: Arc<Mutex<usize>>,
    thread: Option<JoinHandle<()>>,
}

fn read_request(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<CapturedRequest> {
    use std::io::Read;
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(chunk.get(..n)?),
        }
    };
    let head = String::from_utf8_lossy(pending.get(..head_end)?).into_owned();
    let mut rest = pending.split_off(head_end + 4);
    std::mem::swap(pending, &mut rest);
    let probe = CapturedRequest {
        head,
        body: Vec::new(),
    };
    let length: usize = probe
        .headers("content-length")
        .first()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while pending.len() < length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(chunk.get(..n)?),
        }
    }
    let remainder = pending.split_off(length);
    let body = std::mem::replace(pending, remainder);
    Some(CapturedRequest {
        head: probe.head,
        body,
    })
}

/// What a scripted upstream writes for one request: `pieces` in order with `pause` between them
/// (so the gateway sees an answer arrive in parts), then the connection stays open for the next
/// request, or is closed when `close` is set.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub pieces: Vec<Vec<u8>>,
    pub pause: Duration,
    pub close: bool,
}

impl Reply {
    /// `bytes` at once; the connection is kept.
    pub fn keep(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            pieces: vec![bytes.into()],
            ..Self::default()
        }
    }

    /// `bytes` at once, then the connection is closed.
    pub fn close(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            pieces: vec![bytes.into()],
            close: true,
            ..Self::default()
        }
    }
}

type Handler = dyn Fn(&CapturedRequest) -> Reply + Send + Sync;

impl CapturingUpstream {
    /// Starts it; `response` is written verbatim after each request.
    pub fn start(response: &'static [u8]) -> Self {
        Self::scripted(move |_| Reply::keep(response))
    }

    /// Starts it; each request is answered with what `handler` returns for it.
    pub fn scripted(handler: impl Fn(&CapturedRequest) -> Reply + Send + Sync + 'static) -> Self {
        let handler: Arc<Handler> = Arc::new(handler);
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => listener,
            Err(error) => panic!("cannot bind the capturing upstream: {error}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(error) => panic!("capturing upstream has no address: {error}"),
        };
        if let Err(error) = listener.set_nonblocking(true) {
            panic!("cannot make the capturing upstream non-blocking: {error}");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let captured = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let captured = Arc::clone(&captured);
            let accepted = Arc::clone(&connections);
            std::thread::spawn(move || {
                let mut connections = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            *accepted.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                            let captured = Arc::clone(&captured);
                            let stop = Arc::clone(&stop);
                            let handler = Arc::clone(&handler);
                            connections.push(std::thread::spawn(move || {
                                use std::io::Write;
                                let _ = stream.set_nonblocking(false);
                                let _ = stream.set_nodelay(true);
                                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                                let mut pending = Vec::new();
                                while !stop.load(Ordering::Relaxed) {
                                    match read_request(&mut stream, &mut pending) {
                                        Some(request) => {
                                            let reply = handler(&request);
                                            captured
                                                .lock()
                                                .unwrap_or_else(|p| p.into_inner())
                                                .push(request);
                                            for (i, piece) in reply.pieces.iter().enumerate() {
                                                if i > 0 && !reply.pause.is_zero() {
                                                    std::thread::sleep(reply.pause);
                                                }
                                                if stream.write_all(piece).is_err() {
                                                    return;
                                                }
                                            }
                                            if reply.close {
                                                let _ = stream.shutdown(std::net::Shutdown::Both);
                                                return;
                                            }
                                        }
                                        // A read timeout with nothing pending: keep the
                                        // keep-alive connection and look at `stop` again.
                                        None if pending.is_empty() => {
                                            let mut probe = [0u8; 1];
                                            match stream.peek(&mut probe) {
                                                Ok(0) => return,
                                                Ok(_) => {}
                                                Err(e)
                                                    if e.kind()
                                                        == std::io::ErrorKind::WouldBlock
                                                        || e.kind()
                                                            == std::io::ErrorKind::TimedOut => {}
                                                Err(_) => return,
                                            }
                                        }
                                        None => return,
                                    }
                                }
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                for connection in connections {
                    let _ = connection.join();
                }
            })
        };
        Self {
            addr,
            stop,
            captured,
            connections,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many TCP connections the gateway opened to us.
    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Waits until at least `count` requests arrived, then returns them all.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<CapturedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self
                .captured
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if seen.len() >= count || Instant::now() >= deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for CapturingUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
