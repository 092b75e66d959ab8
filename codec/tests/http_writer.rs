//! HeadWriter: verbatim copies, target replacement, removal, hop-by-hop, set/add.

use mcpgate_codec::http::{HeadWriter, RequestHead, ResponseHead};

fn request(raw: &[u8]) -> RequestHead {
    match RequestHead::parse(raw) {
        Ok(Some(h)) => h,
        other => panic!("expected a complete head, got {other:?}"),
    }
}

fn response(raw: &[u8]) -> ResponseHead {
    match ResponseHead::parse(raw) {
        Ok(Some(h)) => h,
        other => panic!("expected a complete head, got {other:?}"),
    }
}

fn written(writer: HeadWriter<'_>) -> String {
    let mut out = Vec::new();
    writer.write(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn unchanged_head_is_copied_verbatim() {
    let raw = b"POST /mcp HTTP/1.1\r\nHost: a\r\nX-MiXeD-CaSe:   spaced value\r\nContent-Length: 2\r\n\r\n";
    let head = request(raw);
    assert_eq!(
        written(HeadWriter::request(raw, &head)),
        "POST /mcp HTTP/1.1\r\nHost: a\r\nX-MiXeD-CaSe: spaced value\r\nContent-Length: 2\r\n\r\n"
    );
}

#[test]
fn http10_request_is_written_as_http11() {
    let raw = b"GET / HTTP/1.0\r\nHost: a\r\n\r\n";
    let head = request(raw);
    assert_eq!(
        written(HeadWriter::request(raw, &head)),
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    );
}

#[test]
fn replaces_target() {
    let raw = b"POST /mcp-proxy?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
    let head = request(raw);
    assert_eq!(
        written(HeadWriter::request(raw, &head).target(b"/mcp?x=1")),
        "POST /mcp?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
    );
}

#[test]
fn invalid_target_is_ignored() {
    let raw = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    let head = request(raw);
    assert_eq!(
        written(HeadWriter::request(raw, &head).target(b"/b HTTP/1.1\r\nX: y")),
        "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    );
}

#[test]
fn removes_every_field_of_a_name() {
    let raw = b"GET / HTTP/1.1\r\nCookie: a\r\nHost: h\r\ncookie: b\r\n\r\n";
    let head = request(raw);
    assert_eq!(
        written(HeadWriter::request(raw, &head).remove("COOKIE")),
        "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    );
}

#[test]
fn removes_hop_by_hop_and_connection_listed_fields() {
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n\
Proxy-Connection: x\r\nTE: trailers\r\nTrailer: X\r\nTransfer-Encoding: chunked\r\nUpgrade: websocket\r\n\
Proxy-Authorization: Basic x\r\nProxy-Authenticate: Basic\r\nx-secret: s\r\nAccept: */*\r\n\r\n";
    let head = request(raw);
    assert_eq!(
        written(HeadWriter::request(raw, &head).remove_hop_by_hop()),
        "GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"
    );
}

#[test]
fn set_replaces_or_adds_and_add_appends() {
    // Two `Host` fields no longer parse (RFC 9112 §3.2), so the repeated field is another one.
    let raw = b"POST / HTTP/1.1\r\nHost: old\r\nX-Up: 1\r\nX-A: 1\r\nx-up: dup\r\n\r\n";
    let head = request(raw);
    assert_eq!(
        written(
            HeadWriter::request(raw, &head)
                .set("Host", b"upstream:3001")
                .set("X-Up", b"2")
                .set("Content-Length", b"12")
                .add("X-A", b"2")
        ),
        "POST / HTTP/1.1\r\nX-A: 1\r\nHost: upstream:3001\r\nX-Up: 2\r\nContent-Length: 12\r\nX-A: 2\r\n\r\n"
    );
}

#[test]
fn injection_in_set_fields_is_not_written() {
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    let head = request(raw);
    assert_eq!(
        written(
            HeadWriter::request(raw, &head)
                .set("X-A", b"v\r\nX-Injected: 1")
                .add("Bad Name", b"v")
                .add("X-Ok", b"v")
        ),
        "GET / HTTP/1.1\r\nHost: h\r\nX-Ok: v\r\n\r\n"
    );
}

#[test]
fn response_status_line_and_rewrite() {
    let raw = b"HTTP/1.0 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let head = response(raw);
    assert_eq!(
        written(
            HeadWriter::response(raw, &head)
                .remove_hop_by_hop()
                .target(b"/ignored")
        ),
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn output_reparses_to_the_same_fields() {
    let raw = b"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\r\n";
    let head = request(raw);
    let mut out = Vec::new();
    HeadWriter::request(raw, &head)
        .set("Host", b"b")
        .write(&mut out);
    let again = request(&out);
    assert_eq!(again.head_len, out.len());
    assert_eq!(again.header(&out, "host"), Some(&b"b"[..]));
    assert_eq!(
        again.header(&out, "content-type"),
        Some(&b"application/json"[..])
    );
}
