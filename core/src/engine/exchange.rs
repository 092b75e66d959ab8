//! One HTTP request through the phases: [`handle`] builds the request context, lets
//! `Pipeline::run` drive the phases over an [`Exchange`] (this module's implementation of the
//! I/O between them: read the body, forward, relay), writes the gateway's own answer when a phase
//! or a failure stops the request early, and runs the `record` phase however it ended.
//!
//! Rules kept here: a request whose bytes may have reached the upstream is never retried (a
//! pooled connection that fails before taking any byte is, once, on a fresh connection; an
//! idempotent GET or DELETE also when a pooled connection closes without answering); an upstream
//! connection goes back to the pool only when its response was read exactly to its end; a failure
//! after the first byte of the answer left closes the client connection (the client sees a
//! truncated answer rather than a silently complete one).

use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;
use std::time::Instant;

use mcpgate_codec::http::{
    check_body_charset, check_body_len, ChunkedDecoder, HttpError, RequestBody, RequestHead,
    ResponseHead,
};
use mcpgate_policies::tls::TlsFacts;
use monoio::io::AsyncWriteRent;

use super::client::{Client, ClientRead, Outcome};
use super::deadlines::Deadline;
use super::io::{read_more_until, write_all, write_range, ReadError};
use super::local_stream::{self, StreamEnd};
use super::relay::{self, Relayed};
use super::sse;
use super::upstream::{self, UpstreamConn};
use super::worker::Worker;
use crate::config::Timeouts;
use crate::context::{HttpMethod, RequestCtx};
use crate::errors::{insert_header, write_error_response, Error, ErrorKind, Retry};
use crate::headers::{write_upstream_request, UpstreamRequest};
use crate::phases::{Answer, ExchangeIo, Pipeline, Request, Response, UpstreamEdits};
use crate::request_id::{self, RequestId};
use crate::route;

/// Bodies up to this size are copied behind their head so both leave in one write; larger ones
/// are written from where they were read.
const COPY_BODY_MAX: usize = 16 * 1024;

/// Where the request body is.
enum Body {
    /// `buf[range]`, as received (Content-Length framing; empty without a body).
    InBuf(Range<usize>),
    /// Decoded from chunked framing; forwarded with a Content-Length.
    Decoded(Vec<u8>),
}

/// The engine's side of one exchange (see [`ExchangeIo`]).
pub struct Exchange<'a, R, W> {
    worker: &'a Rc<Worker>,
    client: Client<'a, R, W>,
    head: RequestHead,
    peer: SocketAddr,
    /// The body's framing, or why it cannot be read.
    framing: Result<RequestBody, HttpError>,
    body: Body,
    /// End of this request in `buf` once its body is read (drained before the next request).
    request_end: Option<usize>,
    /// The upstream connection and its response head, once forwarded.
    upstream: Option<(UpstreamConn, ResponseHead)>,
    /// How the relay left the client connection.
    outcome: Outcome,
    /// A long-lived event stream whose head left, to be relayed by a [`StreamJob`].
    stream: Option<Box<sse::Stream>>,
}

/// What [`handle`] leaves the connection loop.
pub enum Handled {
    /// The exchange is over; what the connection does next.
    Done(Outcome),
    /// A long-lived event stream (GET) whose head left: the connection relays the rest on its
    /// own small task ([`StreamJob::run`]), not inside the pipeline's large future, so an idle
    /// stream holds only its relay's state.
    Stream(StreamJob),
}

/// The rest of an exchange whose event stream outlives the pipeline: the stream and the
/// request's context (recorded when the stream ends).
pub struct StreamJob {
    ctx: Box<RequestCtx>,
    stream: Box<sse::Stream>,
}

impl StreamJob {
    /// Relays the stream to its end, then records the exchange.
    pub async fn run<R, W>(
        self,
        worker: &Rc<Worker>,
        rw: (&mut R, &mut W),
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Outcome
    where
        R: ClientRead,
        W: AsyncWriteRent,
    {
        let StreamJob { mut ctx, stream } = self;
        let pipeline = &worker.pipeline;
        let outcome = relay::finish_stream(worker, stream, rw, buf, out, &mut ctx, pipeline).await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            // The head left before the job began: too late for an error status.
            Err(e) => {
                log_cut_short(&mut ctx, &e);
                Outcome::Close
            }
        };
        pipeline.record(&mut ctx);
        outcome
    }
}

/// Runs one request and writes its answer. The request's bytes are drained from `buf` (what
/// follows is the next pipelined request) unless the connection must close.
#[allow(clippy::too_many_arguments)]
pub async fn handle<R, W>(
    worker: &Rc<Worker>,
    peer: SocketAddr,
    tls: &Option<Rc<TlsFacts>>,
    rd: &mut R,
    wr: &mut W,
    buf: &mut Vec<u8>,
    head: RequestHead,
    out: &mut Vec<u8>,
    deadline: &Deadline,
) -> Handled
where
    R: ClientRead,
    W: AsyncWriteRent,
{
    let method = HttpMethod::from_bytes(head.method(buf));
    let mut ctx = RequestCtx::new(peer, worker.snapshot(), method);
    ctx.tls = tls.clone();
    // One pass over the fields for the three the exchange's identity comes from.
    let (mut request_id, mut traceparent, mut tracestate) = (None, None, None);
    for (name, value) in head.headers(buf) {
        if request_id.is_none() && name.eq_ignore_ascii_case(b"x-request-id") {
            request_id = Some(value);
        } else if traceparent.is_none() && name.eq_ignore_ascii_case(b"traceparent") {
            traceparent = Some(value);
        } else if tracestate.is_none() && name.eq_ignore_ascii_case(b"tracestate") {
            tracestate = Some(value);
        }
    }
    if let Some(id) = request_id.and_then(RequestId::from_client) {
        ctx.request_id = id;
    }
    worker
        .pipeline
        .features
        .observe
        .start_trace(&mut ctx, traceparent, tracestate);
    // HTTP/1.0 clients get one response per connection (no keep-alive negotiation).
    let client_keep_alive = head.minor_version >= 1 && head.keep_alive(buf);
    let framing = head.body_framing(buf);
    let mut ex = Exchange {
        worker,
        client: Client {
            rd,
            wr,
            buf,
            out,
            keep_alive: client_keep_alive,
            http10: head.minor_version == 0,
            deadline,
        },
        peer,
        // Nothing follows a bodiless head: an early answer still leaves the connection usable.
        request_end: (framing == Ok(RequestBody::None)).then_some(head.head_len),
        framing,
        body: Body::InBuf(0..0),
        head,
        upstream: None,
        outcome: Outcome::KeepAlive,
        stream: None,
    };
    let pipeline = &worker.pipeline;
    let outcome = match pipeline.run(&mut ctx, &mut ex).await {
        Ok(()) => ex.outcome,
        Err(answer) => ex.answer(&mut ctx, pipeline, answer).await,
    };
    if let Some(stream) = ex.stream.take() {
        // The request was drained from `buf` when it was forwarded.
        let ctx = Box::new(ctx);
        return Handled::Stream(StreamJob { ctx, stream });
    }
    pipeline.record(&mut ctx);
    if outcome == Outcome::KeepAlive {
        match ex.request_end {
            Some(end) if end <= ex.client.buf.len() => {
                ex.client.buf.drain(..end);
            }
            _ => return Handled::Done(Outcome::Close),
        }
    }
    Handled::Done(outcome)
}

/// Logs why an answer already under way was cut off (the client then sees a truncated answer):
/// an upstream failure or a stalled client is an operator's concern; a client that hung up is
/// routine.
fn log_cut_short(ctx: &mut RequestCtx, e: &Error) {
    let snapshot = Rc::clone(&ctx.snapshot);
    let api = ctx
        .api
        .and_then(|i| snapshot.config.apis.get(i))
        .map_or("-", |a| a.name.as_str());
    match &e.kind {
        ErrorKind::ClientGone(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            ctx.obs.client_write_timeout = true;
            crate::warn!(
                request_id = %ctx.request_id,
                "api {api}: the client accepted no byte for {:?} (timeouts.client_write); answer cut off, connection closed",
                snapshot.config.gateway.timeouts.client_write
            );
        }
        ErrorKind::ClientGone(_) => {
            crate::debug!(
                request_id = %ctx.request_id,
                "api {api}: the client went away mid-answer: {e}"
            )
        }
        _ => crate::warn!(
            request_id = %ctx.request_id,
            "api {api}: {} answer cut short after {} bytes, connection closed: {e}",
            ctx.method.as_str(),
            ctx.bytes_to_client
        ),
    }
}

impl<R, W> Exchange<'_, R, W>
where
    R: ClientRead,
    W: AsyncWriteRent,
{
    /// The gateway answers instead of the upstream (or closes, once the answer started).
    async fn answer(
        &mut self,
        ctx: &mut RequestCtx,
        pipeline: &Pipeline,
        answer: Answer,
    ) -> Outcome {
        if ctx.response_started {
            // Too late for an error status: the client sees a truncated answer, and the log says
            // why.
            if let Answer::Error(e) = &answer {
                log_cut_short(ctx, e);
            }
            return Outcome::Close;
        }
        let base_close =
            self.request_end.is_none() || !self.client.keep_alive || self.worker.draining();
        ctx.local_answer = true;
        self.client.out.clear();
        let request_id = ctx.request_id.text();
        let close = match answer {
            Answer::Raw { response, close } => {
                let close = close || base_close;
                ctx.status = status_of(&response);
                self.client.out.extend_from_slice(&response);
                insert_header(self.client.out, request_id::HEADER, &request_id);
                if close {
                    // RFC 9112 §9.6: say so when the connection ends after this answer.
                    mark_close(self.client.out);
                }
                pipeline.local_answer(ctx, &response, None);
                close
            }
            Answer::Stream(stream) => {
                ctx.status = 200;
                let out = &mut *self.client.out;
                out.extend_from_slice(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                      cache-control: no-cache\r\ntransfer-encoding: chunked\r\n",
                );
                for (name, value) in &stream.headers {
                    for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
                        out.extend_from_slice(part);
                    }
                }
                for part in [request_id::HEADER.as_bytes(), b": ", &request_id[..]] {
                    out.extend_from_slice(part);
                }
                out.extend_from_slice(b"\r\n");
                if base_close {
                    out.extend_from_slice(b"connection: close\r\n");
                }
                out.extend_from_slice(b"\r\n");
                let worker = Rc::clone(self.worker);
                let end = local_stream::write(
                    ctx,
                    pipeline,
                    stream,
                    self.client.wr,
                    self.client.out,
                    || worker.draining(),
                )
                .await;
                return match end {
                    StreamEnd::Complete if !base_close => Outcome::KeepAlive,
                    _ => Outcome::Close,
                };
            }
            Answer::Error(err) => {
                let close = err.closes_connection() || base_close;
                ctx.status = err.status();
                if err.status() >= 500 {
                    let api = ctx.api().map_or("-", |a| a.name.as_str());
                    crate::warn!(
                        request_id = %ctx.request_id,
                        "api {api}: {} {}: {err}",
                        ctx.method.as_str(),
                        err.status()
                    );
                }
                write_error_response(
                    &err,
                    ctx.id_raw(),
                    Some(&request_id),
                    close,
                    self.client.out,
                );
                pipeline.local_answer(ctx, self.client.out, Some(&err));
                close
            }
        };
        ctx.bytes_to_client += self.client.out.len() as u64;
        match write_all(self.client.wr, self.client.out).await {
            Ok(()) if !close => Outcome::KeepAlive,
            _ => Outcome::Close,
        }
    }

    async fn read_client(&mut self, deadline: Instant) -> Result<(), Error> {
        let (rd, buf, slot) = (
            &mut *self.client.rd,
            &mut *self.client.buf,
            self.client.deadline,
        );
        match read_more_until(rd, buf, slot, deadline).await {
            Ok(0) => Err(ErrorKind::ClientGone(std::io::ErrorKind::UnexpectedEof.into()).into()),
            Ok(_) => Ok(()),
            Err(ReadError::Io(e)) => Err(ErrorKind::ClientGone(e).into()),
            Err(ReadError::Timeout) => Err(ErrorKind::ClientBodyTimeout.into()),
        }
    }

    /// Sends the request upstream and reads the response head, on a pooled connection when one
    /// is idle; retried once on a fresh connection when [`Retry`] allows.
    async fn send(
        &mut self,
        ctx: &RequestCtx,
        request: &mut Vec<u8>,
        separate_body: Option<Range<usize>>,
    ) -> Result<(UpstreamConn, ResponseHead), Error> {
        let timeouts = &ctx.config().gateway.timeouts;
        let Some(api) = ctx.api() else {
            return Err(ErrorKind::NotFound.into());
        };
        let up = &api.upstream;
        let mut retried = false;
        loop {
            let pooled = if retried {
                None
            } else {
                self.worker
                    .pool
                    .borrow_mut()
                    .take(up.pool_key(), timeouts.upstream_idle)
            };
            let mut conn = match pooled {
                Some(conn) => conn,
                None => {
                    upstream::connect(&up.addrs, timeouts.upstream_connect, up.tls.as_ref()).await?
                }
            };
            let attempt = match send_request(
                &mut conn,
                request,
                self.client.buf,
                separate_body.clone(),
            )
            .await
            {
                Ok(()) => read_response_head(&mut conn, timeouts, self.client.deadline).await,
                Err(e) => Err(e),
            };
            match attempt {
                Ok(rh) => return Ok((conn, rh)),
                Err(e) if !retried && e.retry.allows(conn.reused, ctx.method.is_idempotent()) => {
                    crate::debug!(
                        request_id = %ctx.request_id,
                        "pooled upstream connection failed ({e}); retrying on a new one"
                    );
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Adds `connection: close` to a complete response the gateway wrote (unless it has one).
fn mark_close(response: &mut Vec<u8>) {
    let head_end = memchr::memmem::find(response, b"\r\n\r\n").unwrap_or(response.len());
    let head = response.get(..head_end).unwrap_or_default();
    let has = head
        .split(|&b| b == b'\n')
        .any(|line| line.len() > 11 && line[..11].eq_ignore_ascii_case(b"connection:"));
    if has {
        return;
    }
    if let Some(status_end) = memchr::memmem::find(response, b"\r\n") {
        response.splice(
            status_end + 2..status_end + 2,
            b"connection: close\r\n".iter().copied(),
        );
    }
}

/// The status of a complete response the gateway wrote itself.
fn status_of(response: &[u8]) -> u16 {
    response
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl<R, W> ExchangeIo for Exchange<'_, R, W>
where
    R: ClientRead,
    W: AsyncWriteRent,
{
    fn request(&self) -> Request<'_> {
        Request {
            buf: self.client.buf,
            head: &self.head,
        }
    }

    fn check_body(&mut self, ctx: &RequestCtx) -> Result<(), Error> {
        let framing = self.framing?;
        if let RequestBody::Length(n) = framing {
            check_body_len(n, ctx.config().gateway.limits.max_body_bytes)?;
        }
        if framing != RequestBody::None {
            // A body is judged as UTF-8 JSON: one the upstream would decode otherwise is refused.
            check_body_charset(
                self.head
                    .headers(self.client.buf)
                    .filter(|(name, _)| name.eq_ignore_ascii_case(b"content-type"))
                    .map(|(_, value)| value),
            )?;
        }
        Ok(())
    }

    /// Reads the whole request body (bounded by `max_body_bytes` and `client_body`), answering
    /// `Expect: 100-continue` first when the client waits for it.
    async fn read_body(&mut self, ctx: &RequestCtx) -> Result<(), Error> {
        let framing = self.framing?;
        let head_len = self.head.head_len;
        let max = ctx.config().gateway.limits.max_body_bytes;
        // `client_body` runs from here; the clock is read only if the body is not all in yet.
        let limit = ctx.config().gateway.timeouts.client_body;
        let mut deadline: Option<Instant> = None;
        if framing != RequestBody::None
            && self.client.buf.len() == head_len
            && self.head.expects_continue(self.client.buf)
        {
            deadline = Some(Instant::now() + limit);
            self.client.out.clear();
            self.client
                .out
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            write_all(self.client.wr, self.client.out)
                .await
                .map_err(|e| Error::from(ErrorKind::ClientGone(e)))?;
        }
        match framing {
            RequestBody::None => {
                self.request_end = Some(head_len);
                self.body = Body::InBuf(head_len..head_len);
            }
            RequestBody::Length(n) => {
                let n = usize::try_from(n).map_err(|_| HttpError::BodyTooLarge)?;
                let end = head_len.saturating_add(n);
                if self.client.buf.capacity() < end {
                    self.client.buf.reserve(end - self.client.buf.len());
                }
                while self.client.buf.len() < end {
                    let at = *deadline.get_or_insert_with(|| Instant::now() + limit);
                    self.read_client(at).await?;
                }
                self.request_end = Some(end);
                self.body = Body::InBuf(head_len..end);
            }
            RequestBody::Chunked => {
                let mut decoder = ChunkedDecoder::with_max_body(max as u64);
                let mut decoded = Vec::new();
                let mut pos = head_len;
                loop {
                    let input = self.client.buf.get(pos..).unwrap_or_default();
                    let consumed = decoder.decode(input, |r| {
                        decoded.extend_from_slice(input.get(r).unwrap_or_default());
                    })?;
                    pos += consumed;
                    if decoder.is_done() {
                        break;
                    }
                    let at = *deadline.get_or_insert_with(|| Instant::now() + limit);
                    self.read_client(at).await?;
                }
                self.request_end = Some(pos);
                self.body = Body::Decoded(decoded);
            }
        }
        Ok(())
    }

    fn body(&self) -> &[u8] {
        match &self.body {
            Body::InBuf(r) => self.client.buf.get(r.clone()).unwrap_or_default(),
            Body::Decoded(v) => v,
        }
    }

    async fn forward(&mut self, ctx: &RequestCtx, edits: &UpstreamEdits<'_>) -> Result<(), Error> {
        let Some(api) = ctx.api() else {
            return Err(ErrorKind::NotFound.into());
        };
        let mut target = Vec::with_capacity(64);
        route::rewrite_target(
            &api.path,
            &api.upstream.path,
            route::origin_form(self.head.target(self.client.buf)),
            &mut target,
        );
        // A feature may forward another body (the ACL: a batch without its refused elements).
        let body = match ctx.forward_body.as_deref() {
            Some(replacement) => Body::Decoded(replacement.to_vec()),
            None => std::mem::replace(&mut self.body, Body::InBuf(0..0)),
        };
        let reframed_body_len = match &body {
            Body::Decoded(v) => Some(v.len()),
            Body::InBuf(_) => None,
        };
        // The upstream request is built in the connection's output buffer (no allocation per
        // request).
        let mut request = std::mem::take(&mut *self.client.out);
        request.clear();
        let request_id = ctx.request_id.text();
        let traceparent = ctx.trace.as_ref().map(|t| t.upstream_traceparent());
        write_upstream_request(
            self.client.buf,
            &self.head,
            &UpstreamRequest {
                target: &target,
                host: &api.upstream.host_header,
                peer: self.peer,
                reframed_body_len,
                strip_headers: &edits.remove,
                session_id: edits.session_id,
                https: ctx.tls.is_some(),
                request_id: &request_id,
                traceparent: traceparent.as_ref().map(|t| &t[..]),
            },
            &mut request,
        );
        let separate_body = match body {
            Body::InBuf(r) if r.len() <= COPY_BODY_MAX => {
                request.extend_from_slice(self.client.buf.get(r).unwrap_or_default());
                None
            }
            Body::InBuf(r) => Some(r),
            Body::Decoded(v) => {
                request.extend_from_slice(&v);
                None
            }
        };
        let sent = self.send(ctx, &mut request, separate_body).await;
        *self.client.out = request;
        let (conn, response_head) = sent?;
        // The request is with the upstream; what follows it in `buf` is the next request.
        if let Some(end) = self.request_end.take() {
            if end <= self.client.buf.len() {
                self.client.buf.drain(..end);
            }
        }
        self.request_end = Some(0);
        self.upstream = Some((conn, response_head));
        Ok(())
    }

    fn response(&mut self) -> Option<Response<'_>> {
        let (conn, head) = self.upstream.as_mut()?;
        Some(Response {
            buf: &mut conn.buf,
            head,
        })
    }

    async fn relay(&mut self, ctx: &mut RequestCtx, pipeline: &Pipeline) -> Result<(), Error> {
        if let Some(upstream) = self.upstream.take() {
            match relay::relay(&mut self.client, self.worker, upstream, ctx, pipeline).await? {
                Relayed::Done(outcome) => self.outcome = outcome,
                Relayed::Stream(stream) => self.stream = Some(stream),
            }
        }
        Ok(())
    }
}

/// A failed attempt: the error and whether it may be retried.
async fn send_request(
    conn: &mut UpstreamConn,
    request: &mut Vec<u8>,
    client_buf: &mut Vec<u8>,
    separate_body: Option<Range<usize>>,
) -> Result<(), Error> {
    let owned = std::mem::take(request);
    let total = owned.len();
    let (res, owned) = monoio::io::AsyncWriteRent::write(&mut conn.stream, owned).await;
    *request = owned;
    let nothing_sent = |e| Error::retryable(ErrorKind::UpstreamIo(e), Retry::IfReused);
    let written = match res {
        Ok(0) => return Err(nothing_sent(std::io::ErrorKind::WriteZero.into())),
        Ok(n) => n,
        Err(e) => return Err(nothing_sent(e)),
    };
    // Past the first write some bytes may have reached the upstream: never retried.
    if written < total {
        write_range(&mut conn.stream, request, written..total)
            .await
            .map_err(|e| Error::from(ErrorKind::UpstreamIo(e)))?;
    }
    if let Some(range) = separate_body {
        write_range(&mut conn.stream, client_buf, range)
            .await
            .map_err(|e| Error::from(ErrorKind::UpstreamIo(e)))?;
    }
    Ok(())
}

/// Reads the upstream's response head (interim 1xx heads skipped). A pooled connection closed or
/// reset before one byte arrived may be retried for an idempotent request.
async fn read_response_head(
    conn: &mut UpstreamConn,
    timeouts: &Timeouts,
    slot: &Deadline,
) -> Result<ResponseHead, Error> {
    let deadline = Instant::now() + timeouts.upstream_response_head;
    let mut got_any = false;
    let closed_empty = || Error::retryable(ErrorKind::UpstreamClosed, Retry::IfReusedAndIdempotent);
    loop {
        if !conn.buf.is_empty() {
            got_any = true;
            match ResponseHead::parse(&conn.buf) {
                Ok(Some(rh)) if rh.status == 101 => {
                    return Err(ErrorKind::UpstreamMalformed(HttpError::Malformed(
                        "unexpected protocol switch",
                    ))
                    .into())
                }
                // Interim responses (100, 102, 103) are not forwarded: the client never sent Expect
                // to the upstream, and early hints are of no use to an MCP client.
                Ok(Some(rh)) if (100..200).contains(&rh.status) => {
                    let n = rh.head_len.min(conn.buf.len());
                    conn.buf.drain(..n);
                    continue;
                }
                Ok(Some(rh)) => return Ok(rh),
                Ok(None) if conn.buf.len() >= mcpgate_codec::limits::MAX_HEAD_BYTES => {
                    return Err(ErrorKind::UpstreamMalformed(HttpError::HeadTooLarge).into())
                }
                Ok(None) => {}
                Err(e) => return Err(ErrorKind::UpstreamMalformed(e).into()),
            }
        }
        match read_more_until(&mut conn.stream, &mut conn.buf, slot, deadline).await {
            Ok(0) if !got_any => return Err(closed_empty()),
            Ok(0) => return Err(ErrorKind::UpstreamClosed.into()),
            Ok(_) => {}
            Err(ReadError::Timeout) => return Err(ErrorKind::UpstreamTimeout.into()),
            Err(ReadError::Io(e))
                if !got_any && e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                return Err(closed_empty())
            }
            Err(ReadError::Io(e)) => return Err(ErrorKind::UpstreamIo(e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mark_close;

    #[test]
    fn a_closing_answer_says_so_once() {
        let mut r = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".to_vec();
        mark_close(&mut r);
        assert_eq!(
            r,
            b"HTTP/1.1 202 Accepted\r\nconnection: close\r\ncontent-length: 0\r\n\r\n".to_vec()
        );
        let already = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n".to_vec();
        let mut same = already.clone();
        mark_close(&mut same);
        assert_eq!(same, already);
    }
}
