//! The client side of one exchange as the engine's I/O sees it: the connection's read and write
//! halves, its read buffer (which may already hold the next pipelined request) and its output
//! buffer, and what the request said about keeping the connection. Also how an accepted socket
//! becomes those halves ([`ClientStream`]): split as is, or after a TLS handshake.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use mcpgate_policies::tls::TlsFacts;
use monoio::io::{OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use rustls::ServerConnection;

use super::deadlines::Deadline;
use super::tls_io::{self, TlsReadHalf, TlsWriteHalf};
use crate::tls::identity;
use crate::tls::server::TlsAcceptor;

/// Borrowed from the connection loop (`super::conn`) for one request.
pub struct Client<'a, R, W> {
    pub rd: &'a mut R,
    pub wr: &'a mut W,
    /// Client read buffer; starts with this request's head until the request is forwarded.
    pub buf: &'a mut Vec<u8>,
    pub out: &'a mut Vec<u8>,
    /// HTTP/1.1 without `Connection: close`.
    pub keep_alive: bool,
    /// HTTP/1.0: one response per connection, unknown lengths delimited by closing.
    pub http10: bool,
    /// The connection's slot of the worker's deadline table: bounds every wait of the exchange
    /// (one at a time) without a monoio timer per read or write.
    pub deadline: &'a Deadline,
}

/// What the connection does after this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    KeepAlive,
    Close,
}

/// What a listener accepted, opened for the connection loop: a plain socket split into its
/// halves, or a TLS handshake completed first (within the listener's `handshake_timeout`).
pub(crate) trait ClientStream {
    type Read: ClientRead;
    type Write: monoio::io::AsyncWriteRent;

    /// `None`: the connection ends here (a failed or timed-out handshake; already logged).
    async fn open(self, peer: SocketAddr) -> Option<Opened<Self::Read, Self::Write>>;
}

/// A client connection's read half as an idle event stream watches it.
pub(crate) trait ClientRead: monoio::io::CancelableAsyncReadRent {
    /// Completes once the connection has something to read (bytes or a close), holding no
    /// buffer while it waits: an idle stream's watch on io_uring is then a poll, not a read that
    /// owns a buffer and an operation's state for the stream's whole life. A connection that
    /// cannot tell from its socket alone completes at once (TLS may hold decrypted bytes).
    async fn wait_readable(&self) -> std::io::Result<()>;
}

impl ClientRead for OwnedReadHalf<TcpStream> {
    async fn wait_readable(&self) -> std::io::Result<()> {
        // SAFETY: the halves share the stream through this cell; `readable` takes it shared and
        // only waits for readiness (no buffer, no state of the stream changed), as the write
        // half's operations take it while the read half's are pending in monoio's own split.
        let stream = unsafe { &*self.0.get() };
        // Not `relaxed`: the epoll driver's readiness may be stale, and a false "ready" would
        // park the read that follows with a buffer for the whole silence.
        stream.readable(false).await
    }
}

impl ClientRead for TlsReadHalf<ServerConnection> {
    async fn wait_readable(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An opened client connection's halves and, over TLS, what the handshake established.
pub(crate) struct Opened<R, W> {
    pub rd: R,
    pub wr: W,
    pub tls: Option<Rc<TlsFacts>>,
}

impl ClientStream for TcpStream {
    type Read = OwnedReadHalf<TcpStream>;
    type Write = OwnedWriteHalf<TcpStream>;

    async fn open(self, _peer: SocketAddr) -> Option<Opened<Self::Read, Self::Write>> {
        // Responses are written whole; Nagle would only delay them.
        let _ = self.set_nodelay(true);
        let (rd, wr) = self.into_split();
        Some(Opened { rd, wr, tls: None })
    }
}

/// A connection accepted on a TLS listener, its handshake still to run.
pub(crate) struct TlsClient {
    pub tcp: TcpStream,
    pub acceptor: Arc<TlsAcceptor>,
}

impl ClientStream for TlsClient {
    type Read = TlsReadHalf<ServerConnection>;
    type Write = TlsWriteHalf<ServerConnection>;

    async fn open(self, peer: SocketAddr) -> Option<Opened<Self::Read, Self::Write>> {
        let _ = self.tcp.set_nodelay(true);
        // The configuration in force now; a reload meanwhile serves the next connection.
        let current = self.acceptor.current();
        let handshake = tls_io::accept(self.tcp, current.config);
        let stream = match monoio::time::timeout(current.handshake_timeout, handshake).await {
            Ok(Ok(stream)) => stream,
            // Debug, not warn: scanners and clients that give up make these all day long.
            Ok(Err(e)) => {
                crate::debug!(
                    "tls {}: handshake with {peer} failed: {e}",
                    self.acceptor.label
                );
                return None;
            }
            Err(_) => {
                crate::debug!(
                    "tls {}: handshake with {peer} not finished within {:?}; closed",
                    self.acceptor.label,
                    current.handshake_timeout
                );
                return None;
            }
        };
        let facts = identity::server_facts(&stream.session());
        let (rd, wr) = stream.into_split();
        Some(Opened {
            rd,
            wr,
            tls: Some(Rc::new(facts)),
        })
    }
}
