//! Upstream connections: connect with a timeout, and a per-worker keep-alive pool keyed by upstream
//! address (bounded idle count, idle timeout). A pooled connection is checked before reuse (a
//! non-blocking peek): closed by the peer, or holding unexpected bytes, it is discarded. A failed
//! connect asks `super::dns_refresh` to look the upstream's name up again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::errors::{Error, ErrorKind};

/// One upstream connection and its read buffer (kept with it so a pooled connection reuses it).
pub struct UpstreamConn {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    /// Taken from the pool (the request may be retried once if writing to it fails at once).
    pub reused: bool,
}

/// Connects to the first address of `addrs` that accepts, all within `limit`.
pub async fn connect(addrs: &[SocketAddr], limit: Duration) -> Result<UpstreamConn, Error> {
    let attempt = async {
        let mut last = std::io::Error::from(std::io::ErrorKind::AddrNotAvailable);
        for &addr in addrs {
            match TcpStream::connect_addr(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match monoio::time::timeout(limit, attempt).await {
        Ok(Ok(stream)) => {
            // Small requests must not wait for Nagle; failure to set it is harmless.
            let _ = stream.set_nodelay(true);
            Ok(UpstreamConn {
                stream,
                buf: Vec::with_capacity(super::io::READ_CHUNK),
                reused: false,
            })
        }
        // The upstream's address may have moved: ask for an early DNS refresh (off the worker).
        Ok(Err(e)) => {
            super::dns_refresh::nudge();
            Err(ErrorKind::UpstreamConnect(e).into())
        }
        Err(_) => {
            super::dns_refresh::nudge();
            Err(ErrorKind::UpstreamConnectTimeout.into())
        }
    }
}

struct Idle {
    conn: UpstreamConn,
    since: Instant,
}

pub struct Pool {
    idle: HashMap<SocketAddr, Vec<Idle>>,
}

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

impl Pool {
    pub fn new() -> Self {
        Pool {
            idle: HashMap::new(),
        }
    }

    /// The most recently returned live connection to `addr`, if any.
    pub fn take(&mut self, addr: SocketAddr, idle_timeout: Duration) -> Option<UpstreamConn> {
        let list = self.idle.get_mut(&addr)?;
        while let Some(idle) = list.pop() {
            if idle.since.elapsed() < idle_timeout && is_quiet(&idle.conn.stream) {
                let mut conn = idle.conn;
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection whose last response was read completely; `max_idle` 0 disables pooling.
    pub fn put(&mut self, addr: SocketAddr, mut conn: UpstreamConn, max_idle: usize) {
        if max_idle == 0 || !conn.buf.is_empty() {
            return;
        }
        conn.buf.clear();
        if conn.buf.capacity() > 256 * 1024 {
            conn.buf.shrink_to(super::io::READ_CHUNK);
        }
        let list = self.idle.entry(addr).or_default();
        if list.len() >= max_idle {
            // Oldest first out: it is the likeliest to be closed by the upstream soon.
            list.remove(0);
        }
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Drops expired idle connections (called from time to time, not on the hot path).
    pub fn sweep(&mut self, idle_timeout: Duration) {
        self.idle.retain(|_, list| {
            list.retain(|i| i.since.elapsed() < idle_timeout);
            !list.is_empty()
        });
    }
}

/// A pooled connection is usable only if the upstream has neither closed it nor sent anything
/// since its last response (which would be a framing error we cannot attribute).
fn is_quiet(stream: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv into one valid byte on an fd we own; MSG_PEEK leaves the data in place and
    // MSG_DONTWAIT keeps it from blocking the worker.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}
