//! One client connection: read request heads (keep-alive, pipelined requests served in order),
//! hand each request to the proxy, close on errors, idle timeout or shutdown. Plain or TLS alike
//! (`super::client::ClientStream` opens the connection: a TLS handshake happens there).
//!
//! The connection's task is kept small: the request loop, whose future holds every phase's
//! state, runs in an allocation of its own, and a long-lived event stream is relayed outside it
//! (`exchange::StreamJob`), so an idle stream costs its relay's state, not the pipeline's.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mcpgate_codec::http::{HttpError, RequestHead};
use mcpgate_policies::tls::TlsFacts;
use monoio::io::{AsyncReadRent, AsyncWriteRent};

use super::client::{ClientRead, ClientStream, Opened, Outcome};
use super::deadlines::Deadline;
use super::exchange::{self, Handled, StreamJob};
use super::io::{read_more_by, read_more_until, write_all, ReadError, READ_CHUNK};
use super::worker::{InFlight, Worker};
use crate::config::Config;
use crate::errors::{write_error_response, Error, ErrorKind};

/// Buffers larger than this are shrunk back between requests.
const SHRINK_ABOVE: usize = 256 * 1024;

/// How long the TLS close_notify at the end of a connection may take to leave.
const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(1);

struct ConnGuard(Rc<Worker>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0
            .connections
            .set(self.0.connections.get().saturating_sub(1));
    }
}

pub(crate) async fn serve<S: ClientStream>(worker: Rc<Worker>, stream: S, peer: SocketAddr) {
    worker.connections.set(worker.connections.get() + 1);
    let _guard = ConnGuard(worker.clone());
    let _observed = worker.pipeline.features.observe.connection_guard();
    // Boxed, like every large future below: this task lives as long as the connection.
    let Some(Opened {
        mut rd,
        mut wr,
        tls,
    }) = Box::pin(stream.open(peer)).await
    else {
        return;
    };
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(4096);
    let mut first = true;
    loop {
        let requests = serve_requests(
            &worker, peer, &tls, &mut rd, &mut wr, &mut buf, &mut out, first,
        );
        let Some((job, in_flight)) = Box::pin(requests).await else {
            break;
        };
        first = false;
        // The stream's transient buffers are being freed: their pages go back once the burst
        // of starts is over (`super::trim`).
        worker.trim.stream_started();
        let outcome = job
            .run(&worker, (&mut rd, &mut wr), &mut buf, &mut out)
            .await;
        drop(in_flight);
        if outcome == Outcome::Close || worker.draining() {
            break;
        }
    }
    if tls.is_some() {
        // A TLS connection ends with close_notify (RFC 8446 §6.1), so the client can tell the
        // gateway's deliberate close from a truncation. It is a few bytes; a client that stopped
        // reading must not hold the connection open for it.
        let _ = Box::pin(monoio::time::timeout(CLOSE_NOTIFY_WAIT, wr.shutdown())).await;
    }
}

/// Serves requests on the connection until it is to be closed (`None`) or a long-lived event
/// stream is to be relayed (with its request still counted in flight); `first`: no request was
/// served on the connection yet.
#[allow(clippy::too_many_arguments)]
async fn serve_requests<R: ClientRead, W: AsyncWriteRent>(
    worker: &Rc<Worker>,
    peer: SocketAddr,
    tls: &Option<Rc<TlsFacts>>,
    rd: &mut R,
    wr: &mut W,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
    mut first: bool,
) -> Option<(StreamJob, InFlight)> {
    // Bounds the request loop's waits, one at a time. Held by this (boxed) loop, not by the
    // connection's task: a long-lived event stream handed back from here gives the slot back
    // and waits on its own (`sse::Stream`), so an idle stream holds one slot, not two.
    let deadline = &worker.deadlines.slot();
    loop {
        let snapshot = worker.snapshot();
        let head = match read_head(rd, buf, &snapshot.config, first, worker, deadline).await {
            Ok(Some(head)) => head,
            Ok(None) => return None,
            Err(err) => {
                write_error_response(&err, None, None, true, out);
                let _ = write_all(wr, out).await;
                return None;
            }
        };
        first = false;
        let in_flight = InFlight::new(worker);
        drop(snapshot);
        let handled = exchange::handle(worker, peer, tls, rd, wr, buf, head, out, deadline);
        let outcome = match handled.await {
            Handled::Done(outcome) => outcome,
            Handled::Stream(job) => return Some((job, in_flight)),
        };
        drop(in_flight);
        if outcome == Outcome::Close || worker.draining() {
            return None;
        }
        // A large body grew the buffers; idle keep-alive connections should not keep that memory.
        if buf.capacity() > SHRINK_ABOVE && buf.len() <= READ_CHUNK {
            buf.shrink_to(READ_CHUNK);
        }
        if out.capacity() > SHRINK_ABOVE {
            out.clear();
            out.shrink_to(4096);
        }
    }
}

/// Reads until `buf` starts with a complete request head. `Ok(None)`: the client closed, or stayed
/// idle past `keepalive_idle` between requests, or the gateway is draining: close quietly.
async fn read_head<R: AsyncReadRent>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    config: &Config,
    first: bool,
    worker: &Worker,
    slot: &Deadline,
) -> Result<Option<RequestHead>, Error> {
    let limits = &config.gateway.limits;
    let timeouts = &config.gateway.timeouts;
    // `client_header` runs from the first bytes of the head; set only when the head is not
    // complete in them (a head that came whole costs no clock read).
    let mut deadline: Option<Instant> = None;
    loop {
        if !buf.is_empty() {
            match RequestHead::parse(buf) {
                Ok(Some(head)) if head.head_len > limits.max_head_bytes => {
                    return Err(HttpError::HeadTooLarge.into())
                }
                Ok(Some(head)) => return Ok(Some(head)),
                Ok(None) if buf.len() >= limits.max_head_bytes => {
                    return Err(HttpError::HeadTooLarge.into())
                }
                Ok(None) => {}
                Err(e) => return Err(e.into()),
            }
            deadline.get_or_insert_with(|| Instant::now() + timeouts.client_header);
        } else if !first && worker.draining() {
            return Ok(None);
        }
        let read = match deadline {
            Some(at) => read_more_until(rd, buf, slot, at).await,
            None => {
                let wait = if first {
                    timeouts.client_header
                } else {
                    timeouts.keepalive_idle
                };
                // Waiting for a request that has not begun: a drain closes the connection at
                // once rather than at the end of `shutdown_grace` (nothing of a request would
                // be lost).
                monoio::select! {
                    r = read_more_by(rd, buf, slot, wait) => r,
                    _ = worker.drained() => return Ok(None),
                }
            }
        };
        match read {
            Ok(0) | Err(ReadError::Io(_)) => return Ok(None),
            Ok(_) => {}
            Err(ReadError::Timeout) if deadline.is_some() => {
                return Err(ErrorKind::ClientHeaderTimeout.into())
            }
            Err(ReadError::Timeout) => return Ok(None),
        }
    }
}
