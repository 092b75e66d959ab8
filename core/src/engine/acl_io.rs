//! The MCP ACL's I/O in the relay phase: a JSON answer that must be rewritten (a list to filter,
//! refusals to merge into a batch answer) is read whole — bounded by `max_body_bytes`, 502 past
//! it — rewritten by `crate::acl_phase`, and sent with a fresh `Content-Length`; a refused
//! server→client request is answered to the upstream by a fire-and-forget POST.
//!
//! Only exchanges of an API with an ACL come here; the others never buffer.

use std::ops::Range;
use std::time::{Duration, Instant};

use mcpgate_codec::http::{
    ChunkedDecoder, HeadWriter, HttpError, RequestWriter, ResponseBody, ResponseHead,
};
use monoio::buf::VecBuf;
use monoio::io::AsyncWriteRentExt;

use super::io::{read_more, write_all_within};
use super::upstream::{self, UpstreamConn};
use crate::acl_phase::AclExchange;
use crate::config::Upstream;
use crate::errors::{write_response, GatewayError};

/// A rewritten body up to this size is copied behind its head (one plain write); larger ones
/// leave with it in one vectored write instead.
const SMALL_BODY: usize = 4096;

/// Why a rewritten relay stopped: `None` = abort the client connection (bytes may be sent).
pub type RelayFailure = Option<GatewayError>;

fn upstream_bad(what: &'static str) -> RelayFailure {
    Some(GatewayError::UpstreamMalformed(HttpError::Malformed(what)))
}

/// Where a buffered response body is: in place after the head in `conn.buf` (Content-Length
/// and close-delimited framing: no copy), or decoded from chunked framing.
enum Buffered {
    InConn(Range<usize>),
    Decoded(Vec<u8>),
}

/// Reads the whole response body; the head (`head_len` bytes) stays at the start of `conn.buf`.
/// Returns where the body is and whether the connection ended exactly at the end of the response.
async fn read_body(
    conn: &mut UpstreamConn,
    head_len: usize,
    framing: ResponseBody,
    max: usize,
    idle: Duration,
) -> Result<(Buffered, bool), RelayFailure> {
    let too_large = || Some(GatewayError::UpstreamMalformed(HttpError::BodyTooLarge));
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
                match read_more(&mut conn.stream, &mut conn.buf, idle).await {
                    Ok(0) | Err(_) => return Err(Some(GatewayError::UpstreamClosed)),
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
                match read_more(&mut conn.stream, &mut conn.buf, idle).await {
                    Ok(0) | Err(_) => return Err(Some(GatewayError::UpstreamClosed)),
                    Ok(_) => {}
                }
            }
        }
        ResponseBody::CloseDelimited => loop {
            if conn.buf.len() - head_len.min(conn.buf.len()) > max {
                return Err(too_large());
            }
            match read_more(&mut conn.stream, &mut conn.buf, idle).await {
                Ok(0) => return Ok((Buffered::InConn(head_len..conn.buf.len()), false)),
                Ok(_) => {}
                Err(_) => return Err(Some(GatewayError::UpstreamClosed)),
            }
        },
    }
}

/// Relays a JSON answer rewritten by the ACL. `conn.buf` starts with the upstream's response
/// head (`rh` indexes it), then the body. `note` sees the body the client gets (for the exchange
/// record) before it is sent. The rewritten body is written straight from where the filter put
/// it, behind the head (one vectored write): the only copy of the answer is the filter's own
/// splice. Returns whether `conn` may be pooled (its buffer is then empty).
#[allow(clippy::too_many_arguments)]
pub async fn relay_rewritten_json<W: monoio::io::AsyncWriteRent>(
    acl: &mut AclExchange,
    conn: &mut UpstreamConn,
    rh: &ResponseHead,
    framing: ResponseBody,
    close_client: bool,
    max_body: usize,
    idle: Duration,
    wr: &mut W,
    out: &mut Vec<u8>,
    bytes_to_client: &mut u64,
    note: impl FnOnce(&[u8]),
) -> Result<bool, RelayFailure> {
    let head_len = rh.head_len.min(conn.buf.len());
    let (buffered, exact) = read_body(conn, head_len, framing, max_body, idle).await?;
    let body: &[u8] = match &buffered {
        Buffered::InConn(r) => conn.buf.get(r.clone()).unwrap_or_default(),
        Buffered::Decoded(v) => v,
    };
    let mut rewritten = Vec::with_capacity(body.len() + 64);
    // 202 / 204 carry no JSON-RPC answer (the legacy transport's POST reply says "Accepted").
    let no_answer = matches!(rh.status, 202 | 204) || body.trim_ascii().is_empty();
    let gateway_answers = no_answer && !acl.injected.is_empty();
    if gateway_answers {
        // The upstream accepted the forwarded part but the client's batch also held refused
        // requests: the gateway's errors are the answer.
        if let Err(e) = acl.rewrite_json(&[], &mut rewritten) {
            crate::warn!("ACL: refusals cannot be written ({e})");
            return Err(upstream_bad("answer cannot be filtered"));
        }
    } else if no_answer || !(200..300).contains(&rh.status) {
        // An HTTP error (session unknown, upstream failure…) or an acceptance carries no list:
        // relay it as is, whatever its format.
        rewritten.extend_from_slice(body);
    } else if let Err(e) = acl.rewrite_json(body, &mut rewritten) {
        crate::warn!("upstream answer cannot be judged by the ACL ({e}); answered 502 instead");
        return Err(upstream_bad("answer cannot be filtered"));
    }
    note(&rewritten);
    out.clear();
    if gateway_answers {
        write_response(200, "application/json", &rewritten, close_client, out);
        rewritten.clear();
    } else {
        let len = rewritten.len().to_string();
        let mut writer = HeadWriter::response(&conn.buf, rh).remove_hop_by_hop();
        if rh.status != 204 {
            // RFC 9110 §8.6: a 204 carries no Content-Length.
            writer.set_mut("content-length", len.as_bytes());
        }
        if close_client {
            writer.set_mut("connection", b"close");
        }
        writer.write(out);
    }
    conn.buf.clear();
    *bytes_to_client += (out.len() + rewritten.len()) as u64;
    if rewritten.len() <= SMALL_BODY {
        out.extend_from_slice(&rewritten);
        write_all_within(wr, out, idle).await.map_err(|_| None)?;
    } else {
        let head = std::mem::take(out);
        let parts = VecBuf::from(vec![head, rewritten]);
        let written = monoio::time::timeout(idle, wr.write_vectored_all(parts)).await;
        let Ok((res, parts)) = written else {
            return Err(None);
        };
        // The connection's output buffer comes back for the next request.
        if let Some(mut head) = Vec::<Vec<u8>>::from(parts).into_iter().next() {
            head.clear();
            *out = head;
        }
        res.map_err(|_| None)?;
    }
    Ok(exact)
}

/// Answers a server→client request the ACL refused: POSTs `answer` (a JSON-RPC error) to the
/// upstream's MCP endpoint with the client's session headers, in the background. Nothing waits
/// for it; a failure is logged.
pub fn answer_upstream(upstream: &Upstream, acl: &AclExchange, answer: Vec<u8>, limit: Duration) {
    let mut request = Vec::with_capacity(answer.len() + 256);
    let mut writer =
        RequestWriter::new(&mut request, "POST", &upstream.path, &upstream.host_header);
    writer
        .header("content-type", b"application/json")
        .header("accept", b"application/json, text/event-stream");
    for (name, value) in &acl.upstream_headers {
        writer.header(name, value);
    }
    writer.header("connection", b"close");
    if let Err(e) = writer.finish(&answer) {
        crate::warn!("ACL: cannot answer the upstream's refused request: {e}");
        return;
    }
    let addrs = upstream.addrs.clone();
    monoio::spawn(async move {
        let deadline = Instant::now() + limit;
        let mut conn = match upstream::connect(&addrs, limit).await {
            Ok(conn) => conn,
            Err(e) => {
                crate::warn!("ACL: cannot answer the upstream's refused request: {e}");
                return;
            }
        };
        let (res, _) = conn.stream.write_all(request).await;
        if let Err(e) = res {
            crate::warn!("ACL: cannot answer the upstream's refused request: {e}");
            return;
        }
        // Read the status line so the upstream is not reset mid-request; the answer is ignored.
        let wait = deadline.saturating_duration_since(Instant::now());
        let _ = read_more(&mut conn.stream, &mut conn.buf, wait).await;
    });
}
