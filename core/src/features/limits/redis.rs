//! The worker's Redis client for cluster-scope limits: one TCP connection per worker, spoken in
//! RESP over monoio's own `TcpStream` (`mcpgate_policies::limits::resp`), so waiting for Redis
//! never blocks the worker thread. Why not a crate: the Rust Redis clients run on tokio or on
//! blocking sockets; neither fits a monoio worker (docs/dependencies.md).
//!
//! Pipelined: concurrent requests of the worker append their commands to one buffer that a
//! writer task flushes in one write while the previous one is in flight; a reader task hands the
//! replies, in order, to the requests waiting for them. Each call is bounded by the configured
//! timeout (connect included); past it the caller applies its rule's fail mode. A connection that
//! fails (reset, EOF, a reply that does not parse, a timeout) is dropped with everything waiting
//! on it, and a background task reconnects by itself, once per backoff interval (doubling from
//! 100 ms to 2 s while Redis stays unreachable); meanwhile calls fail at once (the rules' fail
//! modes apply). A log line marks each loss and each recovery.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mcpgate_policies::limits::cluster::{self, Charge, ChargeOutcome};
use mcpgate_policies::limits::resp::{self, RespError, Value};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;

/// Commands sent to Redis by this process (each is one round trip; pipelined ones share a write).
pub static CALLS: AtomicU64 = AtomicU64::new(0);
/// Calls that got no usable answer (unreachable, timeout, error reply).
pub static FAILURES: AtomicU64 = AtomicU64::new(0);
/// Connections opened to Redis.
pub static CONNECTS: AtomicU64 = AtomicU64::new(0);

/// Replies awaited at most on one connection; past it Redis is not keeping up: drop it.
const MAX_IN_FLIGHT: usize = 16 * 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// One connection attempt at most (on loopback a dead Redis refuses at once).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("Redis at {0} is unreachable (waiting to reconnect)")]
    Down(SocketAddr),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the connection to Redis was lost")]
    Lost,
    #[error("Redis answered an error: {0}")]
    Reply(#[from] RespError),
}

/// One awaited reply.
#[derive(Default)]
struct Slot {
    reply: RefCell<Option<Result<Value, ()>>>,
    waker: RefCell<Option<Waker>>,
}

impl Slot {
    fn fill(&self, reply: Result<Value, ()>) {
        *self.reply.borrow_mut() = Some(reply);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

struct SlotWait(Rc<Slot>);

impl Future for SlotWait {
    type Output = Result<Value, ()>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(reply) = self.0.reply.borrow_mut().take() {
            return Poll::Ready(reply);
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Woken when a connection attempt ends (callers that arrived during it wait for it).
#[derive(Default)]
struct Gate {
    open: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Gate {
    fn release(&self) {
        self.open.set(true);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

struct GateWait(Rc<Gate>);

impl Future for GateWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.open.get() {
            return Poll::Ready(());
        }
        self.0.wakers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

enum State {
    Down { retry_at: Instant },
    Connecting(Rc<Gate>),
    Up(Conn),
}

/// One live connection. Its queue, buffer and writer flag are its own: a task of an older
/// connection that wakes late can never take a newer one's commands or replies.
struct Conn {
    generation: u64,
    fd: i32,
    write: Rc<RefCell<Option<OwnedWriteHalf<TcpStream>>>>,
    /// Replies awaited, in the order their commands were queued.
    waiting: VecDeque<Rc<Slot>>,
    /// Commands queued while the writer's previous write is in flight.
    out: Vec<u8>,
    writing: bool,
}

struct Inner {
    state: State,
    generation: u64,
    /// The wait before the next connection attempt after a failed one.
    backoff: Duration,
    /// Whether the last loss was logged (one line per outage, one per recovery).
    logged_down: bool,
    /// A background task is trying to reconnect (one at most).
    reconnecting: bool,
}

/// A worker's client for one Redis address.
pub struct RedisClient {
    addr: SocketAddr,
    inner: RefCell<Inner>,
}

impl RedisClient {
    pub fn new(addr: SocketAddr) -> Rc<RedisClient> {
        Rc::new(RedisClient {
            addr,
            inner: RefCell::new(Inner {
                state: State::Down {
                    retry_at: Instant::now(),
                },
                generation: 0,
                backoff: MIN_BACKOFF,
                logged_down: false,
                reconnecting: false,
            }),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Decides `charges` in one round trip (`EVALSHA`, then `EVAL` once if Redis lost the
    /// script), within `timeout`.
    pub async fn decide(
        self: &Rc<Self>,
        charges: &[Charge],
        timeout: Duration,
    ) -> Result<Vec<ChargeOutcome>, RedisError> {
        let deadline = Instant::now() + timeout;
        let mut command = Vec::with_capacity(256);
        cluster::encode_call(&mut command, charges, false);
        let mut reply = self.call(command, deadline, timeout).await?;
        if cluster::is_noscript(&reply) {
            let mut full = Vec::with_capacity(cluster::SCRIPT.len() + 256);
            cluster::encode_call(&mut full, charges, true);
            reply = self.call(full, deadline, timeout).await?;
        }
        let outcome = cluster::parse_reply(&reply, charges.len());
        if outcome.is_err() {
            FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcome?)
    }

    /// Sends one command and waits for its reply until `deadline`.
    async fn call(
        self: &Rc<Self>,
        command: Vec<u8>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Value, RedisError> {
        let result = monoio::time::timeout_at(deadline.into(), self.call_inner(command)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => {
                // Redis is stalled or the network is: drop the connection (and what waits on
                // it) rather than let replies pile up; the next call reconnects.
                self.lose(None, "no answer in time");
                Err(RedisError::Timeout(timeout))
            }
        };
        if result.is_err() {
            FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn call_inner(self: &Rc<Self>, command: Vec<u8>) -> Result<Value, RedisError> {
        self.connected().await?;
        let slot = Rc::new(Slot::default());
        {
            let mut inner = self.inner.borrow_mut();
            let State::Up(conn) = &mut inner.state else {
                return Err(RedisError::Lost);
            };
            if conn.waiting.len() >= MAX_IN_FLIGHT {
                drop(inner);
                self.lose(None, "too many replies outstanding");
                return Err(RedisError::Lost);
            }
            conn.waiting.push_back(Rc::clone(&slot));
            conn.out.extend_from_slice(&command);
            CALLS.fetch_add(1, Ordering::Relaxed);
            if !conn.writing {
                conn.writing = true;
                let (write, generation) = (Rc::clone(&conn.write), conn.generation);
                monoio::spawn(Rc::clone(self).write_loop(write, generation));
            }
        }
        match SlotWait(slot).await {
            Ok(Value::Error(e)) if !e.starts_with("NOSCRIPT") => {
                Err(RedisError::Reply(RespError::Unexpected(e)))
            }
            Ok(v) => Ok(v),
            Err(()) => Err(RedisError::Lost),
        }
    }

    /// Waits for a live connection, opening one when none is and the backoff allows. The
    /// attempt runs in its own task: a caller giving up (its timeout) cannot leave it half done.
    async fn connected(self: &Rc<Self>) -> Result<(), RedisError> {
        loop {
            let gate = {
                let mut inner = self.inner.borrow_mut();
                match &inner.state {
                    State::Up(_) => return Ok(()),
                    State::Connecting(gate) => Rc::clone(gate),
                    State::Down { retry_at } if Instant::now() < *retry_at => {
                        return Err(RedisError::Down(self.addr));
                    }
                    State::Down { .. } => {
                        let gate = Rc::new(Gate::default());
                        inner.state = State::Connecting(Rc::clone(&gate));
                        monoio::spawn(Rc::clone(self).connect(Rc::clone(&gate)));
                        gate
                    }
                }
            };
            GateWait(gate).await;
            if let State::Down { .. } = self.inner.borrow().state {
                return Err(RedisError::Down(self.addr));
            }
        }
    }

    async fn connect(self: Rc<Self>, gate: Rc<Gate>) {
        let result = match monoio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect_addr(self.addr),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        };
        let mut inner = self.inner.borrow_mut();
        match result {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                inner.generation += 1;
                inner.backoff = MIN_BACKOFF;
                let generation = inner.generation;
                let fd = stream.as_raw_fd();
                let (read, write) = stream.into_split();
                inner.state = State::Up(Conn {
                    generation,
                    fd,
                    write: Rc::new(RefCell::new(Some(write))),
                    waiting: VecDeque::new(),
                    out: Vec::new(),
                    writing: false,
                });
                CONNECTS.fetch_add(1, Ordering::Relaxed);
                if inner.logged_down {
                    inner.logged_down = false;
                    crate::info!("rate limits: connected to Redis at {} again", self.addr);
                }
                monoio::spawn(Rc::clone(&self).read_loop(read, generation));
            }
            Err(e) => {
                let backoff = if inner.logged_down {
                    (inner.backoff * 2).min(MAX_BACKOFF)
                } else {
                    MIN_BACKOFF
                };
                inner.backoff = backoff;
                inner.state = State::Down {
                    retry_at: Instant::now() + backoff,
                };
                if !inner.logged_down {
                    inner.logged_down = true;
                    crate::warn!(
                        "rate limits: cannot reach Redis at {}: {e}; cluster rules apply their \
                         on_redis_error until it is back (retrying every {:?} at most)",
                        self.addr,
                        MAX_BACKOFF
                    );
                }
            }
        }
        let failed = matches!(inner.state, State::Down { .. });
        drop(inner);
        gate.release();
        if failed {
            self.reconnect_in_background();
        }
    }

    /// Drops the connection of `generation` (`None`: the current one) and fails every reply
    /// waiting on it.
    fn lose(self: &Rc<Self>, generation: Option<u64>, why: &str) {
        let mut inner = self.inner.borrow_mut();
        let State::Up(conn) = &inner.state else {
            return;
        };
        if generation.is_some_and(|g| g != conn.generation) {
            return;
        }
        // The reader holds the read half in a pending read: shutting the socket down ends it
        // (with EOF), so the descriptor is released now rather than when Redis speaks again.
        // SAFETY: `fd` belongs to the stream whose halves this connection still owns (the state
        // is `Up` with this generation, and only `lose` leaves that state; the reader calls it
        // before it drops its half), so it is open.
        unsafe {
            libc::shutdown(conn.fd, libc::SHUT_RDWR);
        }
        let old = std::mem::replace(
            &mut inner.state,
            State::Down {
                retry_at: Instant::now(),
            },
        );
        if !inner.logged_down {
            inner.logged_down = true;
            crate::warn!(
                "rate limits: lost the connection to Redis at {} ({why}); reconnecting",
                self.addr
            );
        }
        drop(inner);
        if let State::Up(conn) = old {
            conn.write.borrow_mut().take();
            for slot in conn.waiting {
                slot.fill(Err(()));
            }
        }
        self.reconnect_in_background();
    }

    /// Starts (once) a task that reconnects without waiting for a request, following the
    /// backoff, until a connection is up again: every worker that had one gets it back as soon
    /// as Redis is, even one that sees no cluster-scope request meanwhile.
    fn reconnect_in_background(self: &Rc<Self>) {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.reconnecting {
                return;
            }
            inner.reconnecting = true;
        }
        let client = Rc::clone(self);
        monoio::spawn(async move {
            loop {
                let wait = match &client.inner.borrow().state {
                    State::Up(_) => break,
                    State::Down { retry_at } => retry_at.saturating_duration_since(Instant::now()),
                    State::Connecting(_) => MIN_BACKOFF,
                };
                monoio::time::sleep(wait.max(Duration::from_millis(10))).await;
                // The worker dropped this client (a reload changed or removed Redis): stop.
                if Rc::strong_count(&client) <= 1 {
                    break;
                }
                if client.connected().await.is_ok() {
                    break;
                }
            }
            client.inner.borrow_mut().reconnecting = false;
        });
    }

    /// Flushes the commands queued while the previous write was in flight, until none are.
    async fn write_loop(
        self: Rc<Self>,
        write: Rc<RefCell<Option<OwnedWriteHalf<TcpStream>>>>,
        generation: u64,
    ) {
        let mut buf = Vec::new();
        loop {
            {
                let mut inner = self.inner.borrow_mut();
                let State::Up(conn) = &mut inner.state else {
                    return;
                };
                if conn.generation != generation {
                    return;
                }
                if conn.out.is_empty() {
                    conn.writing = false;
                    return;
                }
                std::mem::swap(&mut buf, &mut conn.out);
            }
            let half = write.borrow_mut().take();
            let Some(mut half) = half else {
                return;
            };
            let (res, mut written) = half.write_all(std::mem::take(&mut buf)).await;
            written.clear();
            buf = written;
            // Put the half back unless the connection was dropped meanwhile.
            let current =
                matches!(&self.inner.borrow().state, State::Up(c) if c.generation == generation);
            if current {
                *write.borrow_mut() = Some(half);
            }
            if res.is_err() || !current {
                self.lose(Some(generation), "write failed");
                return;
            }
        }
    }

    /// Hands each reply to the request waiting for it, in order.
    async fn read_loop(self: Rc<Self>, mut read: OwnedReadHalf<TcpStream>, generation: u64) {
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let why = loop {
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
            let len = buf.len();
            let cap = buf.capacity();
            let (res, slice) = read
                .read(monoio::buf::IoBufMut::slice_mut(buf, len..cap))
                .await;
            buf = slice.into_inner();
            match res {
                Ok(0) => break "closed by Redis",
                Err(_) => break "read failed",
                Ok(_) => {}
            }
            let mut used = 0;
            let parse_failed = loop {
                match resp::parse(buf.get(used..).unwrap_or_default()) {
                    Ok(Some((value, n))) => {
                        used += n;
                        let slot = match &mut self.inner.borrow_mut().state {
                            State::Up(c) if c.generation == generation => c.waiting.pop_front(),
                            _ => None,
                        };
                        match slot {
                            Some(slot) => slot.fill(Ok(value)),
                            None => break true,
                        }
                    }
                    Ok(None) => break false,
                    Err(_) => break true,
                }
            };
            if parse_failed {
                break "unexpected reply";
            }
            buf.drain(..used);
        };
        self.lose(Some(generation), why);
    }
}
