//! Chunked decoding (boundaries, extensions, trailers, limits, invalid shapes) and encoding.

use mcpgate_codec::http::{encode_chunk, ChunkedDecoder, HttpError, LAST_CHUNK};
use mcpgate_codec::limits::{MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES};

/// Decode `input` in one call: (data, consumed, done).
fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), HttpError> {
    let mut decoder = ChunkedDecoder::new();
    let mut data = Vec::new();
    let consumed = decoder.decode(input, |r| data.extend_from_slice(&input[r]))?;
    Ok((data, consumed, decoder.is_done()))
}

/// Decode feeding one byte per call, as the slowest network would.
fn decode_bytewise(input: &[u8]) -> Result<(Vec<u8>, usize, bool), HttpError> {
    let mut decoder = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut consumed = 0;
    for i in 0..input.len() {
        if decoder.is_done() {
            break;
        }
        let piece = &input[i..i + 1];
        consumed += decoder.decode(piece, |r| data.extend_from_slice(&piece[r]))?;
    }
    Ok((data, consumed, decoder.is_done()))
}

fn decode_error(input: &[u8]) -> HttpError {
    match decode_all(input) {
        Err(e) => e,
        Ok(v) => panic!(
            "expected an error for {:?}, got {v:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

#[test]
fn decodes_simple_body() {
    let input = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    assert_eq!(
        decode_all(input),
        Ok((b"hello, world".to_vec(), input.len(), true))
    );
    assert_eq!(
        decode_bytewise(input),
        Ok((b"hello, world".to_vec(), input.len(), true))
    );
}

#[test]
fn stops_at_end_of_message() {
    let input = b"3\r\nabc\r\n0\r\n\r\nPOST /next HTTP/1.1\r\n";
    let (data, consumed, done) = decode_all(input).unwrap_or_default();
    assert_eq!(data, b"abc");
    assert!(done);
    assert_eq!(&input[consumed..], b"POST /next HTTP/1.1\r\n");
}

#[test]
fn incomplete_input_is_consumed_and_not_done() {
    let input = b"a\r\n01234";
    assert_eq!(
        decode_all(input),
        Ok((b"01234".to_vec(), input.len(), false))
    );
}

#[test]
fn hex_sizes_in_both_cases_and_leading_zeros() {
    let body = vec![b'x'; 0x1a];
    let mut input = b"001A\r\n".to_vec();
    input.extend_from_slice(&body);
    input.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(decode_all(&input).map(|r| r.0), Ok(body.clone()));
    input[3] = b'a';
    assert_eq!(decode_all(&input).map(|r| r.0), Ok(body));
}

#[test]
fn extensions_are_skipped() {
    let input = b"5;name=value;quoted=\"a b\"\r\nhello\r\n0;last\r\n\r\n";
    assert_eq!(decode_bytewise(input).map(|r| r.0), Ok(b"hello".to_vec()));
    let with_bws = b"5 ;ext\r\nhello\r\n0\r\n\r\n";
    assert_eq!(decode_all(with_bws).map(|r| r.0), Ok(b"hello".to_vec()));
}

#[test]
fn trailers_are_skipped() {
    let input = b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\nNEXT";
    let (data, consumed, done) = decode_bytewise(input).unwrap_or_default();
    assert_eq!(data, b"hello");
    assert!(done);
    assert_eq!(consumed, input.len() - 4);
}

#[test]
fn invalid_chunk_sizes_are_400() {
    for input in [
        &b"\r\nhello\r\n0\r\n\r\n"[..],
        b"g\r\n",
        b"-5\r\nhello\r\n",
        b"+5\r\nhello\r\n",
        b"0x5\r\nhello\r\n",
        b" 5\r\nhello\r\n",
        b"5 \r\nhello\r\n",
        b"5 x\r\nhello\r\n",
        b"10000000000000000\r\n",
        b"fffffffffffffffff\r\n",
    ] {
        let err = decode_error(input);
        assert_eq!(err.status(), 400, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn largest_chunk_size_parses() {
    let mut decoder = ChunkedDecoder::new();
    assert_eq!(decoder.decode(b"ffffffffffffffff\r\nab", |_| {}), Ok(20));
    assert!(!decoder.is_done());
}

#[test]
fn bare_lf_and_bare_cr_are_rejected() {
    assert_eq!(decode_error(b"5\nhello\r\n0\r\n\r\n").status(), 400);
    assert_eq!(decode_error(b"5\rhello\r\n0\r\n\r\n").status(), 400);
    assert_eq!(decode_error(b"5\r\nhello\n0\r\n\r\n").status(), 400);
    assert_eq!(decode_error(b"5\r\nhello\r\n0\r\n\n").status(), 400);
    assert_eq!(decode_error(b"5\r\nhello\r\n0\r\nX: y\n\r\n").status(), 400);
    assert_eq!(decode_error(b"5;ext\nhello\r\n").status(), 400);
}

#[test]
fn data_must_be_followed_by_crlf() {
    // Declares 3 bytes but sends 5: the extra bytes must not be read as the next size line.
    assert_eq!(decode_error(b"3\r\nhello\r\n0\r\n\r\n").status(), 400);
}

#[test]
fn chunk_line_limit() {
    let mut ok = b"5;".to_vec();
    ok.resize(MAX_CHUNK_LINE_BYTES, b'a');
    ok.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert_eq!(decode_all(&ok).map(|r| r.0), Ok(b"hello".to_vec()));

    let mut too_long = b"5;".to_vec();
    too_long.resize(MAX_CHUNK_LINE_BYTES + 1, b'a');
    too_long.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert_eq!(decode_error(&too_long).status(), 400);

    let mut zeros = vec![b'0'; MAX_CHUNK_LINE_BYTES + 1];
    zeros.push(b'5');
    assert_eq!(decode_error(&zeros).status(), 400);
}

#[test]
fn trailer_limit() {
    let mut input = b"0\r\nX-T: ".to_vec();
    input.resize(input.len() + MAX_TRAILER_BYTES, b'a');
    input.extend_from_slice(b"\r\n\r\n");
    assert_eq!(decode_error(&input).status(), 400);
}

#[test]
fn control_bytes_in_extensions_and_trailers_are_rejected() {
    assert_eq!(decode_error(b"5;a\0b\r\nhello\r\n").status(), 400);
    assert_eq!(decode_error(b"0\r\nX: a\0b\r\n\r\n").status(), 400);
}

#[test]
fn body_limit_is_413() {
    let mut decoder = ChunkedDecoder::with_max_body(8);
    let mut seen = 0;
    let result = decoder.decode(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", |r| {
        seen += r.len()
    });
    assert_eq!(result.map_err(|e| e.status()), Err(413));
    assert_eq!(seen, 5, "data past the limit must not be reported");
    let mut exact = ChunkedDecoder::with_max_body(10);
    assert!(exact
        .decode(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", |_| {})
        .is_ok());
    assert!(exact.is_done());
    assert_eq!(exact.body_len(), 10);
}

#[test]
fn decoder_stays_failed() {
    let mut decoder = ChunkedDecoder::new();
    assert!(decoder.decode(b"z", |_| {}).is_err());
    assert!(decoder.decode(b"5\r\nhello\r\n0\r\n\r\n", |_| {}).is_err());
}

#[test]
fn done_decoder_consumes_nothing_more() {
    let mut decoder = ChunkedDecoder::new();
    assert_eq!(decoder.decode(LAST_CHUNK, |_| {}), Ok(LAST_CHUNK.len()));
    assert!(decoder.is_done());
    assert_eq!(
        decoder.decode(b"more", |_| panic!("no data after the end")),
        Ok(0)
    );
}

#[test]
fn encode_round_trips() {
    let mut out = Vec::new();
    encode_chunk(b"hello", &mut out);
    encode_chunk(b"", &mut out);
    let big = vec![7u8; 0x1234];
    encode_chunk(&big, &mut out);
    assert!(out.starts_with(b"5\r\nhello\r\n1234\r\n"));
    out.extend_from_slice(LAST_CHUNK);
    let (data, consumed, done) = decode_all(&out).unwrap_or_default();
    let mut expected = b"hello".to_vec();
    expected.extend_from_slice(&big);
    assert_eq!(data, expected);
    assert_eq!(consumed, out.len());
    assert!(done);
}

#[test]
fn empty_data_encodes_nothing() {
    let mut out = Vec::new();
    encode_chunk(b"", &mut out);
    assert!(out.is_empty());
}
