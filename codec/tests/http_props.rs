//! Property tests: chunked decoding is independent of read boundaries, an unchanged head survives
//! write -> parse, and the parsers never panic on arbitrary bytes.

use mcpgate_codec::http::{
    encode_chunk, ChunkedDecoder, HeadWriter, HttpError, RequestHead, ResponseHead, LAST_CHUNK,
};
use proptest::prelude::*;

/// Feed `input` in pieces ending at `cuts` (sorted, deduplicated), keeping unconsumed bytes
/// like the engine does. Returns (data, error, done).
fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<HttpError>, bool) {
    let mut decoder = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let end = end.clamp(start, input.len());
        pending.extend_from_slice(&input[start..end]);
        start = end;
        match decoder.decode(&pending, |r| data.extend_from_slice(&pending[r])) {
            Ok(consumed) => {
                assert!(consumed <= pending.len());
                pending.drain(..consumed);
            }
            Err(e) => return (data, Some(e), false),
        }
        if decoder.is_done() {
            break;
        }
    }
    (data, None, decoder.is_done())
}

fn chunked_body() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..64), 0..8),
        prop::collection::vec("[a-z]{1,5}(=[a-z0-9]{0,5})?", 0..8),
        prop::collection::vec("X-[A-Za-z]{1,8}: [ -~]{0,16}", 0..3),
    )
        .prop_map(|(chunks, exts, trailers)| {
            let mut wire = Vec::new();
            let mut plain = Vec::new();
            for (i, chunk) in chunks.iter().enumerate() {
                let mut encoded = Vec::new();
                encode_chunk(chunk, &mut encoded);
                if let Some(ext) = exts.get(i) {
                    let line_end = encoded.iter().position(|&b| b == b'\r').unwrap_or(0);
                    let ext = format!(";{ext}");
                    encoded.splice(line_end..line_end, ext.bytes());
                }
                wire.extend_from_slice(&encoded);
                plain.extend_from_slice(chunk);
            }
            wire.extend_from_slice(b"0\r\n");
            for t in &trailers {
                wire.extend_from_slice(t.as_bytes());
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"\r\n");
            (wire, plain)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn chunked_split_anywhere_decodes_the_same((wire, plain) in chunked_body(),
                                               cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12)) {
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let whole = decode_in_pieces(&wire, &[]);
        prop_assert_eq!(&whole, &(plain.clone(), None, true));
        prop_assert_eq!(decode_in_pieces(&wire, &cuts), whole);
    }

    #[test]
    fn chunked_split_agrees_on_arbitrary_bytes(bytes in prop::collection::vec(
            prop::sample::select(b"0123456789abcdefxX;= \t\r\n:".to_vec()), 0..96),
            cut in any::<prop::sample::Index>()) {
        let cut = cut.index(bytes.len() + 1);
        let whole = decode_in_pieces(&bytes, &[]);
        let split = decode_in_pieces(&bytes, &[cut]);
        // Errors may be detected at different points, but success and data must agree.
        prop_assert_eq!(whole.1.is_some(), split.1.is_some());
        if whole.1.is_none() {
            prop_assert_eq!(whole, split);
        }
    }

    #[test]
    fn chunked_one_byte_at_a_time((wire, plain) in chunked_body()) {
        let cuts: Vec<usize> = (1..wire.len()).collect();
        prop_assert_eq!(decode_in_pieces(&wire, &cuts), (plain, None, true));
    }

    #[test]
    fn unchanged_head_round_trips(
        method in "[A-Z]{1,8}",
        target in "/[A-Za-z0-9._~%/-]{0,30}(\\?[A-Za-z0-9=&]{0,20})?",
        headers in prop::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[!-~]([ -~]{0,30}[!-~])?"), 0..20),
        http10 in any::<bool>(),
    ) {
        // Exactly one Host, which an HTTP/1.1 request needs to parse at all (RFC 9112 §3.2).
        prop_assume!(!headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")));
        let mut raw = format!("{method} {target} HTTP/1.{}\r\nHost: h\r\n", u8::from(!http10))
            .into_bytes();
        for (name, value) in &headers {
            raw.extend_from_slice(format!("{name}:  {value}  \r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let head = RequestHead::parse(&raw);
        let Ok(Some(head)) = head else {
            return Err(TestCaseError::fail(format!("did not parse: {head:?}")));
        };
        let mut out = Vec::new();
        HeadWriter::request(&raw, &head).write(&mut out);
        let again = RequestHead::parse(&out);
        let Ok(Some(again)) = again else {
            return Err(TestCaseError::fail(format!("output did not parse: {again:?}")));
        };
        prop_assert_eq!(again.head_len, out.len());
        prop_assert_eq!(again.method(&out), head.method(&raw));
        prop_assert_eq!(again.target(&out), head.target(&raw));
        prop_assert_eq!(again.minor_version, 1);
        let before: Vec<_> = head.headers(&raw).collect();
        let after: Vec<_> = again.headers(&out).collect();
        prop_assert_eq!(after, before);
        prop_assert_eq!(head.headers.len(), headers.len() + 1);
    }

    #[test]
    fn request_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(Some(head)) = RequestHead::parse(&bytes) {
            prop_assert!(head.head_len <= bytes.len());
            let _ = head.body_framing(&bytes);
            let _ = head.keep_alive(&bytes);
            let mut out = Vec::new();
            HeadWriter::request(&bytes, &head).remove_hop_by_hop().write(&mut out);
        }
    }

    #[test]
    fn request_parse_never_panics_on_headlike_bytes(bytes in prop::collection::vec(
            prop::sample::select(b"GET POST/ HTTP/1.01\r\n:aA-,;chunkedtransfer-encodingcontent-length 0123\t".to_vec()), 0..256)) {
        let mut raw = b"POST / HTTP/1.1\r\nHost: h\r\n".to_vec();
        raw.extend_from_slice(&bytes);
        raw.extend_from_slice(b"\r\n\r\n");
        if let Ok(Some(head)) = RequestHead::parse(&raw) {
            prop_assert!(head.head_len <= raw.len());
            let _ = head.body_framing(&raw);
        }
    }

    #[test]
    fn response_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(Some(head)) = ResponseHead::parse(&bytes) {
            prop_assert!(head.head_len <= bytes.len());
            let _ = head.body_framing(&bytes, b"GET");
            let mut out = Vec::new();
            HeadWriter::response(&bytes, &head).write(&mut out);
        }
    }

    #[test]
    fn encode_then_decode_is_identity(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6)) {
        let mut wire = Vec::new();
        for c in &chunks {
            encode_chunk(c, &mut wire);
        }
        wire.extend_from_slice(LAST_CHUNK);
        let plain: Vec<u8> = chunks.concat();
        prop_assert_eq!(decode_in_pieces(&wire, &[]), (plain, None, true));
    }
}
