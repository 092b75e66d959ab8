//! SSE parser on arbitrary bytes: no panic, consumed within the buffer, ranges inside the event,
//! and the same events whether the stream arrives whole or split at fuzzer-chosen points.
use mcpgate_codec::sse::{SseData, SseEvent, SseParser};

#[derive(Debug, PartialEq)]
struct Seen {
    event: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
    retry: Option<u64>,
    data: Option<Vec<u8>>,
    comment_only: bool,
}

fn check_event(ev: &SseEvent, consumed: usize, buf: &[u8]) {
    assert!(consumed <= buf.len());
    assert!(ev.raw.start <= ev.raw.end && ev.raw.end == consumed);
    for r in [&ev.event, &ev.id].into_iter().flatten() {
        assert!(ev.raw.start <= r.start && r.start <= r.end && r.end <= ev.raw.end);
    }
    if let SseData::Single(r) = &ev.data {
        assert!(ev.raw.start <= r.start && r.start <= r.end && r.end <= ev.raw.end);
    }
}

fn run(stream: &[u8], cuts: &[usize]) -> (Vec<Seen>, Vec<u8>) {
    let mut parser = SseParser::new();
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    let mut raws = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let cut = cut.clamp(from, stream.len());
        buf.extend_from_slice(&stream[from..cut]);
        from = cut;
        loop {
            match parser.next_event(&buf) {
                Ok(Some((ev, consumed))) => {
                    check_event(&ev, consumed, &buf);
                    raws.extend_from_slice(&buf[ev.raw.clone()]);
                    seen.push(Seen {
                        event: ev.event.clone().map(|r| buf[r].to_vec()),
                        id: ev.id.clone().map(|r| buf[r].to_vec()),
                        retry: ev.retry,
                        data: (!matches!(ev.data, SseData::None))
                            .then(|| parser.data(&ev, &buf).to_vec()),
                        comment_only: ev.is_comment_only,
                    });
                    buf.drain(..consumed);
                }
                Ok(None) => break,
                Err(_) => return (seen, raws),
            }
        }
    }
    (seen, raws)
}

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    // The first bytes choose the split points; the rest is the stream.
    let (head, stream) = data.split_at(data.len().min(4));
    let mut cuts: Vec<usize> = head.iter().map(|&b| usize::from(b)).collect();
    cuts.sort_unstable();
    let (whole, raw_whole) = run(stream, &[]);
    let (split, raw_split) = run(stream, &cuts);
    assert_eq!(whole, split);
    let body = stream.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(stream);
    assert!(body.starts_with(&raw_whole) && body.starts_with(&raw_split));
    assert!(raw_whole.len().abs_diff(raw_split.len()) <= 1);
}
