//! An event stream relayed event by event: framing (the upstream's chunked, length or
//! close-delimited body decoded; the client's re-declared), the SSE parser, and for each complete
//! event the response-side `event_filter` chain (`crate::phases`), whose verdict relays the event
//! byte for byte, rewritten, or not at all. Every complete event is written the moment it is
//! complete (events read together leave in one write); nothing is buffered beyond the event being
//! assembled.
//!
//! A stream is a [`Stream`]: its first pass (the client head and the events that came with the
//! upstream's head) runs inside the request's exchange, where a failure can still be answered as
//! an error; [`Stream::run`] relays the rest. A long-lived GET stream runs the rest on the
//! connection's own small task (`super::conn`) rather than inside the request pipeline's large
//! future, so thousands of idle streams cost only their relay's state each.
//!
//! `sse_idle` bounds the upstream's silence between reads and ends the stream cleanly;
//! `client_write` bounds how long a client may accept no byte (a stalled reader is cut off and
//! its upstream connection dropped). The client's side is
//! watched with a cancelable read (a GET stream's only once its socket is readable, so an idle
//! one holds no buffer for it): its disconnect ends the relay and drops the upstream
//! connection; pipelined bytes it sends are kept for after the stream. A GET stream also ends
//! cleanly when the gateway drains.

use std::borrow::Cow;
use std::cell::Cell;
use std::pin::pin;

use mcpgate_codec::http::{encode_chunk, ChunkedDecoder, HttpError, ResponseBody, LAST_CHUNK};
use mcpgate_codec::sse::{event_data, write_event, write_event_chunk, SseParser};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncWriteRent, CancelHandle, Canceller};

use super::client::ClientRead;
use super::deadlines::Deadline;
use super::io::{read_reserving, shrink_for_idle, write_all, IDLE_STREAM_CHUNK, READ_CHUNK};
use super::upstream::{PoolKey, UpstreamConn, UpstreamStream};
use super::worker::Worker;
use crate::config::Timeouts;
use crate::context::{HttpMethod, RequestCtx};
use crate::errors::{Error, ErrorKind};
use crate::headers::ClientFraming;
use crate::observe::SseStreamGuard;
use crate::phases::{Event, EventStep, Pipeline};

fn client_gone(e: std::io::Error) -> Error {
    ErrorKind::ClientGone(e).into()
}

/// An event stream being relayed: the upstream connection and everything the relay keeps
/// between reads (framing decoder, SSE parser, the event being assembled).
pub struct Stream {
    conn: UpstreamConn,
    rframing: ResponseBody,
    cframing: ClientFraming,
    parser: SseParser,
    decoder: ChunkedDecoder,
    /// Body bytes still expected with `Content-Length` framing.
    remaining: u64,
    /// Decoded bytes not yet parsed into a complete event.
    events: Vec<u8>,
    /// A GET stream: long-lived, mostly quiet, ended by a drain; its buffers start small.
    long_lived: bool,
    head_sent: bool,
    /// The terminal chunk left with the last events (one write, not two).
    terminated: bool,
    /// The upstream's body ended (`true`: exactly, nothing followed it).
    ended: Option<bool>,
    /// Where the upstream connection goes back when the stream ends exactly and may be kept.
    pub pool_key: PoolKey,
    pub upstream_keep_alive: bool,
    /// The client connection closes after the stream.
    pub close_client: bool,
    _open_stream: Option<SseStreamGuard>,
    /// The one deadline bounding every wait of the stream (re-armed per wait): a slot of the
    /// worker's table (`super::deadlines`), not a timer of its own.
    deadline: Deadline,
}

/// How [`Stream::new`] was asked to relay.
pub struct StreamSpec {
    pub rframing: ResponseBody,
    pub cframing: ClientFraming,
    pub pool_key: PoolKey,
    pub upstream_keep_alive: bool,
    pub close_client: bool,
}

impl Stream {
    /// A stream over `conn` (its buffer starts with the body; the client head is in `out`).
    /// Events a feature puts first (the ACL's refusals of a batch's elements) go into `out`.
    pub fn new(
        worker: &Worker,
        ctx: &mut RequestCtx,
        pipeline: &Pipeline,
        conn: UpstreamConn,
        spec: StreamSpec,
        out: &mut Vec<u8>,
    ) -> Stream {
        let long_lived = ctx.method == HttpMethod::Get;
        let mut first: Vec<u8> = Vec::new();
        pipeline.events_start(ctx, &mut first);
        if !first.is_empty() {
            match spec.cframing {
                ClientFraming::Chunked => encode_chunk(&first, out),
                _ => out.extend_from_slice(&first),
            }
        }
        Stream {
            conn,
            rframing: spec.rframing,
            cframing: spec.cframing,
            parser: SseParser::with_max_event(ctx.config().gateway.limits.max_sse_event_bytes),
            decoder: ChunkedDecoder::new(),
            remaining: match spec.rframing {
                ResponseBody::Length(n) => n,
                _ => u64::MAX,
            },
            events: Vec::with_capacity(if long_lived { 0 } else { 4096 }),
            long_lived,
            head_sent: false,
            terminated: false,
            ended: None,
            pool_key: spec.pool_key,
            upstream_keep_alive: spec.upstream_keep_alive,
            close_client: spec.close_client,
            _open_stream: worker.pipeline.features.observe.sse_guard(),
            deadline: worker.deadlines.slot(),
        }
    }

    /// A long-lived stream (GET): worth running on the connection's small task.
    pub fn long_lived(&self) -> bool {
        self.long_lived
    }

    /// The upstream's body ended with the passes so far.
    pub fn ended(&self) -> bool {
        self.ended.is_some()
    }

    pub fn cframing(&self) -> ClientFraming {
        self.cframing
    }

    /// The upstream connection, once the stream ended.
    pub fn into_conn(self) -> UpstreamConn {
        self.conn
    }

    /// Relays what `conn.buf` holds: every complete event through the `event_filter` chain and
    /// out in one write (the client head too, on the first pass). `Some(reusable)` once the
    /// upstream's body ended (`reusable`: nothing followed it).
    pub async fn pass<W: AsyncWriteRent>(
        &mut self,
        wr: &mut W,
        out: &mut Vec<u8>,
        ctx: &mut RequestCtx,
        pipeline: &Pipeline,
        timeouts: &Timeouts,
    ) -> Result<Option<bool>, Error> {
        let conn = &mut self.conn;
        let events = &mut self.events;
        let mut upstream_done = false;
        match self.rframing {
            ResponseBody::Chunked => {
                let input = &conn.buf;
                match self.decoder.decode(input, |r| {
                    events.extend_from_slice(input.get(r).unwrap_or_default())
                }) {
                    Ok(c) => {
                        conn.buf.drain(..c.min(conn.buf.len()));
                        upstream_done = self.decoder.is_done();
                    }
                    Err(_) => {
                        return Err(ErrorKind::UpstreamMalformed(HttpError::BadFraming(
                            "bad chunked framing in an event stream",
                        ))
                        .into())
                    }
                }
            }
            ResponseBody::Length(_) => {
                let take = conn
                    .buf
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                events.extend_from_slice(conn.buf.get(..take).unwrap_or_default());
                conn.buf.drain(..take);
                self.remaining -= take as u64;
                upstream_done = self.remaining == 0;
            }
            ResponseBody::CloseDelimited | ResponseBody::None => {
                events.extend_from_slice(&conn.buf);
                conn.buf.clear();
            }
        }
        let mut pos = 0;
        let mut broken = None;
        // Lent to each event for a filter's rewrite (`Event::scratch`), and back to the worker
        // before the write below awaits: a rewritten event is written from it straight into
        // `out`, framing and all, with no buffer of its own.
        let mut scratch = pipeline.take_event_scratch();
        loop {
            let rest = events.get(pos..).unwrap_or_default();
            match self.parser.next_event(rest) {
                Ok(Some((event, consumed))) => {
                    let mut view = Event {
                        event_type: event.event_type(rest),
                        id: event.id_value(rest),
                        retry: event.retry,
                        data: Cow::Borrowed(event_data(&event, rest)),
                        upstream_raw: event.raw_bytes(rest),
                        is_comment_only: event.is_comment_only,
                        scratch: std::mem::take(&mut scratch),
                    };
                    let verdict = pipeline.event_filter(ctx, &mut view);
                    pos += consumed;
                    scratch = std::mem::take(&mut view.scratch);
                    let rewritten = match view.data {
                        Cow::Borrowed(_) => None,
                        Cow::Owned(data) => Some(data),
                    };
                    if verdict == EventStep::Relay {
                        match (&rewritten, self.cframing) {
                            (None, ClientFraming::Chunked) => encode_chunk(view.upstream_raw, out),
                            (None, _) => out.extend_from_slice(view.upstream_raw),
                            (Some(data), ClientFraming::Chunked) => {
                                write_event_chunk(out, view.event_type, view.id, view.retry, data)
                            }
                            (Some(data), _) => {
                                write_event(out, view.event_type, view.id, view.retry, data)
                            }
                        }
                    }
                    // The rewrite was (most likely) made in the lent buffer: it is the next
                    // event's.
                    if let Some(data) = rewritten {
                        if data.capacity() > scratch.capacity() {
                            scratch = data;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    crate::warn!("upstream event stream refused: {e}");
                    broken = Some(e);
                    break;
                }
            }
        }
        pipeline.give_back_event_scratch(scratch);
        events.drain(..pos.min(events.len()));
        if upstream_done && broken.is_none() && self.cframing == ClientFraming::Chunked {
            out.extend_from_slice(LAST_CHUNK);
            self.terminated = true;
        }
        if !out.is_empty() {
            ctx.bytes_to_client += out.len() as u64;
            ctx.response_started = true;
            // On timeout the buffer is lost with the dropped write; the connection closes.
            match self
                .deadline
                .within(timeouts.client_write, pin!(write_all(wr, out)))
                .await
            {
                Some(res) => res.map_err(client_gone)?,
                None => return Err(client_gone(std::io::ErrorKind::TimedOut.into())),
            }
        }
        if !self.head_sent {
            self.head_sent = true;
            if self.long_lived {
                // Quiet from now on, most likely: keep small buffers while idle (a fresh
                // allocation, see `shrink_for_idle`); a burst regrows them.
                shrink_for_idle(out, 0);
                shrink_for_idle(&mut self.conn.buf, 0);
                shrink_for_idle(&mut self.events, 0);
            }
        }
        if broken.is_some() {
            return Err(ErrorKind::UpstreamMalformed(HttpError::Malformed(
                "an event of the stream cannot be read",
            ))
            .into());
        }
        if upstream_done {
            self.ended = Some(self.conn.buf.is_empty() && self.events.is_empty());
        }
        Ok(self.ended)
    }

    /// Relays the stream to its end (the first pass too, if it has not run). `buf` is the client
    /// connection's read buffer: the client is watched with a cancelable read appending to it,
    /// so pipelined bytes are kept for after the stream. Returns whether the upstream connection
    /// may be pooled.
    pub async fn run<R, W>(
        &mut self,
        worker: &Worker,
        (rd, wr): (&mut R, &mut W),
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
        ctx: &mut RequestCtx,
        pipeline: &Pipeline,
    ) -> Result<bool, Error>
    where
        R: ClientRead,
        W: AsyncWriteRent,
    {
        let snapshot = std::rc::Rc::clone(&ctx.snapshot);
        let timeouts = &snapshot.config.gateway.timeouts;
        if !self.head_sent {
            self.pass(wr, out, ctx, pipeline, timeouts).await?;
        }
        if let Some(reusable) = self.ended {
            return self.finish(wr, out, reusable).await;
        }
        let idle = timeouts.sse_idle;
        let read_chunk = if self.long_lived {
            IDLE_STREAM_CHUNK
        } else {
            READ_CHUNK
        };
        // Watch the client: a long-lived stream first waits for readability holding no buffer,
        // then (like a POST stream at once) reads with a cancelable read appending to the
        // client's buffer, so pipelined bytes are kept for after the stream.
        let mut client_buf = std::mem::take(buf);
        if self.long_lived {
            // Only a close or pipelined bytes are expected here, and nothing is read before the
            // socket is readable: an empty buffer is freed (the next request regrows it).
            shrink_for_idle(&mut client_buf, 0);
        }
        let canceller = Canceller::new();
        // The watch got past readiness: its read holds the buffer and must be cancelled and
        // awaited to give it back.
        let reading = Cell::new(false);
        let long_lived = self.long_lived;

        // The watch's borrow of the client's buffer ends with this block.
        let (result, client_gone_seen) = {
            let mut watch = pin!(watch_client(
                rd,
                &mut client_buf,
                long_lived,
                canceller.handle(),
                &reading
            ));
            let mut watching = true;
            let mut client_gone_seen = false;
            let result: Result<bool, Error> = 'relay: loop {
                // The read's borrow of the connection ends with this block (the pass below uses
                // it).
                let res = {
                    // An idle long-lived stream waits for the upstream's bytes holding no buffer.
                    let wait_first = self.long_lived && self.conn.buf.is_empty();
                    let read = pin!(read_when_ready(&mut self.conn, read_chunk, wait_first));
                    let mut read = pin!(self.deadline.within(idle, read));
                    let drain = pin!(wait_for_drain(worker, self.long_lived));
                    monoio::select! {
                        r = &mut read => r,
                        w = &mut watch, if watching => {
                            watching = false;
                            match w {
                                // Pipelined bytes: kept for after the stream; stop watching.
                                Ok(n) if n > 0 => read.await,
                                other => {
                                    client_gone_seen = true;
                                    let e = match other {
                                        Err(e) => e,
                                        Ok(_) => std::io::ErrorKind::UnexpectedEof.into(),
                                    };
                                    break 'relay Err(client_gone(e));
                                }
                            }
                        },
                        _ = drain => {
                            break 'relay Ok(false);
                        },
                    }
                };
                match res {
                    Some(Ok(0)) if self.rframing == ResponseBody::CloseDelimited => {
                        // The remaining complete events were written; a torn one is dropped.
                        break Ok(false);
                    }
                    Some(Ok(0)) => break Err(ErrorKind::UpstreamClosed.into()),
                    Some(Ok(_)) => {}
                    None => {
                        crate::debug!("event stream idle for {idle:?}; ending it");
                        break Ok(false);
                    }
                    Some(Err(e)) => break Err(ErrorKind::UpstreamIo(e).into()),
                }
                match self.pass(wr, out, ctx, pipeline, timeouts).await {
                    Ok(Some(reusable)) => break Ok(reusable),
                    Ok(None) if self.long_lived => {
                        // Back to waiting, most likely for long: what the burst grew goes back
                        // (an empty buffer is freed; the next read after readiness allocates
                        // again).
                        shrink_for_idle(&mut self.conn.buf, 0);
                        shrink_for_idle(&mut self.events, 0);
                        shrink_for_idle(out, 0);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        client_gone_seen = matches!(e.kind, ErrorKind::ClientGone(_));
                        break Err(e);
                    }
                }
            };
            // A watch still waiting for readiness holds nothing and is dropped with this block.
            if watching && reading.get() {
                let _ = canceller.cancel();
                if matches!(watch.await, Ok(0)) {
                    client_gone_seen = true;
                }
            }
            (result, client_gone_seen)
        };
        *buf = client_buf;
        let reusable = result?;
        if client_gone_seen {
            return Err(client_gone(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.finish(wr, out, reusable).await
    }

    /// Ends the client's chunked body if the last pass did not.
    async fn finish<W: AsyncWriteRent>(
        &mut self,
        wr: &mut W,
        out: &mut Vec<u8>,
        reusable: bool,
    ) -> Result<bool, Error> {
        if self.cframing == ClientFraming::Chunked && !self.terminated {
            out.clear();
            out.extend_from_slice(LAST_CHUNK);
            write_all(wr, out).await.map_err(client_gone)?;
            self.terminated = true;
        }
        Ok(reusable)
    }
}

/// One read into `conn.buf` (see [`read_reserving`]); with `wait_first`, a plain connection is
/// first waited on for readability, so an idle stream lends the kernel no buffer while it waits
/// (an io_uring read owns its buffer until it completes; a poll needs none). Both drivers: a
/// poll op on io_uring, the readiness state plus a `poll(2)` check on epoll. A TLS connection
/// reads at once: its records are decrypted into buffers it keeps anyway.
async fn read_when_ready(
    conn: &mut UpstreamConn,
    chunk: usize,
    wait_first: bool,
) -> std::io::Result<usize> {
    if wait_first {
        if let UpstreamStream::Plain(s) = &conn.stream {
            // Not `relaxed`: the epoll driver's readiness may be stale, and a false "ready" would
            // park the read below with a buffer for the whole silence.
            s.readable(false).await?;
        }
    }
    // Boxed: the read's future (the TLS variant's most of all) is several hundred bytes, and
    // inline it would size the connection task that an idle stream keeps for its whole life; the
    // box lives only while bytes are being read.
    Box::pin(read_reserving(&mut conn.stream, &mut conn.buf, chunk)).await
}

/// The client's side of a stream: with `wait_first`, waits for readability holding no buffer
/// (a plain connection; TLS reads at once), then one cancelable read appending to `buf` (the
/// buffer is back in `buf` when the read completes, cancelled or not). `reading` is set once
/// the read holds the buffer.
async fn watch_client<R: ClientRead>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    wait_first: bool,
    cancel: CancelHandle,
    reading: &Cell<bool>,
) -> std::io::Result<usize> {
    if wait_first {
        rd.wait_readable().await?;
    }
    reading.set(true);
    if buf.capacity() == buf.len() {
        // A long-lived stream expects a close or the start of a pipelined request.
        buf.reserve(if wait_first { 128 } else { 1024 });
    }
    let owned = std::mem::take(buf);
    let (len, cap) = (owned.len(), owned.capacity());
    let (res, slice) = rd.cancelable_read(owned.slice_mut(len..cap), cancel).await;
    *buf = slice.into_inner();
    res
}

async fn wait_for_drain(worker: &Worker, enabled: bool) {
    if !enabled {
        std::future::pending::<()>().await;
    }
    // Event-driven: a per-stream poll timer would wake every idle stream ten times a second.
    worker.drained().await;
}
