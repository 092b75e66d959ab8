//! SSE parser and writer: WHATWG rules, raw ranges, limits, and split invariance.
#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is the point

use mcpgate_codec::http::encode_chunk;
use mcpgate_codec::limits::MAX_SSE_EVENT_BYTES;
use mcpgate_codec::sse::{
    event_len, write_comment, write_event, write_event_chunk, SseData, SseError, SseEvent,
    SseParser,
};
use proptest::prelude::*;

/// An event with its ranges resolved to bytes, so results from different buffers compare.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    raw: Vec<u8>,
    event: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
    retry: Option<u64>,
    data: Option<Vec<u8>>,
    single_line: bool,
    comment_only: bool,
}

fn own(p: &SseParser, ev: &SseEvent, buf: &[u8]) -> Owned {
    Owned {
        raw: buf[ev.raw.clone()].to_vec(),
        event: ev.event.clone().map(|r| buf[r].to_vec()),
        id: ev.id.clone().map(|r| buf[r].to_vec()),
        retry: ev.retry,
        data: match ev.data {
            SseData::None => None,
            _ => Some(p.data(ev, buf).to_vec()),
        },
        single_line: matches!(ev.data, SseData::Single(_)),
        comment_only: ev.is_comment_only,
    }
}

/// Feeds `stream` in pieces cut at `cuts`, draining after each event like the engine does.
/// Returns the events and the bytes consumed in total.
fn feed(stream: &[u8], cuts: &[usize]) -> Result<(Vec<Owned>, usize), SseError> {
    let mut parser = SseParser::new();
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut consumed_total = 0;
    let mut last = 0;
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < stream.len()).collect();
    bounds.sort_unstable();
    bounds.push(stream.len());
    for cut in bounds {
        buf.extend_from_slice(&stream[last..cut.max(last)]);
        last = cut.max(last);
        while let Some((ev, consumed)) = parser.next_event(&buf)? {
            assert!(consumed <= buf.len());
            assert!(ev.raw.end <= consumed);
            events.push(own(&parser, &ev, &buf));
            buf.drain(..consumed);
            consumed_total += consumed;
        }
    }
    Ok((events, consumed_total))
}

fn whole(stream: &[u8]) -> Vec<Owned> {
    feed(stream, &[]).unwrap().0
}

#[test]
fn mcp_stream_with_priming_event() {
    let s = b"id: s3-0\nretry: 2000\ndata:\n\nid: s3-1\nevent: message\ndata: {\"a\":1}\n\n";
    let evs = whole(s);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].id.as_deref(), Some(&b"s3-0"[..]));
    assert_eq!(evs[0].retry, Some(2000));
    assert_eq!(
        evs[0].data.as_deref(),
        Some(&b""[..]),
        "empty data line still dispatches"
    );
    assert_eq!(evs[1].event.as_deref(), Some(&b"message"[..]));
    assert_eq!(evs[1].data.as_deref(), Some(&b"{\"a\":1}"[..]));
    assert!(evs[1].single_line);
    let mut concat = evs[0].raw.clone();
    concat.extend_from_slice(&evs[1].raw);
    assert_eq!(concat, s, "raw ranges cover the stream byte for byte");
}

#[test]
fn line_ends_lf_crlf_cr_are_equivalent() {
    let lf = whole(b"event: a\ndata: x\ndata: y\n\n");
    let crlf = whole(b"event: a\r\ndata: x\r\ndata: y\r\n\r\n");
    let cr = whole(b"event: a\rdata: x\rdata: y\r\r");
    for evs in [&lf, &crlf, &cr] {
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].event.as_deref(), Some(&b"a"[..]));
        assert_eq!(evs[0].data.as_deref(), Some(&b"x\ny"[..]));
        assert!(!evs[0].single_line);
    }
}

#[test]
fn cr_at_end_of_read_then_lf_is_one_line_end() {
    // Split right after the CR of a CRLF inside the event and after the final CR.
    let s = b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n";
    let (split, consumed) = feed(s, &[8, 19]).unwrap();
    assert_eq!(consumed, s.len());
    let datas: Vec<_> = split.iter().map(|e| e.data.clone()).collect();
    assert_eq!(datas, vec![Some(b"a\nb".to_vec()), Some(b"c".to_vec())]);
    // The first event is dispatched at the CR; the LF that completes it leads the next raw.
    let raws: Vec<u8> = split.iter().flat_map(|e| e.raw.clone()).collect();
    assert_eq!(raws, s);
}

#[test]
fn event_dispatched_at_trailing_cr_without_waiting() {
    let mut p = SseParser::new();
    let buf = b"data: x\r\r";
    let (ev, consumed) = p.next_event(buf).unwrap().expect("dispatch at CR");
    assert_eq!(consumed, buf.len());
    assert_eq!(p.data(&ev, buf), b"x");
}

#[test]
fn one_leading_space_stripped_only() {
    let evs = whole(b"data:  two\nevent:x\nid:\n\n");
    assert_eq!(evs[0].data.as_deref(), Some(&b" two"[..]));
    assert_eq!(evs[0].event.as_deref(), Some(&b"x"[..]));
    assert_eq!(evs[0].id.as_deref(), Some(&b""[..]));
}

#[test]
fn field_without_colon_has_empty_value() {
    let evs = whole(b"data\ndata\n\n");
    assert_eq!(evs[0].data.as_deref(), Some(&b"\n"[..]));
}

#[test]
fn id_with_nul_is_ignored_and_keeps_previous() {
    let evs = whole(b"id: good\nid: b\0ad\ndata: x\n\n");
    assert_eq!(evs[0].id.as_deref(), Some(&b"good"[..]));
    let evs = whole(b"id: b\0ad\n\n");
    assert_eq!(evs[0].id, None);
    assert!(evs[0].comment_only);
}

#[test]
fn retry_digits_only() {
    for (line, want) in [
        (&b"retry: 1500\n\n"[..], Some(1500)),
        (b"retry: 15a\n\n", None),
        (b"retry: -1\n\n", None),
        (b"retry:\n\n", None),
        (b"retry: 1.5\n\n", None),
        (b"retry: 99999999999999999999999\n\n", None),
    ] {
        assert_eq!(
            whole(line)[0].retry,
            want,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn comments_and_unknown_fields() {
    let evs = whole(b": keepalive\n\n: c\nfoo: bar\ndata: d\n\n");
    assert_eq!(evs.len(), 2);
    assert!(evs[0].comment_only);
    assert_eq!(evs[0].raw, b": keepalive\n\n");
    assert_eq!(evs[0].data, None);
    assert!(!evs[1].comment_only);
    assert_eq!(evs[1].data.as_deref(), Some(&b"d"[..]));
    assert!(whole(b"foo: bar\n\n")[0].comment_only);
}

#[test]
fn extra_blank_lines_are_empty_blocks() {
    let evs = whole(b"data: a\n\n\n");
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[1].raw, b"\n");
    assert!(evs[1].comment_only);
}

#[test]
fn bom_skipped_only_at_stream_start() {
    let s = b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n";
    let evs = whole(s);
    assert_eq!(evs[0].data.as_deref(), Some(&b"a"[..]));
    assert_eq!(evs[0].raw, b"data: a\n\n");
    // A second BOM is part of the field name, so the line is an unknown field.
    assert_eq!(evs[1].data, None);
    // The BOM may arrive one byte at a time.
    let (split, _) = feed(s, &[1, 2, 3]).unwrap();
    assert_eq!(split, evs);
}

#[test]
fn incomplete_event_needs_more() {
    let mut p = SseParser::new();
    assert_eq!(p.next_event(b"data: partial").unwrap(), None);
    assert_eq!(p.next_event(b"data: partial\n").unwrap(), None);
    let (ev, n) = p.next_event(b"data: partial\n\n").unwrap().unwrap();
    assert_eq!(n, 15);
    assert_eq!(ev.data, SseData::Single(6..13));
}

#[test]
fn oversized_event_is_refused_complete_or_not() {
    let big = vec![b'x'; MAX_SSE_EVENT_BYTES + 1];
    let mut p = SseParser::new();
    let mut buf = b"data: ".to_vec();
    buf.extend_from_slice(&big);
    assert!(matches!(
        p.next_event(&buf),
        Err(SseError::EventTooLarge { .. })
    ));
    buf.extend_from_slice(b"\n\n");
    assert!(matches!(
        SseParser::new().next_event(&buf),
        Err(SseError::EventTooLarge { .. })
    ));
    // Just under the limit passes.
    let mut ok = b"data: ".to_vec();
    ok.resize(MAX_SSE_EVENT_BYTES - 2, b'y');
    ok.extend_from_slice(b"\n\n");
    assert!(SseParser::new().next_event(&ok).unwrap().is_some());
}

#[test]
fn rewound_buffer_is_an_error_not_a_panic() {
    let mut p = SseParser::new();
    assert_eq!(p.next_event(b"data: long line").unwrap(), None);
    assert_eq!(p.next_event(b"da"), Err(SseError::BufferRewound));
}

#[test]
fn writer_round_trips_and_cannot_inject_fields() {
    let mut out = Vec::new();
    write_event(
        &mut out,
        Some(b"message"),
        Some(b"7\nevent: evil\0"),
        Some(3000),
        b"line1\nline2\r\nline3\rid: injected",
    );
    let evs = whole(&out);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].event.as_deref(), Some(&b"message"[..]));
    assert_eq!(evs[0].id.as_deref(), Some(&b"7event: evil"[..]));
    assert_eq!(evs[0].retry, Some(3000));
    assert_eq!(
        evs[0].data.as_deref(),
        Some(&b"line1\nline2\nline3\nid: injected"[..])
    );
    let mut empty = Vec::new();
    write_event(&mut empty, None, None, None, b"");
    assert_eq!(whole(&empty)[0].data.as_deref(), Some(&b""[..]));
    let mut c = Vec::new();
    write_comment(&mut c, b"keep\nalive");
    let evs = whole(&c);
    assert!(evs[0].comment_only);
    assert_eq!(evs.len(), 1);
}

fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
    let value = proptest::collection::vec(
        prop_oneof![
            Just(b'a'),
            Just(b' '),
            Just(b':'),
            Just(b'{'),
            Just(0u8),
            Just(b'7')
        ],
        0..12,
    );
    let name = prop_oneof![
        Just(b"data".to_vec()),
        Just(b"event".to_vec()),
        Just(b"id".to_vec()),
        Just(b"retry".to_vec()),
        Just(b"".to_vec()),
        Just(b"x".to_vec()),
    ];
    let end = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec())
    ];
    (name, any::<bool>(), value, end).prop_map(|(mut n, colon, v, e)| {
        if colon || n.is_empty() {
            n.push(b':');
        }
        n.extend(v.into_iter().filter(|&b| b != b'\n' && b != b'\r'));
        n.extend(e);
        n
    })
}

fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        proptest::collection::vec(
            (
                proptest::collection::vec(line_strategy(), 0..5),
                prop_oneof![
                    Just(b"\n".to_vec()),
                    Just(b"\r\n".to_vec()),
                    Just(b"\r".to_vec())
                ],
            ),
            0..6,
        ),
        proptest::collection::vec(line_strategy(), 0..2),
    )
        .prop_map(|(bom, blocks, tail)| {
            let mut s = if bom {
                b"\xEF\xBB\xBF".to_vec()
            } else {
                Vec::new()
            };
            for (lines, end) in blocks {
                lines.into_iter().for_each(|l| s.extend(l));
                s.extend(end);
            }
            tail.into_iter().for_each(|l| s.extend(l));
            s
        })
}

/// What a client sees: everything but where a split CRLF's LF was counted.
fn semantic(evs: &[Owned]) -> Vec<Owned> {
    evs.iter()
        .map(|e| Owned {
            raw: Vec::new(),
            ..e.clone()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn any_split_parses_like_the_whole(stream in stream_strategy(), cuts in proptest::collection::vec(0usize..200, 0..8)) {
        let (all, consumed_all) = feed(&stream, &[]).unwrap();
        let (split, consumed_split) = feed(&stream, &cuts).unwrap();
        prop_assert_eq!(semantic(&all), semantic(&split));
        // Raw ranges tile the stream. They may differ only by the LF of a CRLF split right
        // after its CR at the very end of what has arrived: that LF is owned by the next event.
        let body = stream.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&stream);
        let raw_all: Vec<u8> = all.iter().flat_map(|e| e.raw.clone()).collect();
        let raw_split: Vec<u8> = split.iter().flat_map(|e| e.raw.clone()).collect();
        prop_assert!(body.starts_with(&raw_all));
        prop_assert!(body.starts_with(&raw_split));
        prop_assert!(raw_all.len().abs_diff(raw_split.len()) <= 1);
        prop_assert!(consumed_all.abs_diff(consumed_split) <= 1);
    }

    /// An event written in place as a chunk is exactly `encode_chunk` of the event (its length
    /// known beforehand), whatever line breaks its data or fields hold.
    #[test]
    fn events_written_as_chunks_are_encode_chunk_of_the_event(
        event in proptest::option::of("[a-z\r\n]{0,8}"), id in proptest::option::of("[a-z0-9\r\n\x00-]{0,8}"),
        retry in proptest::option::of(any::<u64>()), data in "[ -~\r\n]{0,600}",
    ) {
        let (event, id) = (event.as_deref().map(str::as_bytes), id.as_deref().map(str::as_bytes));
        let mut plain = Vec::new();
        write_event(&mut plain, event, id, retry, data.as_bytes());
        prop_assert_eq!(event_len(event, id, retry, data.as_bytes()), plain.len());
        let mut expected = b"before".to_vec();
        encode_chunk(&plain, &mut expected);
        let mut chunk = b"before".to_vec();
        write_event_chunk(&mut chunk, event, id, retry, data.as_bytes());
        prop_assert_eq!(chunk, expected);
    }

    #[test]
    fn written_events_parse_back(event in proptest::option::of("[a-z]{0,8}"), id in proptest::option::of("[a-z0-9-]{0,8}"),
                                 retry in proptest::option::of(0u64..100_000), data in "[ -~\n]{0,40}") {
        let mut out = Vec::new();
        write_event(&mut out, event.as_deref().map(str::as_bytes), id.as_deref().map(str::as_bytes), retry, data.as_bytes());
        let evs = whole(&out);
        prop_assert_eq!(evs.len(), 1);
        prop_assert_eq!(evs[0].event.clone(), event.map(String::into_bytes));
        prop_assert_eq!(evs[0].id.clone(), id.map(String::into_bytes));
        prop_assert_eq!(evs[0].retry, retry);
        prop_assert_eq!(evs[0].data.clone(), Some(data.into_bytes()));
        prop_assert_eq!(evs[0].raw.clone(), out);
    }
}

#[test]
fn the_event_cap_is_configurable() {
    let event = b"data: 0123456789\n\n";
    // 18 raw bytes: refused under a 17-byte cap, accepted at 18, complete or still arriving.
    assert!(matches!(
        SseParser::with_max_event(17).next_event(event),
        Err(SseError::EventTooLarge { limit: 17 })
    ));
    assert!(matches!(
        SseParser::with_max_event(10).next_event(&event[..12]),
        Err(SseError::EventTooLarge { limit: 10 })
    ));
    let parsed = SseParser::with_max_event(18)
        .next_event(event)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(parsed, Some((_, 18))), "{parsed:?}");
}
