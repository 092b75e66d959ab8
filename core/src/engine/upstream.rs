//! Upstream connections: connect with a timeout (TCP, then TLS for an `https://` upstream), and a
//! per-worker keep-alive pool keyed by upstream address and TLS configuration (bounded idle count,
//! idle timeout). A pooled connection is checked before reuse (a non-blocking peek): closed by
//! the peer, or holding unexpected bytes, it is discarded. A failed connect asks
//! `super::dns_refresh` to look the upstream's name up again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::ClientConnection;

use super::tls_io::{self, HandshakeError, TlsStream};
use crate::errors::{Error, ErrorKind};
use crate::tls::client::{describe_handshake_error, UpstreamTls};

/// The socket to an upstream: plain, or TLS for an `https://` upstream.
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<ClientConnection>>),
}

impl AsyncReadRent for UpstreamStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.read(buf).await,
            UpstreamStream::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.readv(buf).await,
            UpstreamStream::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for UpstreamStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.write(buf).await,
            UpstreamStream::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(s) => s.writev(buf).await,
            UpstreamStream::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            UpstreamStream::Plain(s) => s.flush().await,
            UpstreamStream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            UpstreamStream::Plain(s) => s.shutdown().await,
            UpstreamStream::Tls(s) => s.shutdown().await,
        }
    }
}

impl UpstreamStream {
    /// Whether nothing is buffered or arrived on the connection; `ask_socket` false skips the
    /// kernel (a syscall) and judges only what the gateway holds in memory.
    pub(crate) fn is_quiet(&self, ask_socket: bool) -> bool {
        match self {
            UpstreamStream::Plain(s) => !ask_socket || socket_is_quiet(s.as_raw_fd()),
            UpstreamStream::Tls(s) => s.is_quiet(ask_socket),
        }
    }
}

/// Which pooled connections a request may use: same address, same TLS client (0: plain). A
/// connection verified under one API's trust store or client certificate never serves another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub addr: SocketAddr,
    pub tls: u64,
}

/// One upstream connection and its read buffer (kept with it so a pooled connection reuses it).
pub struct UpstreamConn {
    pub stream: UpstreamStream,
    pub buf: Vec<u8>,
    /// Taken from the pool (the request may be retried once if writing to it fails at once).
    pub reused: bool,
}

/// Connects to the first address of `addrs` that accepts and, for an `https://` upstream, runs
/// the TLS handshake; all within `limit`.
pub async fn connect(
    addrs: &[SocketAddr],
    limit: Duration,
    tls: Option<&UpstreamTls>,
) -> Result<UpstreamConn, Error> {
    let deadline = Instant::now() + limit;
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
    let stream = match monoio::time::timeout(limit, attempt).await {
        Ok(Ok(stream)) => stream,
        // The upstream's address may have moved: ask for an early DNS refresh (off the worker).
        Ok(Err(e)) => {
            super::dns_refresh::nudge();
            return Err(ErrorKind::UpstreamConnect(e).into());
        }
        Err(_) => {
            super::dns_refresh::nudge();
            return Err(ErrorKind::UpstreamConnectTimeout.into());
        }
    };
    // Small requests must not wait for Nagle; failure to set it is harmless.
    let _ = stream.set_nodelay(true);
    let stream = match tls {
        None => UpstreamStream::Plain(stream),
        Some(tls) => {
            let wait = deadline.saturating_duration_since(Instant::now());
            let handshake = tls_io::connect(stream, tls.config.clone(), tls.server_name.clone());
            match monoio::time::timeout(wait, handshake).await {
                Ok(Ok(stream)) => UpstreamStream::Tls(Box::new(stream)),
                Ok(Err(HandshakeError::Tls(e))) => {
                    return Err(ErrorKind::UpstreamTls(describe_handshake_error(&e)).into())
                }
                Ok(Err(HandshakeError::Closed)) => {
                    return Err(ErrorKind::UpstreamTls(
                        "the upstream closed the connection during the handshake (is it \
                         speaking TLS?)"
                            .into(),
                    )
                    .into())
                }
                Ok(Err(HandshakeError::Io(e))) => return Err(ErrorKind::UpstreamConnect(e).into()),
                Err(_) => return Err(ErrorKind::UpstreamConnectTimeout.into()),
            }
        }
    };
    Ok(UpstreamConn {
        stream,
        buf: Vec::with_capacity(super::io::READ_CHUNK),
        reused: false,
    })
}

struct Idle {
    conn: UpstreamConn,
    since: Instant,
}

/// A pooled connection idle for less than this is reused without asking the kernel whether the
/// upstream closed it or sent something meanwhile. Under load connections come back within
/// microseconds, and that one `recv(MSG_PEEK)` was most of the gateway's syscalls (1 per request
/// against 0.26 `io_uring_enter`). Upstreams close idle connections after seconds (Node and
/// uvicorn 5 s, nginx 75 s; `upstream_idle` must stay below theirs) and announce any other close
/// with `Connection: close`; what is left — a crash or a restart in the last second — fails a
/// POST sent on such a connection with 502 (never retried: it may have been acted on), and an
/// idempotent request is retried once on a new connection as before.
pub(crate) const ASK_SOCKET_AFTER: Duration = Duration::from_secs(1);

pub struct Pool {
    idle: HashMap<PoolKey, Vec<Idle>>,
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

    /// The most recently returned live connection for `key`, if any.
    pub fn take(&mut self, key: PoolKey, idle_timeout: Duration) -> Option<UpstreamConn> {
        let list = self.idle.get_mut(&key)?;
        while let Some(idle) = list.pop() {
            let age = idle.since.elapsed();
            if age < idle_timeout && idle.conn.stream.is_quiet(age >= ASK_SOCKET_AFTER) {
                let mut conn = idle.conn;
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection whose last response was read completely; `max_idle` 0 disables pooling.
    pub fn put(&mut self, key: PoolKey, mut conn: UpstreamConn, max_idle: usize) {
        if max_idle == 0 || !conn.buf.is_empty() {
            return;
        }
        conn.buf.clear();
        if conn.buf.capacity() > 256 * 1024 {
            conn.buf.shrink_to(super::io::READ_CHUNK);
        }
        let list = self.idle.entry(key).or_default();
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
/// since its last response (which would be a framing error we cannot attribute; over TLS, a
/// `close_notify` or a late record: the connection is not reused either way).
pub(crate) fn socket_is_quiet(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv into one valid byte on an fd we own; MSG_PEEK leaves the data in place and
    // MSG_DONTWAIT keeps it from blocking the worker.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}
