//! rustls over monoio: a thin adapter of our own (docs/dependencies.md says why not
//! `monoio-rustls`) that drives rustls' buffered `ConnectionCommon` over the socket's owned-buffer
//! reads and writes, on either driver (io_uring or epoll: it only uses monoio's traits).
//!
//! A [`TlsStream`] is one TCP connection and its rustls session. It splits into a read half and a
//! write half sharing the session (`Rc<RefCell<..>>`, borrowed only between awaits, never across
//! one), because the client side needs both at once: the SSE relay keeps a cancelable read
//! pending on the client while it writes events. The read half implements
//! `CancelableAsyncReadRent`: a canceled read loses nothing (whatever ciphertext it got is already
//! inside the session, and whatever plaintext it decrypted was copied into the caller's buffer).
//!
//! - Reads: plaintext the session already holds is returned first; otherwise ciphertext is read
//!   from the socket into the half's own buffer (sized to what the caller asked for, so an idle
//!   event stream's watch holds a small buffer), fed to rustls, decrypted, copied out. A TCP close
//!   without `close_notify` is an ordinary end of stream: HTTP framing, not TLS, says whether a
//!   message was complete.
//! - Writes: plaintext is encrypted into the half's output buffer and written whole before the
//!   write returns (at most rustls' 64 KiB buffer limit per call; `write_all` loops). Anything else
//!   the session queued meanwhile (a KeyUpdate answer) leaves with it.
//! - Handshakes run on the worker like any other I/O: nothing blocks, and the caller bounds them
//!   with a timeout (a slowloris at the handshake is cut there).

use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent,
    OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::{ClientConnection, ConnectionCommon, ServerConnection, SideData};

/// Largest TLS record on the wire (16 KiB of plaintext, its header and AEAD overhead).
const MAX_RECORD: usize = 16 * 1024 + 256 + 5;
/// Smallest ciphertext read: a tiny caller buffer (an idle stream's watch) still reads a whole
/// small record at once.
const MIN_WIRE_READ: usize = 1024;
/// Ciphertext is fed to rustls only while it holds less plaintext than this: rustls refuses more
/// past its own 16 KiB limit, and the rest of the ciphertext waits in our buffer.
const PLAINTEXT_HIGH_WATER: usize = 16 * 1024;

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// rustls refused the peer (its alert, if any, was sent).
    #[error("{0}")]
    Tls(rustls::Error),
    #[error("the peer closed the connection during the handshake")]
    Closed,
}

type Session<C> = Rc<RefCell<C>>;

/// A TLS connection over a monoio TCP stream.
pub struct TlsStream<C> {
    rd: TlsReadHalf<C>,
    wr: TlsWriteHalf<C>,
    fd: RawFd,
}

/// The read half: ciphertext in, plaintext out.
pub struct TlsReadHalf<C> {
    io: OwnedReadHalf<TcpStream>,
    session: Session<C>,
    /// Ciphertext read from the socket; `wire[pos..]` is not yet given to rustls.
    wire: Vec<u8>,
    pos: usize,
    /// The socket reached its end (rustls was told).
    eof: bool,
}

/// The write half: plaintext in, ciphertext out.
pub struct TlsWriteHalf<C> {
    io: OwnedWriteHalf<TcpStream>,
    session: Session<C>,
    /// Ciphertext to write (kept between writes for its capacity).
    out: Vec<u8>,
}

impl<C, SD> TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    fn new(tcp: TcpStream, session: C) -> Self {
        let fd = tcp.as_raw_fd();
        let (rd, wr) = tcp.into_split();
        let session = Rc::new(RefCell::new(session));
        TlsStream {
            rd: TlsReadHalf {
                io: rd,
                session: session.clone(),
                wire: Vec::new(),
                pos: 0,
                eof: false,
            },
            wr: TlsWriteHalf {
                io: wr,
                session,
                out: Vec::new(),
            },
            fd,
        }
    }

    /// Runs the handshake to its end (the caller bounds it in time). A refusal by rustls sends
    /// its alert before returning, so the peer sees why (`no_application_protocol` for a client
    /// that offered only `h2`, `unknown_ca` for an untrusted client certificate).
    async fn handshake(&mut self) -> Result<(), HandshakeError> {
        loop {
            self.wr.flush_session().await?;
            if !self.rd.session.borrow().is_handshaking() {
                return Ok(());
            }
            match self.rd.feed_from_socket(None).await {
                Ok(true) => {}
                Ok(false) => return Err(HandshakeError::Closed),
                Err(Fed::Io(e)) => return Err(HandshakeError::Io(e)),
                Err(Fed::Tls(e)) => {
                    // Best effort: the alert explains the refusal; the connection ends anyway.
                    let _ = self.wr.flush_session().await;
                    return Err(HandshakeError::Tls(e));
                }
            }
        }
    }

    /// The rustls session (version, ALPN, peer certificates, SNI).
    pub fn session(&self) -> std::cell::Ref<'_, C> {
        self.rd.session.borrow()
    }

    /// Splits into halves usable at the same time (a read pending while writing).
    pub fn into_split(self) -> (TlsReadHalf<C>, TlsWriteHalf<C>) {
        (self.rd, self.wr)
    }

    /// Whether the connection holds nothing unread (checked before a pooled upstream connection
    /// is reused): no ciphertext or plaintext buffered here, and (`ask_socket`) nothing arrived on
    /// the socket.
    pub fn is_quiet(&self, ask_socket: bool) -> bool {
        self.rd.pos >= self.rd.wire.len()
            && !self.rd.eof
            && self.rd.session.try_borrow_mut().is_ok_and(|mut s| {
                matches!(s.reader().fill_buf(), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            })
            && (!ask_socket || super::upstream::socket_is_quiet(self.fd))
    }
}

/// Accepts a client's TLS connection on a listener (the caller bounds the time).
pub async fn accept(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> Result<TlsStream<ServerConnection>, HandshakeError> {
    let session = ServerConnection::new(config).map_err(HandshakeError::Tls)?;
    let mut stream = TlsStream::new(tcp, session);
    stream.handshake().await?;
    Ok(stream)
}

/// Opens TLS to an upstream over a connected socket (the caller bounds the time).
pub async fn connect(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
) -> Result<TlsStream<ClientConnection>, HandshakeError> {
    let session = ClientConnection::new(config, name).map_err(HandshakeError::Tls)?;
    let mut stream = TlsStream::new(tcp, session);
    stream.handshake().await?;
    Ok(stream)
}

/// What feeding ciphertext to rustls ran into.
enum Fed {
    Io(io::Error),
    Tls(rustls::Error),
}

impl<C, SD> TlsReadHalf<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// Gives rustls the buffered ciphertext, as much as it takes before holding
    /// [`PLAINTEXT_HIGH_WATER`] of plaintext. Returns whether any was given.
    fn feed_buffered(&mut self) -> Result<bool, Fed> {
        let mut session = self.session.borrow_mut();
        let mut fed = false;
        while self.pos < self.wire.len() {
            let state = session.process_new_packets().map_err(Fed::Tls)?;
            if state.plaintext_bytes_to_read() >= PLAINTEXT_HIGH_WATER {
                break;
            }
            let mut input = self.wire.get(self.pos..).unwrap_or_default();
            let n = session.read_tls(&mut input).map_err(Fed::Io)?;
            if n == 0 {
                // close_notify already received: nothing more is read.
                self.pos = self.wire.len();
                break;
            }
            self.pos += n;
            fed = true;
            session.process_new_packets().map_err(Fed::Tls)?;
        }
        Ok(fed)
    }

    /// Reads ciphertext from the socket (canceled through `cancel`) and gives it to rustls.
    /// `Ok(false)`: the socket reached its end.
    async fn feed_from_socket(&mut self, cancel: Option<&CancelHandle>) -> Result<bool, Fed> {
        self.feed_from_socket_sized(cancel, MAX_RECORD).await
    }

    async fn feed_from_socket_sized(
        &mut self,
        cancel: Option<&CancelHandle>,
        want: usize,
    ) -> Result<bool, Fed> {
        if self.feed_buffered()? {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        let mut wire = std::mem::take(&mut self.wire);
        wire.clear();
        self.pos = 0;
        let size = want.clamp(MIN_WIRE_READ, MAX_RECORD);
        if wire.capacity() < size || wire.capacity() > 2 * MAX_RECORD {
            wire = Vec::with_capacity(size);
        }
        let (res, wire) = match cancel {
            Some(c) => self.io.cancelable_read(wire, c.clone()).await,
            None => self.io.read(wire).await,
        };
        self.wire = wire;
        match res {
            Ok(0) => {
                self.eof = true;
                // Tells rustls: its reader then reports a clean or an unclean end.
                let mut session = self.session.borrow_mut();
                let _ = session.read_tls(&mut io::empty());
                session.process_new_packets().map_err(Fed::Tls)?;
                Ok(false)
            }
            Ok(_) => {
                self.feed_buffered()?;
                Ok(true)
            }
            Err(e) => Err(Fed::Io(e)),
        }
    }

    /// Copies the plaintext the session holds into `dst` (at most `cap` bytes). `Some(n)`: done
    /// (0 is the end of the stream); `None`: the session needs more ciphertext.
    fn take_plaintext(&mut self, dst: *mut u8, cap: usize) -> io::Result<Option<usize>> {
        let mut session = self.session.borrow_mut();
        let mut reader = session.reader();
        let mut copied = 0;
        while copied < cap {
            match reader.fill_buf() {
                Ok([]) => return Ok(Some(copied)),
                Ok(chunk) => {
                    let n = chunk.len().min(cap - copied);
                    // SAFETY: `dst` is valid for `cap` bytes (the caller's buffer, which it owns
                    // for the whole call) and does not overlap rustls' buffer.
                    unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), dst.add(copied), n) };
                    reader.consume(n);
                    copied += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((copied > 0).then_some(copied));
                }
                // TCP closed without close_notify: an ordinary end (see the module header).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Some(copied)),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(copied))
    }

    async fn read_inner<T: IoBufMut>(
        &mut self,
        mut buf: T,
        cancel: Option<&CancelHandle>,
    ) -> BufResult<usize, T> {
        let dst = buf.write_ptr();
        let cap = buf.bytes_total();
        if cap == 0 {
            return (Ok(0), buf);
        }
        loop {
            match self.take_plaintext(dst, cap) {
                Ok(Some(n)) => {
                    // SAFETY: `n` bytes were just written at the start of the buffer.
                    unsafe { buf.set_init(n) };
                    return (Ok(n), buf);
                }
                Ok(None) => {}
                Err(e) => return (Err(e), buf),
            }
            match self.feed_from_socket_sized(cancel, cap + 512).await {
                Ok(_) => {}
                Err(Fed::Io(e)) => return (Err(e), buf),
                Err(Fed::Tls(e)) => {
                    return (Err(io::Error::new(io::ErrorKind::InvalidData, e)), buf)
                }
            }
        }
    }
}

impl<C, SD> AsyncReadRent for TlsReadHalf<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.read_inner(buf, None).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // The engine never reads vectored; the first buffer is filled, which is what a short
        // readv may do anyway.
        // SAFETY: the iovecs belong to `buf`, which we hold until the read completes.
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read_inner(raw, None).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: `n` bytes were written into the first iovec.
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

impl<C, SD> CancelableAsyncReadRent for TlsReadHalf<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        self.read_inner(buf, Some(&c)).await
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        mut buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        // SAFETY: as in `readv`.
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read_inner(raw, Some(&c)).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: as in `readv`.
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

impl<C, SD> TlsWriteHalf<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// Writes every byte of ciphertext the session holds.
    async fn flush_session(&mut self) -> io::Result<()> {
        loop {
            {
                let mut session = self.session.borrow_mut();
                if !session.wants_write() {
                    return Ok(());
                }
                self.out.clear();
                while session.wants_write() {
                    session.write_tls(&mut self.out)?;
                }
            }
            let out = std::mem::take(&mut self.out);
            let (res, out) = self.io.write_all(out).await;
            self.out = out;
            res?;
        }
    }

    /// Encrypts as much of `src` as the session takes and writes it out.
    async fn write_slice(&mut self, src: &[&[u8]]) -> io::Result<usize> {
        // What an earlier write or the read side (a KeyUpdate answer) queued goes first.
        self.flush_session().await?;
        let mut taken = 0;
        {
            let mut session = self.session.borrow_mut();
            let mut writer = session.writer();
            for part in src {
                if part.is_empty() {
                    continue;
                }
                let n = writer.write(part)?;
                taken += n;
                if n < part.len() {
                    break;
                }
            }
        }
        self.flush_session().await?;
        Ok(taken)
    }
}

impl<C, SD> AsyncWriteRent for TlsWriteHalf<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `buf` is initialised up to `bytes_init` and we hold it for the whole call.
        let src = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let res = self.write_slice(&[src]).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let ptr = buf.read_iovec_ptr();
        let len = buf.read_iovec_len();
        let parts: Vec<&[u8]> = (0..len)
            .map(|i| {
                // SAFETY: `buf` holds `len` valid iovecs, each pointing at initialised bytes,
                // and we hold `buf` for the whole call.
                unsafe {
                    let iov = &*ptr.add(i);
                    std::slice::from_raw_parts(iov.iov_base as *const u8, iov.iov_len)
                }
            })
            .collect();
        let res = self.write_slice(&parts).await;
        drop(parts);
        (res, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_session().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.session.borrow_mut().send_close_notify();
        self.flush_session().await?;
        self.io.shutdown().await
    }
}

impl<C, SD> AsyncReadRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        // Whatever the read side queued for the peer (a KeyUpdate answer) is sent before waiting:
        // an unsplit stream has no concurrent writer to do it.
        if let Err(e) = self.wr.flush_session().await {
            return (Err(e), buf);
        }
        self.rd.read(buf).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.rd.readv(buf).await
    }
}

impl<C, SD> AsyncWriteRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.wr.write(buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.wr.writev(buf).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.wr.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.wr.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use monoio::io::Canceller;
    use monoio::net::TcpListener;

    use super::*;
    use crate::tls::client::{self, UpstreamTlsSettings};
    use crate::tls::server::{self, ClientAuth, ServerTlsSettings};
    use crate::tls::test_certs::TestPki;
    use crate::tls::MinVersion;

    /// Runs `f` on the epoll driver and, where the kernel allows it, on io_uring.
    fn on_both_drivers<F, Fut>(f: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap_or_else(|e| panic!("epoll runtime: {e}"))
            .block_on(f());
        if monoio::utils::detect_uring() {
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .enable_timer()
                .build()
                .unwrap_or_else(|e| panic!("io_uring runtime: {e}"))
                .block_on(f());
        }
    }

    struct Setup {
        _pki: TestPki,
        server: Arc<rustls::ServerConfig>,
        client: crate::tls::client::UpstreamTls,
    }

    fn setup(client_ca: bool) -> Setup {
        let pki = TestPki::new("tls-io");
        let cert = pki.server("server", &["localhost"]);
        let settings = ServerTlsSettings {
            certs: vec![cert],
            client_ca: client_ca.then(|| (pki.ca(), ClientAuth::Required)),
            min_version: MinVersion::Tls12,
            handshake_timeout: Duration::from_secs(5),
            watch: None,
        };
        let server = server::build(&settings)
            .unwrap_or_else(|e| panic!("{e}"))
            .config;
        let client = client::build(
            &UpstreamTlsSettings {
                roots: client::Roots::None,
                ca: Some(pki.ca()),
                ..UpstreamTlsSettings::default()
            },
            "localhost",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Setup {
            _pki: pki,
            server,
            client,
        }
    }

    async fn pair(s: &Setup) -> (TlsStream<ServerConnection>, TlsStream<ClientConnection>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let config = s.server.clone();
        let server = monoio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
            accept(tcp, config).await
        });
        let tcp = TcpStream::connect_addr(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let client = connect(tcp, s.client.config.clone(), s.client.server_name.clone())
            .await
            .unwrap_or_else(|e| panic!("client handshake: {e}"));
        let server = server
            .await
            .unwrap_or_else(|e| panic!("server handshake: {e}"));
        (server, client)
    }

    /// Large bodies cross in many records both ways, through split halves and whole streams.
    #[test]
    fn large_transfers_both_ways() {
        let s = setup(false);
        on_both_drivers(|| async {
            let (server, mut client) = pair(&s).await;
            assert_eq!(server.session().alpn_protocol(), Some(&b"http/1.1"[..]));
            let (mut rd, mut wr) = server.into_split();
            let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            let echo = monoio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < 300_000 {
                    let (res, buf) = rd.read(Vec::with_capacity(7000)).await;
                    let n = res.unwrap_or_else(|e| panic!("{e}"));
                    assert!(n > 0, "early end after {}", got.len());
                    got.extend_from_slice(&buf);
                }
                let (res, _) = wr.write_all(got).await;
                res.unwrap_or_else(|e| panic!("{e}"));
            });
            let (res, _) = client.write_all(payload.clone()).await;
            res.unwrap_or_else(|e| panic!("{e}"));
            let mut back = Vec::new();
            while back.len() < payload.len() {
                let (res, buf) = client.read(Vec::with_capacity(16 * 1024)).await;
                assert!(res.unwrap_or_else(|e| panic!("{e}")) > 0);
                back.extend_from_slice(&buf);
            }
            assert!(back == payload, "echo differs");
            echo.await;
        });
    }

    /// The SSE relay's client watch: a cancelable read returns what arrived, a canceled one
    /// returns an error and loses nothing, and a clean or unclean close is an end of stream.
    #[test]
    fn cancelable_reads_lose_nothing() {
        let s = setup(false);
        on_both_drivers(|| async {
            let (server, mut client) = pair(&s).await;
            let (mut rd, _wr) = server.into_split();
            let canceller = Canceller::new();
            let (res, _) = client.write_all(b"abc".to_vec()).await;
            res.unwrap_or_else(|e| panic!("{e}"));
            let (res, buf) = rd
                .cancelable_read(Vec::with_capacity(128), canceller.handle())
                .await;
            assert_eq!((res.ok(), buf.as_slice()), (Some(3), &b"abc"[..]));

            let canceller = Canceller::new();
            let handle = canceller.handle();
            let pending = monoio::spawn(async move {
                let (res, buf) = rd.cancelable_read(Vec::with_capacity(128), handle).await;
                (res.map_err(|e| e.kind()), buf, rd)
            });
            monoio::time::sleep(Duration::from_millis(20)).await;
            let _ = canceller.cancel();
            let (res, buf, mut rd) = pending.await;
            assert!(res.is_err() && buf.is_empty(), "{res:?} {buf:?}");
            let (res, _) = client.write_all(b"def".to_vec()).await;
            res.unwrap_or_else(|e| panic!("{e}"));
            let (res, buf) = rd.read(Vec::with_capacity(128)).await;
            assert_eq!((res.ok(), buf.as_slice()), (Some(3), &b"def"[..]));
            drop(client);
            let (res, _) = rd.read(Vec::with_capacity(128)).await;
            assert_eq!(res.ok(), Some(0), "an unclean close is an end of stream");
        });
    }

    /// Refusals are told to the peer: an h2-only client gets `no_application_protocol`, a client
    /// without a certificate is refused where one is required.
    #[test]
    fn refusals_send_their_alert() {
        let s = setup(true);
        on_both_drivers(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
            let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
            let config = s.server.clone();
            let server = monoio::spawn(async move {
                let mut outcomes = Vec::new();
                for _ in 0..2 {
                    let (tcp, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
                    outcomes.push(
                        accept(tcp, config.clone())
                            .await
                            .err()
                            .map(|e| e.to_string()),
                    );
                }
                outcomes
            });
            let mut h2_only = (*s.client.config).clone();
            h2_only.alpn_protocols = vec![b"h2".to_vec()];
            let tcp = TcpStream::connect_addr(addr)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let refused = connect(tcp, Arc::new(h2_only), s.client.server_name.clone()).await;
            assert!(
                matches!(
                    &refused,
                    Err(HandshakeError::Tls(rustls::Error::AlertReceived(
                        rustls::AlertDescription::NoApplicationProtocol
                    )))
                ),
                "{:?}",
                refused.err()
            );
            // TLS 1.3: the client finishes first; the refusal arrives with the first read.
            let tcp = TcpStream::connect_addr(addr)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut anonymous = connect(tcp, s.client.config.clone(), s.client.server_name.clone())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let (res, _) = anonymous.read(Vec::with_capacity(64)).await;
            let e = res.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("CertificateRequired"), "{e}");
            let outcomes = server.await;
            assert!(
                outcomes.iter().all(Option::is_some),
                "a refused handshake succeeded: {outcomes:?}"
            );
        });
    }
}
