//! One request through the pipeline: the synchronous phases (`crate::pipeline`) around the two
//! I/O phases owned here, `forward` (request to a pooled upstream connection) and `relay` (the
//! answer back: JSON and other bodies passed through as read, event streams event by event).
//!
//! Rules kept here: a request whose bytes may have reached the upstream is never retried (a pooled
//! connection that fails before taking any byte is, once, on a fresh connection; an idempotent GET
//! or DELETE also when a pooled connection closes without answering); an upstream connection goes
//! back to the pool only when its response was read exactly to its end; an event stream is never
//! buffered beyond the event being assembled, and the client going away closes the upstream.

use std::net::SocketAddr;
use std::ops::Range;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use mcpgate_codec::http::{
    check_body_charset, check_body_len, encode_chunk, ChunkedDecoder, HttpError, RequestBody,
    RequestHead, ResponseBody, ResponseHead, LAST_CHUNK,
};
use mcpgate_codec::sse::SseParser;
use monoio::buf::IoBufMut;
use monoio::io::{
    AsyncWriteRent, CancelableAsyncReadRent, Canceller, OwnedReadHalf, OwnedWriteHalf,
};
use monoio::net::TcpStream;

use super::acl_io;
use super::io::{
    read_more, read_more_reserving, shrink_for_idle, write_all, write_all_within, write_range,
    ReadError, IDLE_STREAM_CHUNK, READ_CHUNK,
};
use super::observe_glue;
use super::upstream::{self, UpstreamConn};
use super::worker::Worker;
use crate::acl_phase::Relay;
use crate::config::{Config, Timeouts, Upstream};
use crate::errors::{write_error_response, GatewayError};
use crate::headers::{
    write_client_response, write_upstream_request, ClientFraming, UpstreamRequest,
};
use crate::pipeline::{Flow, HttpMethod, RequestCtx};
use crate::route;

type ClientRead = OwnedReadHalf<TcpStream>;
type ClientWrite = OwnedWriteHalf<TcpStream>;

/// Bodies up to this size are copied behind their head so both leave in one write; larger ones
/// are written from where they were read.
const COPY_BODY_MAX: usize = 16 * 1024;

/// A chunked JSON answer up to this size is kept decoded while relayed, when recording is on, to
/// learn its JSON-RPC error code (or tool failure); larger ones are relayed without a look.
const OBSERVE_SCAN_MAX: usize = 64 * 1024;

/// What the connection does after this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    KeepAlive,
    Close,
}

/// Why a request stopped early.
enum Failure {
    /// Nothing was sent to the client yet: answer with this error.
    Answer(GatewayError),
    /// Nothing was sent yet: write this complete response (built by a phase).
    Raw { response: Vec<u8>, close: bool },
    /// A response is partly sent, or the client is gone: close the connection.
    Abort,
}

impl From<GatewayError> for Failure {
    fn from(e: GatewayError) -> Self {
        Failure::Answer(e)
    }
}

/// A phase's verdict as the engine's control flow.
fn flow(f: Flow) -> Result<(), Failure> {
    match f {
        Flow::Continue => Ok(()),
        Flow::Respond(err) => Err(Failure::Answer(err)),
        Flow::RespondRaw { response, close } => Err(Failure::Raw { response, close }),
    }
}

impl From<HttpError> for Failure {
    fn from(e: HttpError) -> Self {
        Failure::Answer(GatewayError::Request(e))
    }
}

/// Where the request body is.
enum Body {
    /// `buf[range]`, as received (Content-Length framing).
    InBuf(Range<usize>),
    /// Decoded from chunked framing; forwarded with a Content-Length.
    Decoded(Vec<u8>),
}

struct Exchange<'a> {
    worker: &'a Rc<Worker>,
    rd: &'a mut ClientRead,
    wr: &'a mut ClientWrite,
    /// Client read buffer; starts with this request's head.
    buf: &'a mut Vec<u8>,
    out: &'a mut Vec<u8>,
    peer: SocketAddr,
    client_keep_alive: bool,
    http10: bool,
    /// End of this request in `buf` once its body is read (drained before the next request).
    request_end: Option<usize>,
}

/// Runs one request and writes its answer. The request's bytes are drained from `buf` (what
/// follows is the next pipelined request) unless the connection must close.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    worker: &Rc<Worker>,
    config: Arc<Config>,
    peer: SocketAddr,
    rd: &mut ClientRead,
    wr: &mut ClientWrite,
    buf: &mut Vec<u8>,
    head: RequestHead,
    out: &mut Vec<u8>,
) -> Outcome {
    let method = HttpMethod::from_bytes(head.method(buf));
    let mut ctx = RequestCtx::new(peer, config, method);
    // HTTP/1.0 clients get one response per connection (no keep-alive negotiation).
    let client_keep_alive = head.minor_version >= 1 && head.keep_alive(buf);
    let mut ex = Exchange {
        worker,
        rd,
        wr,
        buf,
        out,
        peer,
        client_keep_alive,
        http10: head.minor_version == 0,
        request_end: None,
    };
    let result = ex.run(&mut ctx, &head).await;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(Failure::Abort) => Outcome::Close,
        Err(Failure::Raw { response, close }) => {
            let close =
                close || ex.request_end.is_none() || !ex.client_keep_alive || worker.draining();
            ctx.local_answer = true;
            ctx.status = response
                .get(9..12)
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            ctx.bytes_to_client += response.len() as u64;
            observe_glue::note_raw_answer(worker, &mut ctx, &response);
            ex.out.clear();
            ex.out.extend_from_slice(&response);
            match write_all(ex.wr, ex.out).await {
                Ok(()) if !close => Outcome::KeepAlive,
                _ => Outcome::Close,
            }
        }
        Err(Failure::Answer(err)) => {
            let close = err.closes_connection()
                || ex.request_end.is_none()
                || !ex.client_keep_alive
                || worker.draining();
            ctx.status = err.status();
            ctx.local_answer = true;
            observe_glue::note_gateway_error(&mut ctx, &err);
            if err.status() >= 500 {
                let api = ctx.api().map_or("-", |a| a.name.as_str());
                crate::warn!("api {api}: {} {}: {err}", ctx.method.as_str(), err.status());
            }
            ex.out.clear();
            write_error_response(&err, ctx.id_raw(), close, ex.out);
            ctx.bytes_to_client += ex.out.len() as u64;
            match write_all(ex.wr, ex.out).await {
                Ok(()) if !close => Outcome::KeepAlive,
                _ => Outcome::Close,
            }
        }
    };
    worker.pipeline.borrow_mut().record(&ctx);
    observe_glue::record(worker, &mut ctx);
    if outcome == Outcome::KeepAlive {
        match ex.request_end {
            Some(end) if end <= ex.buf.len() => {
                ex.buf.drain(..end);
            }
            _ => return Outcome::Close,
        }
    }
    outcome
}

impl Exchange<'_> {
    async fn run(&mut self, ctx: &mut RequestCtx, head: &RequestHead) -> Result<Outcome, Failure> {
        let config = ctx.config.clone();
        let limits = &config.gateway.limits;
        let timeouts = &config.gateway.timeouts;
        let framing = head.body_framing(self.buf)?;

        // route
        let route_flow = match super::auth_io::well_known(ctx, self.buf, head).await {
            Some(answer) => answer,
            None => self.worker.pipeline.borrow_mut().route(ctx, self.buf, head),
        };
        if framing == RequestBody::None {
            // Nothing follows the head: an early answer still leaves the connection usable.
            self.request_end = Some(head.head_len);
        }
        flow(route_flow)?;
        if let RequestBody::Length(n) = framing {
            check_body_len(n, limits.max_body_bytes)?;
        }
        if framing != RequestBody::None {
            // A body is judged as UTF-8 JSON: one the upstream would decode otherwise is refused.
            check_body_charset(
                head.headers(self.buf)
                    .filter(|(name, _)| name.eq_ignore_ascii_case(b"content-type"))
                    .map(|(_, value)| value),
            )?;
        }
        // plan
        flow(self.worker.pipeline.borrow_mut().plan(ctx, self.buf, head))?;
        flow(super::auth_io::plan(ctx, self.buf, head).await)?;
        let body = self.read_body(head, framing, &config).await?;
        // inspect, decide
        {
            let body_bytes: &[u8] = match &body {
                Body::InBuf(r) => self.buf.get(r.clone()).unwrap_or_default(),
                Body::Decoded(v) => v,
            };
            let mut pipeline = self.worker.pipeline.borrow_mut();
            let message = pipeline.inspect(ctx, body_bytes);
            observe_glue::note_request(
                self.worker,
                ctx,
                self.buf,
                head,
                body_bytes,
                message.as_ref(),
            );
            flow(pipeline.decide(ctx, self.buf, head, body_bytes, message.as_ref()))?;
        }
        // The ACL may forward a batch without its refused elements.
        let body = match ctx.acl.as_mut().and_then(|a| a.rewritten_body.take()) {
            Some(forwarded) => Body::Decoded(forwarded),
            None => body,
        };
        let api = ctx
            .api
            .and_then(|i| config.apis.get(i))
            .ok_or(GatewayError::NotFound)?;

        // forward
        let mut target = Vec::with_capacity(64);
        route::rewrite_target(
            &api.path,
            &api.upstream.path,
            route::origin_form(head.target(self.buf)),
            &mut target,
        );
        // The upstream request is built in the connection's output buffer (no allocation per request).
        let mut request = std::mem::take(&mut *self.out);
        request.clear();
        let reframed_body_len = match &body {
            Body::Decoded(v) => Some(v.len()),
            Body::InBuf(_) => None,
        };
        write_upstream_request(
            self.buf,
            head,
            &UpstreamRequest {
                target: &target,
                host: &api.upstream.host_header,
                peer: self.peer,
                reframed_body_len,
                strip_headers: ctx
                    .api
                    .and_then(|i| config.auths.get(i))
                    .and_then(Option::as_ref)
                    .map_or(&[], |a| a.credential_headers.as_slice()),
                session_id: ctx.upstream_session.as_deref().map(str::as_bytes),
            },
            &mut request,
        );
        let separate_body = match body {
            Body::InBuf(r) if r.len() <= COPY_BODY_MAX => {
                request.extend_from_slice(self.buf.get(r).unwrap_or_default());
                None
            }
            Body::InBuf(r) => Some(r),
            Body::Decoded(v) => {
                request.extend_from_slice(&v);
                None
            }
        };
        let forwarded = self
            .forward(ctx, &api.upstream, timeouts, &mut request, separate_body)
            .await;
        *self.out = request;
        let (mut conn, response_head) = forwarded?;
        // The request is with the upstream; what follows it in `buf` is the next request.
        if let Some(end) = self.request_end.take() {
            if end <= self.buf.len() {
                self.buf.drain(..end);
            }
        }
        self.request_end = Some(0);

        // relay
        let rh = super::auth_io::rewrite_response_head(ctx, &mut conn.buf, response_head);
        observe_glue::note_response_head(ctx, &rh, &conn.buf);
        let method_bytes: &[u8] = match ctx.method {
            HttpMethod::Head => b"HEAD",
            _ => b"GET",
        };
        let rframing = rh
            .body_framing(&conn.buf, method_bytes)
            .map_err(GatewayError::UpstreamMalformed)?;
        let event_stream = (200..300).contains(&rh.status)
            && rframing != ResponseBody::None
            && rh
                .header(&conn.buf, "content-type")
                .is_some_and(is_event_stream);
        let upstream_keep_alive = rh.keep_alive(&conn.buf);
        ctx.status = rh.status;
        ctx.event_stream = event_stream;
        let close_client = !self.client_keep_alive || self.worker.draining();
        let cframing = match rframing {
            ResponseBody::None | ResponseBody::Length(_) => ClientFraming::AsIs,
            ResponseBody::Chunked | ResponseBody::CloseDelimited if self.http10 => {
                ClientFraming::Close
            }
            ResponseBody::Chunked | ResponseBody::CloseDelimited => ClientFraming::Chunked,
        };
        // The ACL may rewrite or drop events: the upstream's Content-Length no longer holds.
        let cframing = match cframing {
            ClientFraming::AsIs if event_stream && ctx.acl.is_some() && self.http10 => {
                ClientFraming::Close
            }
            ClientFraming::AsIs if event_stream && ctx.acl.is_some() => ClientFraming::Chunked,
            other => other,
        };
        if !event_stream && ctx.acl.as_ref().is_some_and(|a| a.rewrites_json()) {
            // The ACL filters a list answer or merges refusals: read it whole, then rewrite.
            let RequestCtx {
                acl,
                bytes_to_client,
                obs,
                ..
            } = ctx;
            let worker = self.worker;
            let reusable = match acl.as_deref_mut() {
                Some(acl) => acl_io::relay_rewritten_json(
                    acl,
                    &mut conn,
                    &rh,
                    rframing,
                    close_client,
                    limits.max_body_bytes,
                    timeouts.upstream_response_head,
                    &mut *self.wr,
                    self.out,
                    bytes_to_client,
                    |body| observe_glue::note_answer(worker, obs, body),
                )
                .await
                .map_err(|e| e.map_or(Failure::Abort, Failure::Answer))?,
                None => false,
            };
            if reusable && upstream_keep_alive {
                self.worker.pool.borrow_mut().put(
                    api.upstream.addr,
                    conn,
                    limits.upstream_pool_idle,
                );
            }
            return Ok(if close_client {
                Outcome::Close
            } else {
                Outcome::KeepAlive
            });
        }
        self.out.clear();
        write_client_response(
            &conn.buf,
            &rh,
            cframing,
            event_stream,
            close_client,
            self.out,
        );
        let head_len = rh.head_len.min(conn.buf.len());
        conn.buf.drain(..head_len);
        let reusable = if event_stream {
            self.relay_sse(ctx, &mut conn, rframing, cframing, timeouts)
                .await?
        } else {
            self.relay_body(ctx, &mut conn, rframing, cframing, timeouts)
                .await?
        };
        if reusable && upstream_keep_alive {
            self.worker
                .pool
                .borrow_mut()
                .put(api.upstream.addr, conn, limits.upstream_pool_idle);
        }
        Ok(if close_client || cframing == ClientFraming::Close {
            Outcome::Close
        } else {
            Outcome::KeepAlive
        })
    }

    /// Reads the whole request body (bounded by `max_body_bytes` and `client_body`), answering
    /// `Expect: 100-continue` first when the client waits for it.
    async fn read_body(
        &mut self,
        head: &RequestHead,
        framing: RequestBody,
        config: &Config,
    ) -> Result<Body, Failure> {
        let head_len = head.head_len;
        let max = config.gateway.limits.max_body_bytes;
        let deadline = Instant::now() + config.gateway.timeouts.client_body;
        if framing != RequestBody::None
            && self.buf.len() == head_len
            && head.expects_continue(self.buf)
        {
            self.out.clear();
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            write_all(self.wr, self.out)
                .await
                .map_err(|_| Failure::Abort)?;
        }
        match framing {
            RequestBody::None => {
                self.request_end = Some(head_len);
                Ok(Body::InBuf(head_len..head_len))
            }
            RequestBody::Length(n) => {
                let n = usize::try_from(n).map_err(|_| HttpError::BodyTooLarge)?;
                let end = head_len.saturating_add(n);
                if self.buf.capacity() < end {
                    self.buf.reserve(end - self.buf.len());
                }
                while self.buf.len() < end {
                    self.read_client(deadline).await?;
                }
                self.request_end = Some(end);
                Ok(Body::InBuf(head_len..end))
            }
            RequestBody::Chunked => {
                let mut decoder = ChunkedDecoder::with_max_body(max as u64);
                let mut decoded = Vec::new();
                let mut pos = head_len;
                loop {
                    let input = self.buf.get(pos..).unwrap_or_default();
                    let consumed = decoder.decode(input, |r| {
                        decoded.extend_from_slice(input.get(r).unwrap_or_default());
                    })?;
                    pos += consumed;
                    if decoder.is_done() {
                        break;
                    }
                    self.read_client(deadline).await?;
                }
                self.request_end = Some(pos);
                Ok(Body::Decoded(decoded))
            }
        }
    }

    async fn read_client(&mut self, deadline: Instant) -> Result<(), Failure> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match read_more(self.rd, self.buf, wait).await {
            Ok(0) | Err(ReadError::Io(_)) => Err(Failure::Abort),
            Ok(_) => Ok(()),
            Err(ReadError::Timeout) => Err(GatewayError::ClientBodyTimeout.into()),
        }
    }

    /// Sends the request upstream and reads the response head.
    async fn forward(
        &mut self,
        ctx: &RequestCtx,
        up: &Upstream,
        timeouts: &Timeouts,
        request: &mut Vec<u8>,
        separate_body: Option<Range<usize>>,
    ) -> Result<(UpstreamConn, ResponseHead), Failure> {
        let idempotent = matches!(
            ctx.method,
            HttpMethod::Get | HttpMethod::Delete | HttpMethod::Head
        );
        let mut retried = false;
        loop {
            let pooled = if retried {
                None
            } else {
                self.worker
                    .pool
                    .borrow_mut()
                    .take(up.addr, timeouts.upstream_idle)
            };
            let mut conn = match pooled {
                Some(conn) => conn,
                None => upstream::connect(&up.addrs, timeouts.upstream_connect).await?,
            };
            let may_retry = conn.reused && !retried;
            match send_request(&mut conn, request, self.buf, separate_body.clone()).await {
                Ok(()) => {}
                Err(SendError::NothingSent(_)) if may_retry => {
                    crate::debug!(
                        "pooled upstream connection refused the request; retrying on a new one"
                    );
                    retried = true;
                    continue;
                }
                Err(SendError::NothingSent(e) | SendError::Partial(e)) => {
                    return Err(GatewayError::UpstreamIo(e).into())
                }
            }
            match read_response_head(&mut conn, timeouts).await {
                Ok(rh) => return Ok((conn, rh)),
                Err(HeadError::ClosedEmpty) if may_retry && idempotent => {
                    retried = true;
                    continue;
                }
                Err(HeadError::ClosedEmpty) => return Err(GatewayError::UpstreamClosed.into()),
                Err(HeadError::Gateway(e)) => return Err(e.into()),
            }
        }
    }

    /// Relays a non-event-stream body as it arrives. Returns whether the upstream connection ended
    /// exactly at the end of the response (poolable).
    async fn relay_body(
        &mut self,
        ctx: &mut RequestCtx,
        conn: &mut UpstreamConn,
        rframing: ResponseBody,
        cframing: ClientFraming,
        timeouts: &Timeouts,
    ) -> Result<bool, Failure> {
        let idle = timeouts.upstream_response_head;
        let wr = &mut *self.wr;
        let out = &mut *self.out;
        match rframing {
            ResponseBody::None => {
                ctx.bytes_to_client += out.len() as u64;
                write_all_within(wr, out, idle)
                    .await
                    .map_err(|_| Failure::Abort)?;
                Ok(conn.buf.is_empty())
            }
            ResponseBody::Length(n) => {
                let initial = conn.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                let mut extra = conn.buf.len() > initial;
                if initial as u64 == n {
                    let body = conn.buf.get(..initial).unwrap_or_default();
                    observe_glue::note_body(self.worker, ctx, body);
                }
                ctx.bytes_to_client += out.len() as u64 + n;
                if initial <= COPY_BODY_MAX {
                    out.extend_from_slice(conn.buf.get(..initial).unwrap_or_default());
                    write_all_within(wr, out, idle)
                        .await
                        .map_err(|_| Failure::Abort)?;
                } else {
                    write_all_within(wr, out, idle)
                        .await
                        .map_err(|_| Failure::Abort)?;
                    write_range(wr, &mut conn.buf, 0..initial)
                        .await
                        .map_err(|_| Failure::Abort)?;
                }
                let mut remaining = n - initial as u64;
                conn.buf.clear();
                while remaining > 0 {
                    match read_more(&mut conn.stream, &mut conn.buf, idle).await {
                        Ok(0) | Err(_) => return Err(Failure::Abort),
                        Ok(_) => {}
                    }
                    let take = conn
                        .buf
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    write_range(wr, &mut conn.buf, 0..take)
                        .await
                        .map_err(|_| Failure::Abort)?;
                    remaining -= take as u64;
                    extra |= conn.buf.len() > take;
                    conn.buf.clear();
                }
                Ok(!extra)
            }
            ResponseBody::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut head_pending = true;
                // With recording on, a small body is kept decoded so the record learns whether
                // the answer was an error; past the bound it is not kept (errors are small).
                let mut seen: Option<Vec<u8>> = ctx.obs.on.then(Vec::new);
                let keep = |seen: &mut Option<Vec<u8>>, bytes: &[u8]| {
                    if let Some(v) = seen {
                        if v.len() + bytes.len() <= OBSERVE_SCAN_MAX {
                            v.extend_from_slice(bytes);
                        } else {
                            *seen = None;
                        }
                    }
                };
                loop {
                    if !head_pending {
                        out.clear();
                    }
                    let consumed = match cframing {
                        // Chunked to chunked: the decoder only finds the end; bytes pass verbatim.
                        ClientFraming::Chunked | ClientFraming::AsIs => {
                            let input = &conn.buf;
                            let c = decoder
                                .decode(input, |r| {
                                    keep(&mut seen, input.get(r).unwrap_or_default())
                                })
                                .map_err(|_| Failure::Abort)?;
                            out.extend_from_slice(conn.buf.get(..c).unwrap_or_default());
                            c
                        }
                        ClientFraming::Close => {
                            let input = &conn.buf;
                            decoder
                                .decode(input, |r| {
                                    let bytes = input.get(r).unwrap_or_default();
                                    keep(&mut seen, bytes);
                                    out.extend_from_slice(bytes)
                                })
                                .map_err(|_| Failure::Abort)?
                        }
                    };
                    conn.buf.drain(..consumed.min(conn.buf.len()));
                    if !out.is_empty() {
                        ctx.bytes_to_client += out.len() as u64;
                        write_all_within(wr, out, idle)
                            .await
                            .map_err(|_| Failure::Abort)?;
                    }
                    head_pending = false;
                    if decoder.is_done() {
                        if let Some(body) = seen {
                            observe_glue::note_body(self.worker, ctx, &body);
                        }
                        return Ok(conn.buf.is_empty());
                    }
                    match read_more(&mut conn.stream, &mut conn.buf, idle).await {
                        Ok(0) | Err(_) => return Err(Failure::Abort),
                        Ok(_) => {}
                    }
                }
            }
            ResponseBody::CloseDelimited => {
                loop {
                    match cframing {
                        ClientFraming::Chunked => encode_chunk(&conn.buf, out),
                        _ => out.extend_from_slice(&conn.buf),
                    }
                    conn.buf.clear();
                    if !out.is_empty() {
                        ctx.bytes_to_client += out.len() as u64;
                        write_all_within(wr, out, idle)
                            .await
                            .map_err(|_| Failure::Abort)?;
                    }
                    match read_more(&mut conn.stream, &mut conn.buf, idle).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(_) => return Err(Failure::Abort),
                    }
                }
                if cframing == ClientFraming::Chunked {
                    out.extend_from_slice(LAST_CHUNK);
                    write_all_within(wr, out, idle)
                        .await
                        .map_err(|_| Failure::Abort)?;
                }
                Ok(false)
            }
        }
    }

    /// Relays an event stream: every complete event is written the moment it is complete (events
    /// already read together leave in one write). `sse_idle` bounds the silence between reads;
    /// it ends the stream cleanly. The client's side is watched: its disconnect ends the relay and
    /// drops the upstream connection. A GET stream also ends cleanly when the gateway drains.
    async fn relay_sse(
        &mut self,
        ctx: &mut RequestCtx,
        conn: &mut UpstreamConn,
        rframing: ResponseBody,
        cframing: ClientFraming,
        timeouts: &Timeouts,
    ) -> Result<bool, Failure> {
        let Exchange {
            worker,
            rd,
            wr,
            buf,
            out,
            ..
        } = self;
        let idle = timeouts.sse_idle;
        let end_on_drain = ctx.method == HttpMethod::Get;
        let mut parser = SseParser::new();
        let mut decoder = ChunkedDecoder::new();
        let mut remaining = match rframing {
            ResponseBody::Length(n) => n,
            _ => u64::MAX,
        };
        // A GET stream is long-lived and mostly quiet: its buffers start small and grow on demand.
        let read_chunk = if end_on_drain {
            IDLE_STREAM_CHUNK
        } else {
            READ_CHUNK
        };
        let mut events: Vec<u8> = Vec::with_capacity(if end_on_drain { 0 } else { 4096 });
        let mut rewritten: Vec<u8> = Vec::new();
        let config = ctx.config.clone();
        let api = ctx.api.and_then(|i| config.apis.get(i));
        // With an ACL every event is judged (list answers filtered, server→client messages).
        let mut acl = ctx.acl.take();
        let mut acl_classifier = acl
            .as_ref()
            .map(|_| mcpgate_codec::jsonrpc::Classifier::new());
        let mut acl_rewritten: Vec<u8> = Vec::new();
        if let Some(a) = acl.as_deref_mut() {
            // Refusals of a batch's elements lead the stream of its answers.
            a.injected_events(&mut acl_rewritten);
            match cframing {
                ClientFraming::Chunked => encode_chunk(&acl_rewritten, out),
                _ => out.extend_from_slice(&acl_rewritten),
            }
        }
        let _open_stream = observe_glue::sse_guard(worker);
        // The head leaves with the first pass of the loop below, before any read waits: the client
        // knows the stream is open before the first event, and events that came with the
        // upstream's head share its write (one packet, one wake-up of the client, not two).
        let mut head_sent = false;
        // Set once the terminal chunk left with the last events (one write, not two).
        let mut terminated = false;

        // Watch the client with a cancelable read appending to its buffer (pipelined bytes are kept).
        let mut client_buf = std::mem::take(&mut **buf);
        if end_on_drain {
            // Only a close or pipelined bytes are expected here (the first pipelined byte ends
            // the watch and keeps what was read); the next request regrows it.
            shrink_for_idle(&mut client_buf, 128);
        }
        if client_buf.capacity() == client_buf.len() {
            client_buf.reserve(if end_on_drain { 128 } else { 1024 });
        }
        let (len, cap) = (client_buf.len(), client_buf.capacity());
        let canceller = Canceller::new();
        let mut watch =
            pin!(rd.cancelable_read(client_buf.slice_mut(len..cap), canceller.handle()));
        let mut watching = true;
        let mut returned: Option<Vec<u8>> = None;
        let mut client_gone = false;

        let result: Result<bool, Failure> = 'relay: loop {
            let mut upstream_done = false;
            match rframing {
                ResponseBody::Chunked => {
                    let input = &conn.buf;
                    match decoder.decode(input, |r| {
                        events.extend_from_slice(input.get(r).unwrap_or_default())
                    }) {
                        Ok(c) => {
                            conn.buf.drain(..c.min(conn.buf.len()));
                            upstream_done = decoder.is_done();
                        }
                        Err(_) => break Err(Failure::Abort),
                    }
                }
                ResponseBody::Length(_) => {
                    let take = conn
                        .buf
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    events.extend_from_slice(conn.buf.get(..take).unwrap_or_default());
                    conn.buf.drain(..take);
                    remaining -= take as u64;
                    upstream_done = remaining == 0;
                }
                ResponseBody::CloseDelimited | ResponseBody::None => {
                    events.extend_from_slice(&conn.buf);
                    conn.buf.clear();
                }
            }
            let mut pos = 0;
            let mut broken = false;
            loop {
                let rest = events.get(pos..).unwrap_or_default();
                match parser.next_event(rest) {
                    Ok(Some((event, consumed))) => {
                        let mut raw = event.raw_bytes(rest);
                        // Legacy HTTP+SSE: the POST endpoint must point at the gateway.
                        if event.event_type(rest) == Some(b"endpoint") {
                            let data = mcpgate_codec::sse::event_data(&event, rest);
                            if let Some(url) = api.and_then(|a| {
                                route::rewrite_endpoint(&a.path, &a.upstream.path, data)
                            }) {
                                rewritten.clear();
                                mcpgate_codec::sse::write_event(
                                    &mut rewritten,
                                    Some(b"endpoint"),
                                    event.id_value(rest),
                                    event.retry,
                                    &url,
                                );
                                raw = &rewritten;
                            }
                        }
                        let mut relayed = true;
                        // Only `message` events carry JSON-RPC (clients ignore other types).
                        let is_message = matches!(event.event_type(rest), None | Some(b"message"));
                        if let (Some(a), Some(classifier), true) =
                            (acl.as_deref_mut(), acl_classifier.as_mut(), is_message)
                        {
                            if !event.is_comment_only {
                                let data = mcpgate_codec::sse::event_data(&event, rest);
                                let verdict = a.judge_event(data, classifier);
                                if let (Some(answer), Some(api)) = (verdict.answer_upstream, api) {
                                    acl_io::answer_upstream(
                                        &api.upstream,
                                        a,
                                        answer,
                                        timeouts.upstream_connect,
                                    );
                                }
                                match verdict.relay {
                                    Relay::Forward => {}
                                    Relay::Replace(data) => {
                                        acl_rewritten.clear();
                                        mcpgate_codec::sse::write_event(
                                            &mut acl_rewritten,
                                            event.event_type(rest),
                                            event.id_value(rest),
                                            event.retry,
                                            &data,
                                        );
                                        raw = &acl_rewritten;
                                    }
                                    Relay::Drop => relayed = false,
                                }
                            }
                        }
                        // Recorded once judged: a refused server→client message carries its decision.
                        if ctx.obs.on {
                            let data = mcpgate_codec::sse::event_data(&event, rest);
                            let upstream_raw = event.raw_bytes(rest);
                            observe_glue::note_sse_event(
                                worker,
                                ctx,
                                data,
                                upstream_raw,
                                acl.as_deref(),
                            );
                        }
                        if !relayed {
                            pos += consumed;
                            continue;
                        }
                        match cframing {
                            ClientFraming::Chunked => encode_chunk(raw, out),
                            _ => out.extend_from_slice(raw),
                        }
                        pos += consumed;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        crate::warn!("upstream event stream refused: {e}");
                        broken = true;
                        break;
                    }
                }
            }
            events.drain(..pos.min(events.len()));
            if upstream_done && !broken && cframing == ClientFraming::Chunked {
                out.extend_from_slice(LAST_CHUNK);
                terminated = true;
            }
            if !out.is_empty() {
                ctx.bytes_to_client += out.len() as u64;
                if write_all_within(&mut **wr, out, idle).await.is_err() {
                    client_gone = true;
                    break Err(Failure::Abort);
                }
            }
            if !head_sent {
                head_sent = true;
                if end_on_drain {
                    shrink_for_idle(out, 0);
                    shrink_for_idle(&mut conn.buf, IDLE_STREAM_CHUNK);
                }
            }
            if broken {
                break Err(Failure::Abort);
            }
            if upstream_done {
                break Ok(conn.buf.is_empty() && events.is_empty());
            }

            let read = pin!(read_more_reserving(
                &mut conn.stream,
                &mut conn.buf,
                idle,
                read_chunk
            ));
            let mut read = read;
            let drain = pin!(wait_for_drain(worker, end_on_drain));
            let res = monoio::select! {
                r = &mut read => r,
                w = &mut watch, if watching => {
                    watching = false;
                    let (res, slice) = w;
                    returned = Some(slice.into_inner());
                    match res {
                        // Pipelined bytes: keep them for after the stream, stop watching.
                        Ok(n) if n > 0 => read.await,
                        _ => {
                            client_gone = true;
                            break 'relay Err(Failure::Abort);
                        }
                    }
                },
                _ = drain => {
                    break 'relay Ok(false);
                },
            };
            match res {
                Ok(0) if rframing == ResponseBody::CloseDelimited => {
                    // The remaining complete events were written above; a torn one is dropped.
                    break Ok(false);
                }
                Ok(0) => break Err(Failure::Abort),
                Ok(_) => {}
                Err(ReadError::Timeout) => {
                    crate::debug!("event stream idle for {idle:?}; ending it");
                    break Ok(false);
                }
                Err(ReadError::Io(_)) => break Err(Failure::Abort),
            }
        };

        if watching {
            let _ = canceller.cancel();
            let (res, slice) = watch.await;
            returned = Some(slice.into_inner());
            if matches!(res, Ok(0)) {
                client_gone = true;
            }
        }
        **buf = returned.unwrap_or_default();
        ctx.acl = acl;
        let reusable = result?;
        if client_gone {
            return Err(Failure::Abort);
        }
        if cframing == ClientFraming::Chunked && !terminated {
            out.clear();
            out.extend_from_slice(LAST_CHUNK);
            write_all(&mut **wr, out)
                .await
                .map_err(|_| Failure::Abort)?;
        }
        Ok(reusable)
    }
}

fn is_event_stream(content_type: &[u8]) -> bool {
    const SSE: &[u8] = b"text/event-stream";
    let trimmed = content_type.trim_ascii_start();
    trimmed.len() >= SSE.len()
        && trimmed[..SSE.len()].eq_ignore_ascii_case(SSE)
        && matches!(trimmed.get(SSE.len()), None | Some(b';' | b' ' | b'\t'))
}

async fn wait_for_drain(worker: &Worker, enabled: bool) {
    if !enabled {
        std::future::pending::<()>().await;
    }
    // Event-driven: a per-stream poll timer would wake every idle stream ten times a second.
    worker.drained().await;
}

enum SendError {
    /// The first write failed: the upstream received nothing of this request.
    NothingSent(std::io::Error),
    /// Some bytes may have reached the upstream: never retry.
    Partial(std::io::Error),
}

async fn send_request(
    conn: &mut UpstreamConn,
    request: &mut Vec<u8>,
    client_buf: &mut Vec<u8>,
    separate_body: Option<Range<usize>>,
) -> Result<(), SendError> {
    let owned = std::mem::take(request);
    let total = owned.len();
    let (res, owned) = conn.stream.write(owned).await;
    *request = owned;
    let written = match res {
        Ok(0) => return Err(SendError::NothingSent(std::io::ErrorKind::WriteZero.into())),
        Ok(n) => n,
        Err(e) => return Err(SendError::NothingSent(e)),
    };
    if written < total {
        // `write_range` hands the buffer back intact, so a retry could still use it; none happens
        // past this point anyway.
        write_range(&mut conn.stream, request, written..total)
            .await
            .map_err(SendError::Partial)?;
    }
    if let Some(range) = separate_body {
        write_range(&mut conn.stream, client_buf, range)
            .await
            .map_err(SendError::Partial)?;
    }
    Ok(())
}

enum HeadError {
    /// The upstream closed (or reset) before sending one byte of a response.
    ClosedEmpty,
    Gateway(GatewayError),
}

async fn read_response_head(
    conn: &mut UpstreamConn,
    timeouts: &Timeouts,
) -> Result<ResponseHead, HeadError> {
    let deadline = Instant::now() + timeouts.upstream_response_head;
    let mut got_any = false;
    loop {
        if !conn.buf.is_empty() {
            got_any = true;
            match ResponseHead::parse(&conn.buf) {
                Ok(Some(rh)) if rh.status == 101 => {
                    return Err(HeadError::Gateway(GatewayError::UpstreamMalformed(
                        HttpError::Malformed("unexpected protocol switch"),
                    )))
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
                    return Err(HeadError::Gateway(GatewayError::UpstreamMalformed(
                        HttpError::HeadTooLarge,
                    )))
                }
                Ok(None) => {}
                Err(e) => return Err(HeadError::Gateway(GatewayError::UpstreamMalformed(e))),
            }
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match read_more(&mut conn.stream, &mut conn.buf, wait).await {
            Ok(0) if !got_any => return Err(HeadError::ClosedEmpty),
            Ok(0) => return Err(HeadError::Gateway(GatewayError::UpstreamClosed)),
            Ok(_) => {}
            Err(ReadError::Timeout) => {
                return Err(HeadError::Gateway(GatewayError::UpstreamTimeout))
            }
            Err(ReadError::Io(e))
                if !got_any && e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                return Err(HeadError::ClosedEmpty)
            }
            Err(ReadError::Io(e)) => return Err(HeadError::Gateway(GatewayError::UpstreamIo(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_event_stream;

    #[test]
    fn event_stream_content_types() {
        assert!(is_event_stream(b"text/event-stream"));
        assert!(is_event_stream(b"Text/Event-Stream; charset=utf-8"));
        assert!(!is_event_stream(b"text/event-streamx"));
        assert!(!is_event_stream(b"application/json"));
        assert!(!is_event_stream(b""));
    }
}
