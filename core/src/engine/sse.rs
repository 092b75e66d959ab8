//! An event stream relayed event by event: framing (the upstream's chunked, length or
//! close-delimited body decoded; the client's re-declared), the SSE parser, and for each complete
//! event the response-side `event_filter` chain (`crate::phases`), whose verdict relays the event
//! byte for byte, rewritten, or not at all. Every complete event is written the moment it is
//! complete (events read together leave in one write); nothing is buffered beyond the event being
//! assembled.
//!
//! `sse_idle` bounds the upstream's silence between reads and ends the stream cleanly;
//! `client_write` bounds how long a client may accept no byte (a stalled reader is cut off and
//! its upstream connection dropped). The client's side is
//! watched with a cancelable read: its disconnect ends the relay and drops the upstream
//! connection; pipelined bytes it sends are kept for after the stream. A GET stream also ends
//! cleanly when the gateway drains.

use std::borrow::Cow;
use std::pin::pin;

use mcpgate_codec::http::{encode_chunk, ChunkedDecoder, HttpError, ResponseBody, LAST_CHUNK};
use mcpgate_codec::sse::{event_data, write_event, SseParser};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncWriteRent, CancelableAsyncReadRent, Canceller};

use super::client::Client;
use super::io::{
    read_more_reserving, shrink_for_idle, write_all, write_all_within, ReadError,
    IDLE_STREAM_CHUNK, READ_CHUNK,
};
use super::upstream::UpstreamConn;
use super::worker::Worker;
use crate::config::Timeouts;
use crate::context::{HttpMethod, RequestCtx};
use crate::errors::{Error, ErrorKind};
use crate::headers::ClientFraming;
use crate::phases::{Event, EventStep, Pipeline};

fn client_gone(e: std::io::Error) -> Error {
    ErrorKind::ClientGone(e).into()
}

/// Relays the event stream (the client head is in `client.out`, `conn.buf` starts with the body).
/// Returns whether the upstream connection may be pooled.
#[allow(clippy::too_many_arguments)]
pub async fn relay<R, W>(
    client: &mut Client<'_, R, W>,
    worker: &Worker,
    ctx: &mut RequestCtx,
    pipeline: &Pipeline,
    conn: &mut UpstreamConn,
    rframing: ResponseBody,
    cframing: ClientFraming,
    timeouts: &Timeouts,
) -> Result<bool, Error>
where
    R: CancelableAsyncReadRent,
    W: AsyncWriteRent,
{
    let Client {
        rd, wr, buf, out, ..
    } = client;
    let idle = timeouts.sse_idle;
    let end_on_drain = ctx.method == HttpMethod::Get;
    let mut parser = SseParser::with_max_event(ctx.config().gateway.limits.max_sse_event_bytes);
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
    // Events a feature puts first (the ACL's refusals of a batch's elements).
    pipeline.events_start(ctx, &mut rewritten);
    if !rewritten.is_empty() {
        match cframing {
            ClientFraming::Chunked => encode_chunk(&rewritten, out),
            _ => out.extend_from_slice(&rewritten),
        }
    }
    let _open_stream = worker.pipeline.features.observe.sse_guard();
    // The head leaves with the first pass of the loop below, before any read waits: the client
    // knows the stream is open before the first event, and events that came with the upstream's
    // head share its write (one packet, one wake-up of the client, not two).
    let mut head_sent = false;
    // Set once the terminal chunk left with the last events (one write, not two).
    let mut terminated = false;

    // Watch the client with a cancelable read appending to its buffer (pipelined bytes are kept).
    let mut client_buf = std::mem::take(&mut **buf);
    if end_on_drain {
        // Only a close or pipelined bytes are expected here (the first pipelined byte ends the
        // watch and keeps what was read); the next request regrows it.
        shrink_for_idle(&mut client_buf, 128);
    }
    if client_buf.capacity() == client_buf.len() {
        client_buf.reserve(if end_on_drain { 128 } else { 1024 });
    }
    let (len, cap) = (client_buf.len(), client_buf.capacity());
    let canceller = Canceller::new();
    let mut watch = pin!(rd.cancelable_read(client_buf.slice_mut(len..cap), canceller.handle()));
    let mut watching = true;
    let mut returned: Option<Vec<u8>> = None;
    let mut client_gone_seen = false;

    let result: Result<bool, Error> = 'relay: loop {
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
                    Err(_) => {
                        break Err(ErrorKind::UpstreamMalformed(HttpError::BadFraming(
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
        let mut broken = None;
        loop {
            let rest = events.get(pos..).unwrap_or_default();
            match parser.next_event(rest) {
                Ok(Some((event, consumed))) => {
                    let mut view = Event {
                        event_type: event.event_type(rest),
                        id: event.id_value(rest),
                        retry: event.retry,
                        data: Cow::Borrowed(event_data(&event, rest)),
                        upstream_raw: event.raw_bytes(rest),
                        is_comment_only: event.is_comment_only,
                    };
                    let verdict = pipeline.event_filter(ctx, &mut view);
                    pos += consumed;
                    if verdict == EventStep::Drop {
                        continue;
                    }
                    let raw = match view.data {
                        Cow::Borrowed(_) => view.upstream_raw,
                        Cow::Owned(data) => {
                            rewritten.clear();
                            write_event(
                                &mut rewritten,
                                view.event_type,
                                view.id,
                                view.retry,
                                &data,
                            );
                            &rewritten
                        }
                    };
                    match cframing {
                        ClientFraming::Chunked => encode_chunk(raw, out),
                        _ => out.extend_from_slice(raw),
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
        events.drain(..pos.min(events.len()));
        if upstream_done && broken.is_none() && cframing == ClientFraming::Chunked {
            out.extend_from_slice(LAST_CHUNK);
            terminated = true;
        }
        if !out.is_empty() {
            ctx.bytes_to_client += out.len() as u64;
            ctx.response_started = true;
            if let Err(e) = write_all_within(&mut **wr, out, timeouts.client_write).await {
                client_gone_seen = true;
                break Err(client_gone(e));
            }
        }
        if !head_sent {
            head_sent = true;
            if end_on_drain {
                shrink_for_idle(out, 0);
                shrink_for_idle(&mut conn.buf, IDLE_STREAM_CHUNK);
            }
        }
        if broken.is_some() {
            break Err(ErrorKind::UpstreamMalformed(HttpError::Malformed(
                "an event of the stream cannot be read",
            ))
            .into());
        }
        if upstream_done {
            break Ok(conn.buf.is_empty() && events.is_empty());
        }

        let mut read = pin!(read_more_reserving(
            &mut conn.stream,
            &mut conn.buf,
            idle,
            read_chunk
        ));
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
        };
        match res {
            Ok(0) if rframing == ResponseBody::CloseDelimited => {
                // The remaining complete events were written above; a torn one is dropped.
                break Ok(false);
            }
            Ok(0) => break Err(ErrorKind::UpstreamClosed.into()),
            Ok(_) => {}
            Err(ReadError::Timeout) => {
                crate::debug!("event stream idle for {idle:?}; ending it");
                break Ok(false);
            }
            Err(ReadError::Io(e)) => break Err(ErrorKind::UpstreamIo(e).into()),
        }
    };

    if watching {
        let _ = canceller.cancel();
        let (res, slice) = watch.await;
        returned = Some(slice.into_inner());
        if matches!(res, Ok(0)) {
            client_gone_seen = true;
        }
    }
    **buf = returned.unwrap_or_default();
    let reusable = result?;
    if client_gone_seen {
        return Err(client_gone(std::io::ErrorKind::UnexpectedEof.into()));
    }
    if cframing == ClientFraming::Chunked && !terminated {
        out.clear();
        out.extend_from_slice(LAST_CHUNK);
        write_all(&mut **wr, out).await.map_err(client_gone)?;
    }
    Ok(reusable)
}

async fn wait_for_drain(worker: &Worker, enabled: bool) {
    if !enabled {
        std::future::pending::<()>().await;
    }
    // Event-driven: a per-stream poll timer would wake every idle stream ten times a second.
    worker.drained().await;
}
