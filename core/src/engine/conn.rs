//! One client connection: read request heads (keep-alive, pipelined requests served in order),
//! hand each request to the proxy, close on errors, idle timeout or shutdown. Plain or TLS alike
//! (`super::client::ClientStream` opens the connection: a TLS handshake happens there).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use mcpgate_codec::http::{HttpError, RequestHead};
use monoio::io::AsyncReadRent;

use super::client::{ClientStream, Opened, Outcome};
use super::exchange;
use super::io::{read_more, write_all, ReadError, READ_CHUNK};
use super::worker::{InFlight, Worker};
use crate::config::Config;
use crate::errors::{write_error_response, Error, ErrorKind};

/// Buffers larger than this are shrunk back between requests.
const SHRINK_ABOVE: usize = 256 * 1024;

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
    let Some(Opened {
        mut rd,
        mut wr,
        tls,
    }) = stream.open(peer).await
    else {
        return;
    };
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(4096);
    let mut first = true;
    loop {
        let snapshot = worker.snapshot();
        let head = match read_head(&mut rd, &mut buf, &snapshot.config, first, &worker).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(err) => {
                write_error_response(&err, None, None, true, &mut out);
                let _ = write_all(&mut wr, &mut out).await;
                return;
            }
        };
        first = false;
        let _in_flight = InFlight::new(&worker);
        drop(snapshot);
        let outcome = exchange::handle(
            &worker, peer, &tls, &mut rd, &mut wr, &mut buf, head, &mut out,
        )
        .await;
        if outcome == Outcome::Close || worker.draining() {
            return;
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
) -> Result<Option<RequestHead>, Error> {
    let limits = &config.gateway.limits;
    let timeouts = &config.gateway.timeouts;
    let mut deadline: Option<Instant> = None;
    loop {
        if !buf.is_empty() {
            deadline.get_or_insert_with(|| Instant::now() + timeouts.client_header);
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
        } else if !first && worker.draining() {
            return Ok(None);
        }
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None if first => timeouts.client_header,
            None => timeouts.keepalive_idle,
        };
        let read = read_more(rd, buf, wait);
        let read = if deadline.is_none() {
            // Waiting for a request that has not begun: a drain closes the connection at once
            // rather than at the end of `shutdown_grace` (nothing of a request would be lost).
            monoio::select! {
                r = read => r,
                _ = worker.drained() => return Ok(None),
            }
        } else {
            read.await
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
