//! Request head parsing, framing and rewriting on arbitrary bytes: no panic, every span and
//! length inside the input, a parsed head has a valid Host (or is HTTP/1.0 without one) and no
//! fragment, and an unchanged rewrite parses back to the same fields.
use mcpgate_codec::http::{HeadWriter, HttpError, RequestHead};
use mcpgate_codec::limits::MAX_HEAD_BYTES;

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let Ok(Some(head)) = RequestHead::parse(data) else {
        return;
    };
    assert!(head.head_len <= data.len());
    for h in &head.headers {
        assert!(h.name.start <= h.name.end && (h.name.end as usize) <= head.head_len);
        assert!(h.value.start <= h.value.end && (h.value.end as usize) <= head.head_len);
    }
    assert!((head.target.end as usize) <= head.head_len);
    let _ = head.body_framing(data);
    let _ = head.keep_alive(data);
    let _ = head.expects_continue(data);
    assert!(head.path(data).len() <= head.target(data).len());
    assert!(
        !head.target(data).contains(&b'#'),
        "a target with a fragment parsed"
    );
    assert!(head.host(data).is_ok(), "a head with a bad Host parsed");

    let mut out = Vec::new();
    HeadWriter::request(data, &head).write(&mut out);
    match RequestHead::parse(&out) {
        Ok(Some(again)) => {
            assert_eq!(again.head_len, out.len());
            assert_eq!(again.method(&out), head.method(data));
            assert_eq!(again.target(&out), head.target(data));
            assert!(again.headers(&out).eq(head.headers(data)));
        }
        // Normalising `name:value` to `name: value` can grow a head that was at the size limit.
        Err(HttpError::HeadTooLarge) if out.len() > MAX_HEAD_BYTES => {}
        // The writer always writes HTTP/1.1, which needs the Host an HTTP/1.0 request may omit
        // (the engine always sets one when it forwards).
        Err(HttpError::Malformed("missing host field"))
            if head.minor_version == 0 && head.host(data) == Ok(None) => {}
        other => panic!("rewritten head did not parse: {other:?}"),
    }

    let mut rewritten = Vec::new();
    HeadWriter::request(data, &head)
        .remove_hop_by_hop()
        .target(b"/mcp")
        .set("Host", b"upstream")
        .write(&mut rewritten);
    // Adding a field can push a head over the field-count or size limit; nothing else may fail.
    match RequestHead::parse(&rewritten) {
        Ok(Some(again)) => assert_eq!(again.target(&rewritten), b"/mcp"),
        Err(HttpError::TooManyHeaders | HttpError::HeadTooLarge) => {}
        other => panic!("rewritten head did not parse: {other:?}"),
    }
}
