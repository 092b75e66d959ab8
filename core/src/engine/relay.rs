//! The response side's I/O: the upstream's answer relayed to the client through the
//! response-side phases, in one of three ways —
//!
//! - **buffered** (a feature's `buffers_body` asked, e.g. the ACL judging a JSON answer): read
//!   whole (bounded by `max_body_bytes`, 502 past it), passed through the `body_filter` chain,
//!   sent with a fresh `Content-Length` — written from where it was read when no filter changed
//!   it, so the only copy of an answer is a filter's own rewrite;
//! - **event stream** (`super::sse`): event by event through the `event_filter` chain; a GET
//!   stream is handed back ([`Relayed::Stream`]) once its head has left, to be relayed on the
//!   connection's small task ([`finish_stream`]);
//! - **pass-through** (everything else): bytes relayed as they arrive, the framing re-declared
//!   for the client, a small body kept for `body_seen` when a feature wants it.
//!
//! A failure before the first byte reached the client is answered as an error (502/504 with the
//! request's JSON-RPC id); after it, the client connection is closed.

use std::borrow::Cow;
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;

use mcpgate_codec::http::{
    encode_chunk, ChunkedDecoder, HeadWriter, HttpError, ResponseBody, ResponseHead, LAST_CHUNK,
};
use monoio::buf::VecBuf;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};

use super::client::{Client, ClientRead, Outcome};
use super::deadlines::Deadline;
use super::io::{read_more_by, write_all_by, write_range_by};
use super::sse;
use super::upstream::UpstreamConn;
use super::worker::Worker;
use crate::context::{HttpMethod, RequestCtx};
use crate::errors::{insert_header, write_response, Error, ErrorKind};
use crate::headers::{write_client_response, ClientFraming};
use crate::phases::{BufferedAnswer, Pipeline};

/// A rewritten body up to this size is copied behind its head (one plain write); larger ones
/// leave with it in one vectored write instead.
const SMALL_BODY: usize = 4096;
/// Bodies up to this size are copied behind their head so both leave in one write; larger ones
/// are written from where they were read.
const COPY_BODY_MAX: usize = 16 * 1024;
/// A pass-through answer up to this size is kept (decoded) while relayed when a feature wants to
/// see it (`body_seen`); larger ones are relayed without a look.
const SEEN_BODY_MAX: usize = 64 * 1024;

fn upstream_bad(what: &'static str) -> Error {
    ErrorKind::UpstreamMalformed(HttpError::Malformed(what)).into()
}

fn client_gone(e: std::io::Error) -> Error {
    ErrorKind::ClientGone(e).into()
}

/// How [`relay`] left the answer.
pub enum Relayed {
    /// Relayed whole; what the client connection does next.
    Done(Outcome),
    /// A long-lived event stream whose head (and first events) left: the rest is relayed by
    /// [`finish_stream`] outside the request's exchange.
    Stream(Box<sse::Stream>),
}

/// Relays the upstream's answer (its head read into `conn.buf`) to the client; says what the
/// client connection does next.
pub async fn relay<R, W>(
    client: &mut Client<'_, R, W>,
    worker: &Rc<Worker>,
    (mut conn, rh): (UpstreamConn, ResponseHead),
    ctx: &mut RequestCtx,
    pipeline: &Pipeline,
) -> Result<Relayed, Error>
where
    R: ClientRead,
    W: AsyncWriteRent,
{
    let snapshot = Rc::clone(&ctx.snapshot);
    let gateway = &snapshot.config.gateway;
    let Some(pool_key) = ctx.api().map(|a| a.upstream.pool_key()) else {
        return Ok(Relayed::Done(Outcome::Close));
    };
    let method_bytes: &[u8] = match ctx.method {
        HttpMethod::Head => b"HEAD",
        _ => b"GET",
    };
    let rframing = rh
        .body_framing(&conn.buf, method_bytes)
        .map_err(ErrorKind::UpstreamMalformed)?;
    let event_stream = (200..300).contains(&rh.status)
        && rframing != ResponseBody::None
        && rh
            .header(&conn.buf, "content-type")
            .is_some_and(is_event_stream);
    let upstream_keep_alive = rh.keep_alive(&conn.buf);
    ctx.status = rh.status;
    ctx.event_stream = event_stream;
    let close_client = !client.keep_alive || worker.draining();
    let cframing = match rframing {
        // Event filters may rewrite or drop events: an upstream length no longer holds.
        ResponseBody::Length(_) if event_stream && client.http10 => ClientFraming::Close,
        ResponseBody::Length(_) if event_stream => ClientFraming::Chunked,
        ResponseBody::None | ResponseBody::Length(_) => ClientFraming::AsIs,
        ResponseBody::Chunked | ResponseBody::CloseDelimited if client.http10 => {
            ClientFraming::Close
        }
        ResponseBody::Chunked | ResponseBody::CloseDelimited => ClientFraming::Chunked,
    };
    // Reads wait for the upstream (`upstream_response_head` between reads), writes for the
    // client (`client_write`): a client that stops reading is cut off, not waited for.
    let idle = gateway.timeouts.upstream_response_head;
    let write_limit = gateway.timeouts.client_write;
    let reusable = if !event_stream && pipeline.buffers_body(ctx, rh.status) {
        let buffered = BufferedRelay {
            conn: &mut conn,
            rh: &rh,
            framing: rframing,
            close_client,
            max_body: gateway.limits.max_body_bytes,
            idle,
            write_limit,
        };
        buffered.run(client, ctx, pipeline).await?
    } else {
        client.out.clear();
        write_client_response(
            &conn.buf,
            &rh,
            cframing,
            event_stream,
            close_client,
            &ctx.request_id.text(),
            client.out,
        );
        let head_len = rh.head_len.min(conn.buf.len());
        conn.buf.drain(..head_len);
        if event_stream {
            let spec = sse::StreamSpec {
                rframing,
                cframing,
                pool_key,
                upstream_keep_alive,
                close_client,
            };
            let mut stream = Box::new(sse::Stream::new(
                worker, ctx, pipeline, conn, spec, client.out,
            ));
            if stream.long_lived() {
                // The head leaves here, where a failure can still be answered as an error.
                let timeouts = &gateway.timeouts;
                stream
                    .pass(client.wr, client.out, ctx, pipeline, timeouts)
                    .await?;
                if !stream.ended() {
                    return Ok(Relayed::Stream(stream));
                }
            }
            let rw = (&mut *client.rd, &mut *client.wr);
            return finish_stream(worker, stream, rw, client.buf, client.out, ctx, pipeline)
                .await
                .map(Relayed::Done);
        } else {
            let limits = (idle, write_limit);
            pass_through(client, ctx, pipeline, &mut conn, rframing, cframing, limits).await?
        }
    };
    if reusable && upstream_keep_alive {
        worker
            .pool
            .borrow_mut()
            .put(pool_key, conn, gateway.limits.upstream_pool_idle);
    }
    Ok(Relayed::Done(next(close_client, cframing)))
}

/// What the client connection does after an answer.
fn next(close_client: bool, cframing: ClientFraming) -> Outcome {
    if close_client || cframing == ClientFraming::Close {
        Outcome::Close
    } else {
        Outcome::KeepAlive
    }
}

/// Relays an event stream to its end, pools its upstream connection when it ended exactly,
/// and says what the client connection does next.
pub async fn finish_stream<R, W>(
    worker: &Worker,
    mut stream: Box<sse::Stream>,
    rw: (&mut R, &mut W),
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
    ctx: &mut RequestCtx,
    pipeline: &Pipeline,
) -> Result<Outcome, Error>
where
    R: ClientRead,
    W: AsyncWriteRent,
{
    let reusable = stream.run(worker, rw, buf, out, ctx, pipeline).await?;
    let outcome = next(stream.close_client, stream.cframing());
    if reusable && stream.upstream_keep_alive {
        let max_idle = ctx.config().gateway.limits.upstream_pool_idle;
        let key = stream.pool_key;
        worker
            .pool
            .borrow_mut()
            .put(key, stream.into_conn(), max_idle);
    }
    Ok(outcome)
}

pub fn is_event_stream(content_type: &[u8]) -> bool {
    const SSE: &[u8] = b"text/event-stream";
    let trimmed = content_type.trim_ascii_start();
    trimmed.len() >= SSE.len()
        && trimmed[..SSE.len()].eq_ignore_ascii_case(SSE)
        && matches!(trimmed.get(SSE.len()), None | Some(b';' | b' ' | b'\t'))
}

/// Where a buffered response body is: in place after the head in `conn.buf` (Content-Length
/// and close-delimited framing: no copy), or decoded from chunked framing.
enum Buffered {
    InConn(Range<usize>),
    Decoded(Vec<u8>),
}

/// A non-stream answer read whole, filtered, sent with its own length.
struct BufferedRelay<'r> {
    conn: &'r mut UpstreamConn,
    rh: &'r mcpgate_codec::http::ResponseHead,
    framing: ResponseBody,
    close_client: bool,
    max_body: usize,
    idle: Duration,
    write_limit: Duration,
}

impl BufferedRelay<'_> {
    /// Returns whether the upstream connection may be pooled (its buffer is then empty).
    async fn run<R, W>(
        self,
        client: &mut Client<'_, R, W>,
        ctx: &mut RequestCtx,
        pipeline: &Pipeline,
    ) -> Result<bool, Error>
    where
        R: ClientRead,
        W: AsyncWriteRent,
    {
        let BufferedRelay {
            conn,
            rh,
            framing,
            close_client,
            max_body,
            idle,
            write_limit,
        } = self;
        let head_len = rh.head_len.min(conn.buf.len());
        let slot = client.deadline;
        let (buffered, exact) =
            read_whole_body(conn, head_len, framing, max_body, (slot, idle)).await?;
        let original: &[u8] = match &buffered {
            Buffered::InConn(r) => conn.buf.get(r.clone()).unwrap_or_default(),
            Buffered::Decoded(v) => v,
        };
        let mut answer = BufferedAnswer {
            status: rh.status,
            body: Cow::Borrowed(original),
            gateway_answers: false,
        };
        pipeline.body_filter(ctx, &mut answer)?;
        let request_id = ctx.request_id.text();
        let out = &mut *client.out;
        out.clear();
        if answer.gateway_answers {
            write_response(
                answer.status,
                "application/json",
                &answer.body,
                close_client,
                out,
            );
            insert_header(out, crate::request_id::HEADER, &request_id);
        } else {
            let len = answer.body.len().to_string();
            let mut writer = HeadWriter::response(&conn.buf, rh).remove_hop_by_hop();
            writer.set_mut("x-request-id", &request_id);
            if rh.status != 204 {
                // RFC 9110 §8.6: a 204 carries no Content-Length.
                writer.set_mut("content-length", len.as_bytes());
            }
            if close_client {
                writer.set_mut("connection", b"close");
            }
            writer.write(out);
        }
        // What is left to write after the head, and where it is.
        let rest = match (answer.gateway_answers, answer.body) {
            (true, _) => Buffered::Decoded(Vec::new()),
            (false, Cow::Owned(rewritten)) => Buffered::Decoded(rewritten),
            (false, Cow::Borrowed(_)) => buffered,
        };
        let rest_len = match &rest {
            Buffered::InConn(r) => r.len(),
            Buffered::Decoded(v) => v.len(),
        };
        ctx.bytes_to_client += (out.len() + rest_len) as u64;
        ctx.response_started = true;
        match rest {
            Buffered::Decoded(v) if v.len() <= SMALL_BODY => {
                out.extend_from_slice(&v);
                write_all_by(client.wr, out, slot, write_limit)
                    .await
                    .map_err(client_gone)?;
            }
            Buffered::Decoded(v) => {
                // Head and body in one vectored write; the head buffer comes back for the next
                // request.
                let head = std::mem::take(out);
                let parts = VecBuf::from(vec![head, v]);
                let written =
                    monoio::time::timeout(write_limit, client.wr.write_vectored_all(parts)).await;
                let Ok((res, parts)) = written else {
                    return Err(client_gone(std::io::ErrorKind::TimedOut.into()));
                };
                if let Some(mut head) = Vec::<Vec<u8>>::from(parts).into_iter().next() {
                    head.clear();
                    *out = head;
                }
                res.map_err(client_gone)?;
            }
            Buffered::InConn(r) if r.len() <= COPY_BODY_MAX => {
                out.extend_from_slice(conn.buf.get(r).unwrap_or_default());
                write_all_by(client.wr, out, slot, write_limit)
                    .await
                    .map_err(client_gone)?;
            }
            Buffered::InConn(r) => {
                write_all_by(client.wr, out, slot, write_limit)
                    .await
                    .map_err(client_gone)?;
                write_range_by(client.wr, &mut conn.buf, r, slot, write_limit)
                    .await
                    .map_err(client_gone)?;
            }
        }
        conn.buf.clear();
        Ok(exact)
    }
}

/// Reads the whole response body; the head (`head_len` bytes) stays at the start of `conn.buf`.
/// Returns where the body is and whether the connection ended exactly at the end of the response.
async fn read_whole_body(
    conn: &mut UpstreamConn,
    head_len: usize,
    framing: ResponseBody,
    max: usize,
    (slot, idle): (&Deadline, Duration),
) -> Result<(Buffered, bool), Error> {
    let too_large = || Error::from(ErrorKind::UpstreamMalformed(HttpError::BodyTooLarge));
    let closed = || Error::from(ErrorKind::UpstreamClosed);
    match framing {
        ResponseBody::None => Ok((
            Buffered::InConn(head_len..head_len),
            conn.buf.len() == head_len,
        )),
        ResponseBody::Length(n) => {
            let n = usize::try_from(n).map_err(|_| too_large())?;
            if n > max {
                return Err(too_large());
            }
            let end = head_len + n;
            if conn.buf.capacity() < end {
                conn.buf.reserve(end - conn.buf.len());
            }
            while conn.buf.len() < end {
                match read_more_by(&mut conn.stream, &mut conn.buf, slot, idle).await {
                    Ok(0) | Err(_) => return Err(closed()),
                    Ok(_) => {}
                }
            }
            Ok((Buffered::InConn(head_len..end), conn.buf.len() == end))
        }
        ResponseBody::Chunked => {
            let mut decoder = ChunkedDecoder::with_max_body(max as u64);
            let mut body = Vec::new();
            let mut pos = head_len;
            loop {
                let input = conn.buf.get(pos..).unwrap_or_default();
                let consumed = decoder
                    .decode(input, |r| {
                        body.extend_from_slice(input.get(r).unwrap_or_default())
                    })
                    .map_err(|e| match e {
                        HttpError::BodyTooLarge => too_large(),
                        _ => upstream_bad("bad chunked framing"),
                    })?;
                pos += consumed;
                if decoder.is_done() {
                    return Ok((Buffered::Decoded(body), conn.buf.len() == pos));
                }
                match read_more_by(&mut conn.stream, &mut conn.buf, slot, idle).await {
                    Ok(0) | Err(_) => return Err(closed()),
                    Ok(_) => {}
                }
            }
        }
        ResponseBody::CloseDelimited => loop {
            if conn.buf.len() - head_len.min(conn.buf.len()) > max {
                return Err(too_large());
            }
            match read_more_by(&mut conn.stream, &mut conn.buf, slot, idle).await {
                Ok(0) => return Ok((Buffered::InConn(head_len..conn.buf.len()), false)),
                Ok(_) => {}
                Err(_) => return Err(closed()),
            }
        },
    }
}

/// Relays a non-event-stream body as it arrives (the client head is already in `client.out`).
/// Returns whether the upstream connection ended exactly at the end of the response (poolable).
async fn pass_through<R, W>(
    client: &mut Client<'_, R, W>,
    ctx: &mut RequestCtx,
    pipeline: &Pipeline,
    conn: &mut UpstreamConn,
    rframing: ResponseBody,
    cframing: ClientFraming,
    (idle, write_limit): (Duration, Duration),
) -> Result<bool, Error>
where
    R: ClientRead,
    W: AsyncWriteRent,
{
    let wr = &mut *client.wr;
    let out = &mut *client.out;
    let slot = client.deadline;
    let mid_body = |_| Error::from(ErrorKind::UpstreamClosed);
    match rframing {
        ResponseBody::None => {
            ctx.bytes_to_client += out.len() as u64;
            ctx.response_started = true;
            write_all_by(wr, out, slot, write_limit)
                .await
                .map_err(client_gone)?;
            Ok(conn.buf.is_empty())
        }
        ResponseBody::Length(n) => {
            let initial = conn.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            let mut extra = conn.buf.len() > initial;
            if initial as u64 == n && pipeline.sees_body(ctx) {
                let body = conn.buf.get(..initial).unwrap_or_default();
                pipeline.body_seen(ctx, body);
            }
            ctx.bytes_to_client += out.len() as u64 + n;
            ctx.response_started = true;
            if initial <= COPY_BODY_MAX {
                out.extend_from_slice(conn.buf.get(..initial).unwrap_or_default());
                write_all_by(wr, out, slot, write_limit)
                    .await
                    .map_err(client_gone)?;
            } else {
                write_all_by(wr, out, slot, write_limit)
                    .await
                    .map_err(client_gone)?;
                write_range_by(wr, &mut conn.buf, 0..initial, slot, write_limit)
                    .await
                    .map_err(client_gone)?;
            }
            let mut remaining = n - initial as u64;
            conn.buf.clear();
            while remaining > 0 {
                match read_more_by(&mut conn.stream, &mut conn.buf, slot, idle).await {
                    Ok(0) => return Err(ErrorKind::UpstreamClosed.into()),
                    Err(e) => return Err(mid_body(e)),
                    Ok(_) => {}
                }
                let take = conn
                    .buf
                    .len()
                    .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                write_range_by(wr, &mut conn.buf, 0..take, slot, write_limit)
                    .await
                    .map_err(client_gone)?;
                remaining -= take as u64;
                extra |= conn.buf.len() > take;
                conn.buf.clear();
            }
            Ok(!extra)
        }
        ResponseBody::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut head_pending = true;
            // A small body is kept decoded for the features that want to see it (the recorder
            // learns whether the answer was an error); past the bound it is not kept.
            let mut seen: Option<Vec<u8>> = pipeline.sees_body(ctx).then(Vec::new);
            let keep = |seen: &mut Option<Vec<u8>>, bytes: &[u8]| {
                if let Some(v) = seen {
                    if v.len() + bytes.len() <= SEEN_BODY_MAX {
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
                let bad_framing = |_| upstream_bad("bad chunked framing");
                let consumed = match cframing {
                    // Chunked to chunked: the decoder only finds the end; bytes pass verbatim.
                    ClientFraming::Chunked | ClientFraming::AsIs => {
                        let input = &conn.buf;
                        let c = decoder
                            .decode(input, |r| keep(&mut seen, input.get(r).unwrap_or_default()))
                            .map_err(bad_framing)?;
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
                            .map_err(bad_framing)?
                    }
                };
                conn.buf.drain(..consumed.min(conn.buf.len()));
                if !out.is_empty() {
                    ctx.bytes_to_client += out.len() as u64;
                    ctx.response_started = true;
                    write_all_by(wr, out, slot, write_limit)
                        .await
                        .map_err(client_gone)?;
                }
                head_pending = false;
                if decoder.is_done() {
                    if let Some(body) = seen {
                        pipeline.body_seen(ctx, &body);
                    }
                    return Ok(conn.buf.is_empty());
                }
                match read_more_by(&mut conn.stream, &mut conn.buf, slot, idle).await {
                    Ok(0) => return Err(ErrorKind::UpstreamClosed.into()),
                    Err(e) => return Err(mid_body(e)),
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
                    ctx.response_started = true;
                    write_all_by(wr, out, slot, write_limit)
                        .await
                        .map_err(client_gone)?;
                }
                match read_more_by(&mut conn.stream, &mut conn.buf, slot, idle).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(mid_body(e)),
                }
            }
            if cframing == ClientFraming::Chunked {
                out.extend_from_slice(LAST_CHUNK);
                write_all_by(wr, out, slot, write_limit)
                    .await
                    .map_err(client_gone)?;
            }
            Ok(false)
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
