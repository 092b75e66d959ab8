//! Response head + body framing on arbitrary bytes. The first byte picks the request method (HEAD
//! or not). Invariants: no panic, head_len inside the input, bodyless statuses have no body, and a
//! chunked body's decoded ranges stay inside the bytes after the head.
use mcpgate_codec::http::{ChunkedDecoder, HeadWriter, HttpError, ResponseBody, ResponseHead};
use mcpgate_codec::limits::MAX_HEAD_BYTES;

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let method: &[u8] = if selector & 1 == 1 { b"HEAD" } else { b"POST" };
    let Ok(Some(head)) = ResponseHead::parse(data) else {
        return;
    };
    assert!(head.head_len <= data.len());
    let _ = head.keep_alive(data);
    let framing = head.body_framing(data, method);
    if method == b"HEAD" || head.status < 200 || head.status == 204 || head.status == 304 {
        assert_eq!(framing, Ok(ResponseBody::None));
    }
    if let Ok(ResponseBody::Chunked) = framing {
        let body = &data[head.head_len..];
        let mut decoder = ChunkedDecoder::new();
        if let Ok(consumed) = decoder.decode(body, |r| {
            assert!(r.start <= r.end && r.end <= body.len());
        }) {
            assert!(consumed <= body.len());
        }
    }
    let mut out = Vec::new();
    HeadWriter::response(data, &head)
        .remove_hop_by_hop()
        .write(&mut out);
    match ResponseHead::parse(&out) {
        Ok(Some(again)) => assert_eq!(again.status, head.status),
        Err(HttpError::HeadTooLarge) if out.len() > MAX_HEAD_BYTES => {}
        other => panic!("rewritten head did not parse: {other:?}"),
    }
}
