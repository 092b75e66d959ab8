//! The MCP ACL's I/O in the relay phase: a JSON answer that must be rewritten (a list to filter,
//! refusals to merge into a batch answer) is read whole — bounded by `max_body_bytes`, 502 past
//! it — rewritten by `crate::acl_phase`, and sent with a fresh `Content-Length`; a refused
//! server→client request is answered to the upstream by a fire-and-forget POST.
//!
//! Only exchanges of an API with an ACL come here; the others never buffer.

use std::time::{Duration, Instant};

use mcpgate_codec::http::{ChunkedDecoder, HeadWriter, HttpError, ResponseBody, ResponseHead};
use monoio::io::AsyncWriteRentExt;

use super::io::{read_more, write_all_within};
use super::upstream::{self, UpstreamConn};
use crate::acl_phase::AclExchange;
use crate::config::Upstream;
use crate::errors::{write_response, GatewayError};

/// Why a rewritten relay stopped: `None` = abort the client connection (bytes may be sent).
pub type RelayFailure = Option<GatewayError>;

fn upstream_bad(what: &'static str) -> RelayFailure {
    Some(GatewayError::UpstreamMalformed(HttpError::Malformed(what)))
}

/// Reads the whole response body (head already drained from `conn.buf`). Returns it and whether
/// the connection ended exactly at the end of the response.
async fn read_body(
    conn: &mut UpstreamConn,
    framing: ResponseBody,
    max: usize,
    idle: Duration,
) -> Result<(Vec<u8>, bool), RelayFailure> {
    let too_large = || Some(GatewayError::UpstreamMalformed(HttpError::BodyTooLarge));
    match framing {
        ResponseBody::None => Ok((Vec::new(), conn.buf.is_empty())),
        ResponseBody::Length(n) => {
            let n = usize::try_from(n).map_err(|_| too_large())?;
            if n > max {
                return Err(too_large());
            }
            while conn.buf.len() < n {
                match read_more(&mut conn.stream, &mut conn.buf, idle).await {
                    Ok(0) | Err(_) => return Err(Some(GatewayError::UpstreamClosed)),
                    Ok(_) => {}
                }
            }
            let body = conn.buf.get(..n).unwrap_or_default().to_vec();
            let exact = conn.buf.len() == n;
            conn.buf.clear();
            Ok((body, exact))
        }
        ResponseBody::Chunked => {
            let mut decoder = ChunkedDecoder::with_max_body(max as u64);
            let mut body = Vec::new();
            loop {
                let input = &conn.buf;
                let consumed = decoder
                    .decode(input, |r| {
                        body.extend_from_slice(input.get(r).unwrap_or_default())
                    })
                    .map_err(|e| match e {
                        HttpError::BodyTooLarge => too_large(),
                        _ => upstream_bad("bad chunked framing"),
                    })?;
                conn.buf.drain(..consumed.min(conn.buf.len()));
                if decoder.is_done() {
                    return Ok((body, conn.buf.is_empty()));
                }
                match read_more(&mut conn.stream, &mut conn.buf, idle).await {
                    Ok(0) | Err(_) => return Err(Some(GatewayError::UpstreamClosed)),
                    Ok(_) => {}
                }
            }
        }
        ResponseBody::CloseDelimited => loop {
            if conn.buf.len() > max {
                return Err(too_large());
            }
            match read_more(&mut conn.stream, &mut conn.buf, idle).await {
                Ok(0) => return Ok((std::mem::take(&mut conn.buf), false)),
                Ok(_) => {}
                Err(_) => return Err(Some(GatewayError::UpstreamClosed)),
            }
        },
    }
}

/// Relays a JSON answer rewritten by the ACL. `head_buf` holds the upstream's response head
/// (`rh` indexes it); `conn.buf` starts at the body. Returns whether `conn` may be pooled.
#[allow(clippy::too_many_arguments)]
pub async fn relay_rewritten_json<W: monoio::io::AsyncWriteRent>(
    acl: &mut AclExchange,
    conn: &mut UpstreamConn,
    head_buf: &[u8],
    rh: &ResponseHead,
    framing: ResponseBody,
    close_client: bool,
    max_body: usize,
    idle: Duration,
    wr: &mut W,
    out: &mut Vec<u8>,
    bytes_to_client: &mut u64,
) -> Result<bool, RelayFailure> {
    let (body, exact) = read_body(conn, framing, max_body, idle).await?;
    let mut rewritten = Vec::with_capacity(body.len() + 64);
    if !(200..300).contains(&rh.status) && acl.injected.is_empty() {
        // An HTTP error (session unknown, upstream failure…) carries no list: relay it as is,
        // whatever its format.
        rewritten.extend_from_slice(&body);
    } else if let Err(e) = acl.rewrite_json(&body, &mut rewritten) {
        crate::warn!("upstream answer cannot be filtered by the ACL: {e}");
        return Err(upstream_bad("answer cannot be filtered"));
    }
    out.clear();
    if body.trim_ascii().is_empty() {
        // The upstream accepted the forwarded part (202) but the client's batch also held
        // refused requests: the gateway's errors are the answer.
        write_response(200, "application/json", &rewritten, close_client, out);
    } else {
        let len = rewritten.len().to_string();
        let mut writer = HeadWriter::response(head_buf, rh)
            .remove_hop_by_hop()
            .set("content-length", len.as_bytes());
        if close_client {
            writer = writer.set("connection", b"close");
        }
        writer.write(out);
        out.extend_from_slice(&rewritten);
    }
    *bytes_to_client += out.len() as u64;
    write_all_within(wr, out, idle).await.map_err(|_| None)?;
    Ok(exact)
}

/// Answers a server→client request the ACL refused: POSTs `answer` (a JSON-RPC error) to the
/// upstream's MCP endpoint with the client's session headers, in the background. Nothing waits
/// for it; a failure is logged.
pub fn answer_upstream(upstream: &Upstream, acl: &AclExchange, answer: Vec<u8>, limit: Duration) {
    let mut request = Vec::with_capacity(answer.len() + 256);
    request.extend_from_slice(b"POST ");
    request.extend_from_slice(upstream.path.as_bytes());
    request.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    request.extend_from_slice(upstream.host_header.as_bytes());
    request.extend_from_slice(
        b"\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n",
    );
    for (name, value) in &acl.upstream_headers {
        if value.iter().any(|&b| b == b'\r' || b == b'\n') {
            continue;
        }
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"connection: close\r\ncontent-length: ");
    request.extend_from_slice(answer.len().to_string().as_bytes());
    request.extend_from_slice(b"\r\n\r\n");
    request.extend_from_slice(&answer);
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
