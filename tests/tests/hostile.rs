//! The hostile suite: requests and upstream answers written from the RFCs rather than from a bug
//! list, each with the exact status (and JSON-RPC code) the gateway must answer, whether it may
//! reach the upstream, and a check after every case that the gateway is still running and still
//! serves an ordinary request.
//!
//! - HTTP (RFC 9112 request line, header fields, message framing and smuggling shapes; RFC 9110
//!   Host, methods, fields): `http_request_line`, `http_header_fields`, `http_framing`, plus the
//!   connection-level cases (pipelining, close after an error, slow clients).
//! - MCP / JSON-RPC on an API with an ACL (RFC 8259 JSON, JSON-RPC 2.0 envelope, MCP methods and
//!   the 2026-07-28 `Mcp-Method` / `Mcp-Name` headers): `mcp_messages`.
//! - SSE (WHATWG event stream as MCP Streamable HTTP uses it) and upstream misbehaviour (RFC 9112
//!   responses): `sse_streams`, `sse_acl`, `upstream_answers`.
//!
//! Cases are tables run against one gateway per group; a failure names every failing case. A
//! case that shows a defect in code this suite's author may not change is its own `#[ignore]`d
//! test with the reason.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mcpgate_tests::http::{exchange, sse_data, RawResponse, MCP_ACCEPT};
use mcpgate_tests::net::{CapturedRequest, CapturingUpstream, Reply};
use mcpgate_tests::{Gateway, GatewaySpec};
use serde_json::{json, Value};

const OPEN: &str = "/mcp-proxy";
const GUARDED: &str = "/acl";
const TIMEOUT: Duration = Duration::from_secs(20);
const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
const RESULT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;

// ---------------------------------------------------------------------------------------------
// Harness

/// One hostile input and what the gateway must do with it.
struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// `error.code` of the JSON-RPC body, when the gateway answers with an error itself.
    code: Option<i64>,
    /// Whether the request (as the gateway rewrites it) reaches the upstream.
    forwarded: bool,
}

fn case(
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    code: Option<i64>,
    forwarded: bool,
) -> Case {
    Case {
        name,
        request,
        status,
        code,
        forwarded,
    }
}

/// Refused by the gateway with `status` and `code`, never forwarded.
fn refused(name: &'static str, request: Vec<u8>, status: u16, code: i64) -> Case {
    case(name, request, status, Some(code), false)
}

/// Forwarded, and the upstream's canned 200 comes back.
fn passed(name: &'static str, request: Vec<u8>) -> Case {
    case(name, request, 200, None, true)
}

/// The default head limit (16 KiB, `max_head_bytes`).
const HEAD_LIMIT: usize = 16 * 1024;

/// `start` padded to exactly the head limit with no end of head: the gateway refuses it having
/// read every byte (bytes left unread would turn its close into a reset that eats the answer).
fn exactly_head_limit(start: &str) -> Vec<u8> {
    let mut request = start.as_bytes().to_vec();
    request.resize(HEAD_LIMIT, b'a');
    request
}

/// A POST to `path` with the MCP headers, `extra` header lines (each ending in CRLF) and `body`.
fn post(path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n\
         Accept: {MCP_ACCEPT}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// A request written exactly as given (`head` with CRLF line ends already in it).
fn raw(head: &str, body: &[u8]) -> Vec<u8> {
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(body);
    request
}

fn json_rpc_code(response: &RawResponse) -> Option<i64> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    body["error"]["code"].as_i64()
}

fn describe(response: &Result<RawResponse, String>) -> String {
    match response {
        Ok(r) => {
            let body = r.body_text();
            let body: String = body.chars().take(300).collect();
            format!("{} {:?} {body}", r.status, r.headers)
        }
        Err(e) => e.chars().take(300).collect(),
    }
}

/// A gateway in front of a recording upstream, with an open API and an API with an ACL.
struct Bench {
    gateway: Gateway,
    upstream: CapturingUpstream,
}

impl Bench {
    fn start(upstream: CapturingUpstream, gateway_tables: &str) -> Self {
        let config = format!(
            "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n{gateway_tables}\n\n\
             [[api]]\nname = \"open\"\npath = \"{OPEN}\"\nupstream = \"http://{up}/mcp\"\n\n\
             [[api]]\nname = \"guarded\"\npath = \"{GUARDED}\"\nupstream = \"http://{up}/mcp\"\n\n\
             [api.acl]\n\n\
             [[api.acl.rule]]\nmethods = [\"tools/list\", \"tools/call\"]\nnames = [\"echo\"]\n\n\
             [[api.acl.rule]]\nmethods = [\"resources/list\", \"resources/read\", \"resources/subscribe\"]\n\
             names = [\"file:///public.txt\"]\n",
            up = upstream.addr()
        );
        let gateway = Gateway::start(&GatewaySpec::config(config));
        Self { gateway, upstream }
    }

    /// A gateway whose upstream answers every request with [`RESULT`].
    fn canned() -> Self {
        Self::start(
            CapturingUpstream::scripted(|_| Reply::keep(json_reply(RESULT))),
            "[gateway.limits]\nmax_body_bytes = 65536\n\n[gateway.timeouts]\nclient_header = \"2s\"\n\
             client_body = \"2s\"\nupstream_response_head = \"5s\"",
        )
    }

    fn addr(&self) -> SocketAddr {
        self.gateway.addr()
    }

    /// Still running, and an ordinary ping through each API is answered by the upstream.
    fn alive(&mut self) -> Result<(), String> {
        if let Some(status) = self.gateway.process().exited() {
            return Err(format!("the gateway exited ({status})"));
        }
        for path in [OPEN, GUARDED] {
            let r = exchange(self.addr(), &post(path, "", PING.as_bytes()), TIMEOUT)
                .map_err(|e| format!("ping through {path}: {e}"))?;
            if r.status != 200 {
                return Err(format!("ping through {path}: {}", describe(&Ok(r))));
            }
        }
        Ok(())
    }

    /// Runs `cases` in order; fails listing every case that did not go as expected.
    fn run(&mut self, group: &str, cases: Vec<Case>) {
        let mut failures = Vec::new();
        for case in &cases {
            let before = self.upstream.count();
            let outcome = exchange(self.addr(), &case.request, TIMEOUT);
            let mut problems = Vec::new();
            match &outcome {
                Ok(r) => {
                    if r.status != case.status {
                        problems.push(format!("status {} instead of {}", r.status, case.status));
                    }
                    if let Some(code) = case.code {
                        if json_rpc_code(r) != Some(code) {
                            problems.push(format!(
                                "JSON-RPC code {:?} instead of {code}",
                                json_rpc_code(r)
                            ));
                        }
                    }
                }
                Err(e) => problems.push(format!("no answer: {e}")),
            }
            let reached = self.upstream.count() > before;
            if reached != case.forwarded {
                problems.push(
                    if reached {
                        "it reached the upstream"
                    } else {
                        "it never reached the upstream"
                    }
                    .to_owned(),
                );
            }
            if let Err(e) = self.alive() {
                problems.push(format!("the gateway stopped serving: {e}"));
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "[{group}] {}: {}\n      answer: {}",
                    case.name,
                    problems.join("; "),
                    describe(&outcome)
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} {group} cases failed:\n{}\n----- gateway output -----\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n"),
            self.gateway.output()
        );
    }
}

fn json_reply(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// HTTP: request line (RFC 9112 §3, RFC 9110 §9.1, RFC 3986)

#[test]
fn http_request_line() {
    let mut bench = Bench::canned();
    let body = PING.as_bytes();
    let with_body = |line: &str| {
        raw(
            &format!(
                "{line}\r\nHost: gw.test\r\nContent-Type: application/json\r\nConnection: close\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            ),
            body,
        )
    };
    bench.run(
        "request line",
        vec![
            passed("origin-form", with_body("POST /mcp-proxy HTTP/1.1")),
            passed(
                "absolute-form is accepted and routed by its path (§3.2.2)",
                with_body("POST http://gw.test/mcp-proxy HTTP/1.1"),
            ),
            refused(
                "fragment in the target (§3.2)",
                with_body("POST /mcp-proxy#frag HTTP/1.1"),
                400,
                -32600,
            ),
            refused(
                "fragment after a query",
                with_body("POST /mcp-proxy?x=1#frag HTTP/1.1"),
                400,
                -32600,
            ),
            refused(
                "target without a leading slash",
                with_body("POST mcp-proxy HTTP/1.1"),
                400,
                -32600,
            ),
            refused(
                "asterisk-form on POST (only OPTIONS may use it)",
                with_body("POST * HTTP/1.1"),
                400,
                -32600,
            ),
            refused(
                "raw UTF-8 in the target (RFC 3986: percent-encode)",
                with_body("POST /mcp-proxy/caf\u{e9} HTTP/1.1"),
                400,
                -32600,
            ),
            refused(
                "two spaces after the method (§3: exactly one SP)",
                with_body("POST  /mcp-proxy HTTP/1.1"),
                400,
                -32600,
            ),
            refused(
                "tab as the separator",
                with_body("POST\t/mcp-proxy HTTP/1.1"),
                400,
                -32600,
            ),
            refused(
                "HTTP/2.0 in an HTTP/1 request line",
                with_body("POST /mcp-proxy HTTP/2.0"),
                400,
                -32600,
            ),
            refused(
                "lower-case protocol name (§2.3: HTTP-name is case-sensitive)",
                with_body("POST /mcp-proxy http/1.1"),
                400,
                -32600,
            ),
            refused(
                "method with a non-token character",
                with_body("PO(ST /mcp-proxy HTTP/1.1"),
                400,
                -32600,
            ),
            refused(
                "DEL byte in the target",
                with_body("POST /mcp-proxy\u{7f} HTTP/1.1"),
                400,
                -32600,
            ),
            refused(
                "dot segment (RFC 3986 §5.2.4 would climb out of the API)",
                with_body("POST /mcp-proxy/../admin HTTP/1.1"),
                400,
                -32600,
            ),
            refused(
                "percent-encoded dot segment (%2e is '.', RFC 3986 §2.3)",
                with_body("POST /mcp-proxy/%2e%2E/admin HTTP/1.1"),
                400,
                -32600,
            ),
            refused(
                "no API at this path",
                with_body("POST /mcp-proxyx HTTP/1.1"),
                404,
                -32600,
            ),
            refused(
                "a request line still going at the 16 KiB head limit",
                exactly_head_limit("POST /mcp-proxy?"),
                431,
                -32600,
            ),
            case(
                "a method the gateway does not know goes to the upstream (RFC 9110 §9.1)",
                with_body("PURGE /mcp-proxy HTTP/1.1"),
                200,
                None,
                true,
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP: header fields (RFC 9112 §5, RFC 9110 §5, §7.2)

#[test]
fn http_header_fields() {
    let mut bench = Bench::canned();
    let body = PING.as_bytes();
    let fields = |lines: &str| {
        raw(
            &format!(
                "POST /mcp-proxy HTTP/1.1\r\n{lines}Content-Type: application/json\r\n\
                 Connection: close\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
            body,
        )
    };
    let many: String = (0..70).map(|i| format!("X-F{i}: v\r\n")).collect();
    bench.run(
        "header fields",
        vec![
            passed("one valid Host", fields("Host: gw.test:8080\r\n")),
            passed("IPv6 literal Host", fields("Host: [::1]:8080\r\n")),
            refused(
                "no Host in HTTP/1.1 (RFC 9112 §3.2)",
                fields(""),
                400,
                -32600,
            ),
            refused(
                "two Host fields",
                fields("Host: gw.test\r\nHost: other.test\r\n"),
                400,
                -32600,
            ),
            refused(
                "two identical Host fields",
                fields("Host: gw.test\r\nhost: gw.test\r\n"),
                400,
                -32600,
            ),
            refused(
                "Host with a space and a slash",
                fields("Host: bad host/x\r\n"),
                400,
                -32600,
            ),
            refused(
                "Host with userinfo",
                fields("Host: user@gw.test\r\n"),
                400,
                -32600,
            ),
            refused("empty Host", fields("Host:\r\n"), 400, -32600),
            refused(
                "Host with a comma (a list in X-Forwarded-Host)",
                fields("Host: a.test,b.test\r\n"),
                400,
                -32600,
            ),
            refused(
                "Host with a non-numeric port",
                fields("Host: gw.test:http\r\n"),
                400,
                -32600,
            ),
            case(
                "HTTP/1.0 without Host is still a request",
                raw(
                    &format!(
                        "POST /mcp-proxy HTTP/1.0\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\n\r\n",
                        body.len()
                    ),
                    body,
                ),
                200,
                None,
                true,
            ),
            refused(
                "whitespace between field name and colon (§5.1: MUST reject)",
                fields("Host: gw.test\r\nX-Test : 1\r\n"),
                400,
                -32600,
            ),
            refused(
                "obs-fold continuation line (§5.2)",
                fields("Host: gw.test\r\nX-Test: 1\r\n 2\r\n"),
                400,
                -32600,
            ),
            refused(
                "whitespace before the first field (§2.2)",
                raw(
                    &format!(
                        "POST /mcp-proxy HTTP/1.1\r\n Host: gw.test\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    ),
                    body,
                ),
                400,
                -32600,
            ),
            refused(
                "field name with a non-token character",
                fields("Host: gw.test\r\nX(Bad): 1\r\n"),
                400,
                -32600,
            ),
            refused(
                "field line without a colon",
                fields("Host: gw.test\r\nX-No-Colon\r\n"),
                400,
                -32600,
            ),
            refused(
                "NUL in a field value",
                fields("Host: gw.test\r\nX-Test: a\0b\r\n"),
                400,
                -32600,
            ),
            refused(
                "bare CR in a field value",
                fields("Host: gw.test\r\nX-Test: a\rb\r\n"),
                400,
                -32600,
            ),
            refused(
                "more than 64 fields",
                fields(&format!("Host: gw.test\r\n{many}")),
                431,
                -32600,
            ),
            refused(
                "one field still going at the 16 KiB head limit",
                exactly_head_limit("POST /mcp-proxy HTTP/1.1\r\nHost: gw.test\r\nX-Big: "),
                431,
                -32600,
            ),
            passed(
                "Bearer with two spaces on an open API is forwarded untouched",
                fields("Host: gw.test\r\nAuthorization: Bearer  abc.def\r\n"),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP: message framing and smuggling shapes (RFC 9112 §6, §7, §11.2)

#[test]
fn http_framing() {
    let mut bench = Bench::canned();
    let framed = |fields: &str, body: &str| {
        raw(
            &format!(
                "POST /mcp-proxy HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n\
                 Connection: close\r\n{fields}\r\n"
            ),
            body.as_bytes(),
        )
    };
    let ping_len = PING.len();
    let chunked_ping = format!("{:x}\r\n{PING}\r\n0\r\n\r\n", ping_len);
    bench.run(
        "framing",
        vec![
            passed(
                "chunked body is decoded and forwarded",
                framed("Transfer-Encoding: chunked\r\n", &chunked_ping),
            ),
            passed(
                "chunk extensions and a trailer are accepted (§7.1.1, §7.1.2)",
                framed(
                    "Transfer-Encoding: chunked\r\n",
                    &format!("{ping_len:x};name=value\r\n{PING}\r\n0\r\nX-Trailer: t\r\n\r\n"),
                ),
            ),
            passed(
                "identical repeated Content-Length (RFC 9110 §8.6)",
                framed(
                    &format!("Content-Length: {ping_len}\r\nContent-Length: {ping_len}\r\n"),
                    PING,
                ),
            ),
            refused(
                "Content-Length with Transfer-Encoding (§6.3: smuggling)",
                framed(
                    &format!("Content-Length: {ping_len}\r\nTransfer-Encoding: chunked\r\n"),
                    "",
                ),
                400,
                -32600,
            ),
            refused(
                "Transfer-Encoding before Content-Length",
                framed(
                    &format!("Transfer-Encoding: chunked\r\nContent-Length: {ping_len}\r\n"),
                    "",
                ),
                400,
                -32600,
            ),
            refused(
                "two different Content-Length fields",
                framed("Content-Length: 5\r\nContent-Length: 6\r\n", ""),
                400,
                -32600,
            ),
            refused(
                "a Content-Length list with different values",
                framed("Content-Length: 5, 6\r\n", ""),
                400,
                -32600,
            ),
            refused("signed Content-Length", framed("Content-Length: +5\r\n", ""), 400, -32600),
            refused("hex Content-Length", framed("Content-Length: 0x5\r\n", ""), 400, -32600),
            refused(
                "Content-Length past u64",
                framed("Content-Length: 99999999999999999999999\r\n", ""),
                400,
                -32600,
            ),
            refused(
                "chunked not the final coding (§6.3: MUST 400)",
                framed("Transfer-Encoding: chunked, gzip\r\n", ""),
                400,
                -32600,
            ),
            refused(
                "chunked applied twice",
                framed("Transfer-Encoding: chunked, chunked\r\n", ""),
                400,
                -32600,
            ),
            refused(
                "unknown transfer coding (§6.1: 501)",
                framed("Transfer-Encoding: gzip\r\n", ""),
                501,
                -32600,
            ),
            refused(
                "a look-alike of chunked",
                framed("Transfer-Encoding: xchunked\r\n", ""),
                501,
                -32600,
            ),
            refused(
                "Transfer-Encoding in HTTP/1.0 (§6.1: faulty framing)",
                raw(
                    "POST /mcp-proxy HTTP/1.0\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n",
                    b"",
                ),
                400,
                -32600,
            ),
            refused(
                "chunk size that is not hex",
                framed("Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n"),
                400,
                -32600,
            ),
            refused(
                "chunk size past u64",
                framed("Transfer-Encoding: chunked\r\n", "10000000000000000\r\nabc\r\n0\r\n\r\n"),
                400,
                -32600,
            ),
            refused(
                "chunk data longer than its size",
                framed("Transfer-Encoding: chunked\r\n", "2\r\nabc\r\n0\r\n\r\n"),
                400,
                -32600,
            ),
            refused(
                "bare LF after the chunk size",
                framed("Transfer-Encoding: chunked\r\n", "3\nabc\r\n0\r\n\r\n"),
                400,
                -32600,
            ),
            refused(
                "a chunk extension past 4 KiB",
                framed(
                    "Transfer-Encoding: chunked\r\n",
                    &format!("3;{}\r\nabc\r\n0\r\n\r\n", "e".repeat(5000)),
                ),
                400,
                -32600,
            ),
            refused(
                "declared body over max_body_bytes (413 before reading it)",
                framed("Content-Length: 1073741824\r\n", ""),
                413,
                -32600,
            ),
            refused(
                "a chunk that would take the body over max_body_bytes (refused at its size line)",
                framed("Transfer-Encoding: chunked\r\n", "10001\r\n"),
                413,
                -32600,
            ),
        ],
    );
}

/// Two requests in one write: both answered, in order (RFC 9112 §9.3.2), on one connection.
#[test]
fn http_pipelined_requests_are_answered_in_order() {
    let upstream = CapturingUpstream::scripted(|request| {
        let id = if String::from_utf8_lossy(&request.body).contains("\"id\":2") {
            2
        } else {
            1
        };
        Reply::keep(json_reply(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#
        )))
    });
    let bench = Bench::start(upstream, "");
    let one = |id: u32| {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        format!(
            "POST {OPEN} HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut stream = TcpStream::connect(bench.addr()).unwrap_or_else(|e| panic!("{e}"));
    stream
        .set_read_timeout(Some(TIMEOUT))
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(format!("{}{}", one(1), one(2)).as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut received = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while count_occurrences(&received, b"\"result\"") < 2 && Instant::now() < deadline {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&received);
    let first = text.find("\"id\":1").unwrap_or(usize::MAX);
    let second = text.find("\"id\":2").unwrap_or(usize::MAX);
    assert!(
        first < second && second != usize::MAX && text.matches("HTTP/1.1 200").count() == 2,
        "two pipelined pings were not answered in order: {text}"
    );
}

/// Everything the gateway writes on one connection for `request`, until it closes it.
fn read_until_closed(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
    stream
        .set_read_timeout(Some(TIMEOUT))
        .unwrap_or_else(|e| panic!("{e}"));
    stream.write_all(request).unwrap_or_else(|e| panic!("{e}"));
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    received
}

fn count_occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// After refusing a malformed request the gateway closes the connection (the bytes after it
/// cannot be trusted as a next request, RFC 9112 §9.6): a smuggled second request behind a
/// framing error is never answered or forwarded.
#[test]
fn http_connection_closes_after_a_framing_error() {
    let mut bench = Bench::canned();
    let smuggled = format!(
        "POST {OPEN} HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nPOST {OPEN} HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\n\r\n{PING}",
        PING.len()
    );
    let before = bench.upstream.count();
    let mut stream = TcpStream::connect(bench.addr()).unwrap_or_else(|e| panic!("{e}"));
    stream
        .set_read_timeout(Some(TIMEOUT))
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(smuggled.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert_eq!(
        text.matches("HTTP/1.1").count(),
        1,
        "a second answer: {text}"
    );
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert_eq!(
        bench.upstream.count(),
        before,
        "the smuggled request was forwarded"
    );
    bench.alive().unwrap_or_else(|e| panic!("{e}"));
}

/// A head that never completes is answered 408 after `client_header` (RFC 9110 §15.5.9), and a
/// body that stops arriving 408 after `client_body`; neither holds the gateway.
#[test]
fn http_slow_clients_get_408() {
    let mut bench = Bench::start(
        CapturingUpstream::scripted(|_| Reply::keep(json_reply(RESULT))),
        "[gateway.timeouts]\nclient_header = \"600ms\"\nclient_body = \"600ms\"",
    );
    for (name, partial) in [
        (
            "head",
            format!("POST {OPEN} HTTP/1.1\r\nHost: gw.test\r\nContent-"),
        ),
        (
            "body",
            format!(
                "POST {OPEN} HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 100\r\n\r\n{{\"jsonrpc\""
            ),
        ),
    ] {
        let started = Instant::now();
        let mut stream = TcpStream::connect(bench.addr()).unwrap_or_else(|e| panic!("{e}"));
        stream
            .set_read_timeout(Some(TIMEOUT))
            .unwrap_or_else(|e| panic!("{e}"));
        stream
            .write_all(partial.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received);
        let text = String::from_utf8_lossy(&received);
        let elapsed = started.elapsed();
        assert!(text.starts_with("HTTP/1.1 408 "), "slow {name}: {text}");
        assert!(text.contains("-32600"), "slow {name}: {text}");
        assert!(
            elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(10),
            "slow {name}: 408 after {elapsed:?}, configured 600ms"
        );
        bench.alive().unwrap_or_else(|e| panic!("slow {name}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// MCP / JSON-RPC messages on an API with an ACL (RFC 8259, JSON-RPC 2.0, MCP)

#[test]
fn mcp_messages() {
    let mut bench = Bench::canned();
    let acl = |body: &str| post(GUARDED, "", body.as_bytes());
    let call = |name: &str| {
        acl(&format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
        ))
    };
    let nested = |depth: usize| {
        // The message object is level 1 and params level 2: `depth` counts every level.
        let inner = depth - 2;
        acl(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"a":{}1{}}}}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        ))
    };
    let batch = |n: usize| {
        acl(&format!(
            "[{}]",
            vec![r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#; n].join(",")
        ))
    };
    bench.run(
        "MCP messages",
        vec![
            passed("an allowed tool call", call("echo")),
            case("a hidden tool is refused like an unknown one", call("secret"), 200, Some(-32602), false),
            case(
                "an escaped hidden name is judged decoded (\\u0073ecret)",
                call("\\u0073ecret"),
                200,
                Some(-32602),
                false,
            ),
            passed("an escaped allowed name (\\u0065cho)", call("\\u0065cho")),
            case(
                "case trick on the method (Tools/Call)",
                acl(r#"{"jsonrpc":"2.0","id":7,"method":"Tools/Call","params":{"name":"secret"}}"#),
                200,
                Some(-32601),
                false,
            ),
            case(
                "tools/call without params.name",
                acl(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}"#),
                200,
                Some(-32602),
                false,
            ),
            case(
                "resources/read of a hidden URI",
                acl(r#"{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"file:///etc/passwd"}}"#),
                200,
                Some(-32002),
                false,
            ),
            passed(
                "resources/read of the granted URI",
                acl(r#"{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"file:///public.txt"}}"#),
            ),
            case(
                "completion/complete on a prompt no rule grants",
                acl(r#"{"jsonrpc":"2.0","id":7,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":""}}}"#),
                200,
                Some(-32602),
                false,
            ),
            passed(
                "a notification the ACL does not govern",
                acl(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}"#),
            ),
            passed(
                "a client's response to a server request",
                acl(r#"{"jsonrpc":"2.0","id":"s-1","result":{"roots":[]}}"#),
            ),
            refused(
                "duplicate \"method\" (parsers disagree on which wins)",
                acl(r#"{"jsonrpc":"2.0","id":7,"method":"ping","method":"tools/call","params":{"name":"secret"}}"#),
                400,
                -32600,
            ),
            refused(
                "duplicate params.name",
                acl(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","name":"secret"}}"#),
                400,
                -32600,
            ),
            refused(
                "duplicate \"id\"",
                acl(r#"{"jsonrpc":"2.0","id":7,"id":8,"method":"ping"}"#),
                400,
                -32600,
            ),
            refused("not JSON (RFC 8259)", acl("{"), 400, -32700),
            refused(
                "invalid UTF-8 (RFC 8259 §8.1)",
                post(GUARDED, "", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}"),
                400,
                -32700,
            ),
            refused("a byte order mark before the message", acl(&format!("\u{feff}{PING}")), 400, -32700),
            refused("trailing bytes after the message", acl(&format!("{PING} x")), 400, -32700),
            refused("two messages back to back", acl(&format!("{PING}{PING}")), 400, -32700),
            refused(
                "a lone surrogate escape (RFC 8259 §8.2)",
                acl(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud800"}}"#),
                400,
                -32700,
            ),
            refused(
                "a raw control character in a string",
                acl("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\u{1}ng\"}"),
                400,
                -32700,
            ),
            refused(
                "a number beyond a double (1e400)",
                acl(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"n":1e400}}"#),
                400,
                -32700,
            ),
            refused(
                "an integer id beyond u64",
                acl(r#"{"jsonrpc":"2.0","id":18446744073709551616,"method":"ping"}"#),
                400,
                -32700,
            ),
            refused(
                "a fractional id (JSON-RPC: ids are strings or integers)",
                acl(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
                400,
                -32600,
            ),
            refused(
                "a request with id null (MCP: MUST NOT be null)",
                acl(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
                400,
                -32600,
            ),
            refused("no \"jsonrpc\" member", acl(r#"{"id":1,"method":"ping"}"#), 400, -32600),
            refused(
                "\"jsonrpc\":\"1.0\"",
                acl(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
                400,
                -32600,
            ),
            refused(
                "params as an array (MCP: always an object)",
                acl(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["secret"]}"#),
                400,
                -32600,
            ),
            refused(
                "method that is not a string",
                acl(r#"{"jsonrpc":"2.0","id":1,"method":7}"#),
                400,
                -32600,
            ),
            refused("the body null", acl("null"), 400, -32600),
            passed("nesting 64 levels deep", nested(64)),
            refused("nesting 65 levels deep", nested(65), 400, -32600),
            refused("an empty batch", acl("[]"), 400, -32600),
            passed("a batch of 256", batch(256)),
            refused("a batch of 257", batch(257), 400, -32600),
            refused(
                "a batch element that is not an object",
                acl(&format!("[{PING},1]")),
                400,
                -32600,
            ),
            refused(
                "Mcp-Method disagreeing with the body (2026-07-28: -32020)",
                post(
                    GUARDED,
                    "Mcp-Method: ping\r\n",
                    br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}"#,
                ),
                400,
                -32020,
            ),
            refused(
                "Mcp-Name disagreeing with the body",
                post(
                    GUARDED,
                    "Mcp-Method: tools/call\r\nMcp-Name: echo\r\n",
                    br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"secret"}}"#,
                ),
                400,
                -32020,
            ),
            refused(
                "a body over max_body_bytes (refused on its Content-Length)",
                raw(
                    &format!(
                        "POST {GUARDED} HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n\
                         Content-Length: 70000\r\n\r\n"
                    ),
                    b"",
                ),
                413,
                -32600,
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// SSE answers (WHATWG event streams as MCP Streamable HTTP uses them)

const SSE_HEAD_CLOSE: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
const SSE_HEAD_CHUNKED: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
Transfer-Encoding: chunked\r\n\r\n";

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The upstream's SSE answer for the scenario named by the request's last path segment.
fn sse_scenario(request: &CapturedRequest) -> Reply {
    let target = request
        .request_line()
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let scenario = target.rsplit('/').next().unwrap_or_default();
    let event = format!("event: message\ndata: {RESULT}\n\n");
    match scenario {
        "byte-by-byte" => {
            let mut pieces = vec![SSE_HEAD_CLOSE.as_bytes().to_vec()];
            pieces.extend(event.bytes().map(|b| vec![b]));
            Reply {
                pieces,
                pause: Duration::from_millis(2),
                close: true,
            }
        }
        "cr-only" => Reply::close(format!("{SSE_HEAD_CLOSE}data: {RESULT}\r\r")),
        "crlf" => Reply::close(format!("{SSE_HEAD_CLOSE}id: 1\r\ndata: {RESULT}\r\n\r\n")),
        "bom" => Reply::close(format!("{SSE_HEAD_CLOSE}\u{feff}data: {RESULT}\n\n")),
        "comments" => Reply::close(format!(
            "{SSE_HEAD_CLOSE}: keep-alive\n\nretry: soon\nfoo: bar\nid: a\0b\ndata: {RESULT}\n\n"
        )),
        "multi-line" => Reply::close(format!(
            "{SSE_HEAD_CLOSE}data: {{\"jsonrpc\":\"2.0\",\ndata: \"id\":1,\"result\":{{}}}}\n\n"
        )),
        "content-length" => Reply::keep(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{event}",
            event.len()
        )),
        "chunked-split" => {
            let bytes = event.as_bytes();
            let (a, b) = bytes.split_at(bytes.len() / 2);
            let mut body = chunk(a);
            body.extend_from_slice(&chunk(b));
            body.extend_from_slice(b"0\r\n\r\n");
            Reply {
                pieces: vec![SSE_HEAD_CHUNKED.as_bytes().to_vec(), body],
                pause: Duration::from_millis(20),
                close: false,
            }
        }
        "huge-event" => {
            // A first event, then one larger than the 8 MiB limit on a single event.
            let mut big = format!("{SSE_HEAD_CLOSE}data: {RESULT}\n\ndata: ").into_bytes();
            big.extend(std::iter::repeat_n(b'x', 8 * 1024 * 1024 + 16));
            big.extend_from_slice(b"\n\n");
            Reply::close(big)
        }
        "dies-mid-event" => Reply::close(format!(
            "{SSE_HEAD_CHUNKED}{}",
            String::from_utf8_lossy(&chunk(format!("data: {RESULT}\n\ndata: {{\"jsonrpc\"").as_bytes()))
        )),
        _ => Reply::keep(json_reply(RESULT)),
    }
}

/// The JSON-RPC messages of an SSE body, line ends normalised first (LF, CRLF and CR are all
/// line ends, WHATWG §9.2.6) and a leading BOM dropped, as a conforming client reads them.
fn sse_messages(body: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(body)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned();
    sse_data(&text)
        .into_iter()
        .filter_map(|d| serde_json::from_str(&d).ok())
        .collect()
}

#[test]
fn sse_streams() {
    let mut bench = Bench::start(CapturingUpstream::scripted(sse_scenario), "");
    let mut failures = Vec::new();
    let expected = serde_json::from_str::<Value>(RESULT).unwrap_or(Value::Null);
    for (scenario, wanted) in [
        (
            "byte-by-byte",
            "an event arriving one byte at a time is delivered whole",
        ),
        ("cr-only", "CR-only line ends"),
        ("crlf", "CRLF line ends"),
        ("bom", "a byte order mark before the first event"),
        (
            "comments",
            "comments, unknown fields, a bad retry and an id with NUL around the event",
        ),
        ("multi-line", "data over two lines is one message"),
        ("content-length", "an SSE answer framed by Content-Length"),
        ("chunked-split", "an event split across two chunks"),
    ] {
        let outcome = exchange(
            bench.addr(),
            &post(&format!("{OPEN}/{scenario}"), "", PING.as_bytes()),
            TIMEOUT,
        );
        let mut problems = Vec::new();
        match &outcome {
            Ok(r) => {
                if r.status != 200 {
                    problems.push(format!("status {}", r.status));
                }
                if !r
                    .header("content-type")
                    .is_some_and(|ct| ct.starts_with("text/event-stream"))
                {
                    problems.push("not an event stream".to_owned());
                }
                let messages = sse_messages(&r.body);
                if messages != vec![expected.clone()] {
                    problems.push(format!("messages {messages:?}"));
                }
            }
            Err(e) => problems.push(format!("no complete answer: {e}")),
        }
        if let Err(e) = bench.alive() {
            problems.push(format!("the gateway stopped serving: {e}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[SSE] {scenario} ({wanted}): {}\n      answer: {}",
                problems.join("; "),
                describe(&outcome)
            ));
        }
    }
    // An event over the 8 MiB limit, or an upstream dying inside an event: the head (200) is
    // already out, so the stream is cut: the events before it arrive, and the chunked body ends
    // without its last chunk, which a client reads as a truncated answer.
    for scenario in ["huge-event", "dies-mid-event"] {
        let request = post(&format!("{OPEN}/{scenario}"), "", PING.as_bytes());
        let wire = read_until_closed(bench.addr(), &request);
        let text = String::from_utf8_lossy(&wire);
        let mut problems = Vec::new();
        if !text.starts_with("HTTP/1.1 200 ") {
            problems.push("not a 200 head".to_owned());
        }
        if !text
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            problems.push("not chunked".to_owned());
        }
        if !text.contains(RESULT) {
            problems.push("the event before the failure was not delivered".to_owned());
        }
        if text.ends_with("0\r\n\r\n") {
            problems.push("the stream ended with its last chunk, as if complete".to_owned());
        }
        if let Err(e) = bench.alive() {
            problems.push(format!("the gateway stopped serving: {e}"));
        }
        if !problems.is_empty() {
            let tail: String = text
                .chars()
                .rev()
                .take(200)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            failures.push(format!(
                "[SSE] {scenario}: {}\n      ends with: {tail:?}",
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} SSE cases failed:\n{}\n----- gateway output -----\n{}",
        failures.len(),
        failures.join("\n"),
        bench.gateway.output()
    );
}

/// On an API with an ACL, what an SSE answer carries is judged like a JSON one: a list is
/// filtered, a server notification about a hidden resource is dropped.
#[test]
fn sse_acl() {
    let list = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"secret","inputSchema":{}},{"name":"echo","inputSchema":{}}]}}"#;
    let updated = |uri: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{{"uri":"{uri}"}}}}"#
        )
    };
    let stream = format!(
        "{SSE_HEAD_CLOSE}data: {}\n\ndata: {}\n\ndata: {list}\n\n",
        updated("file:///etc/passwd"),
        updated("file:///public.txt")
    );
    let mut bench = Bench::start(
        CapturingUpstream::scripted(move |request| {
            if String::from_utf8_lossy(&request.body).contains("tools/list") {
                Reply::close(stream.clone())
            } else {
                Reply::keep(json_reply(RESULT))
            }
        }),
        "",
    );
    let r = exchange(
        bench.addr(),
        &post(
            GUARDED,
            "",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ),
        TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{}", describe(&Ok(r.clone())));
    let messages = sse_messages(&r.body);
    assert_eq!(
        messages,
        vec![
            serde_json::from_str::<Value>(&updated("file:///public.txt")).unwrap_or_default(),
            json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","inputSchema":{}}]}}),
        ],
        "the hidden update and the hidden tool must not reach the client"
    );
    bench.alive().unwrap_or_else(|e| panic!("{e}"));
}

/// A server message the classifier cannot read (nesting past 64, or a duplicated `method`) names
/// a resource the ACL hides: it cannot be judged, so it is dropped ("when in doubt, refuse",
/// design.md §6), not forwarded.
#[test]
fn sse_acl_unreadable_server_message_about_a_hidden_resource_is_dropped() {
    let deep = format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{{"uri":"file:///etc/passwd","x":{}1{}}}}}"#,
        "[".repeat(70),
        "]".repeat(70)
    );
    let duplicated = r#"{"jsonrpc":"2.0","method":"notifications/message","method":"notifications/resources/updated","params":{"uri":"file:///etc/passwd"}}"#;
    let stream =
        format!("{SSE_HEAD_CLOSE}data: {deep}\n\ndata: {duplicated}\n\ndata: {RESULT}\n\n");
    let mut bench = Bench::start(
        CapturingUpstream::scripted(move |request| {
            if String::from_utf8_lossy(&request.body).contains("tools/call") {
                Reply::close(stream.clone())
            } else {
                Reply::keep(json_reply(RESULT))
            }
        }),
        "",
    );
    let r = exchange(
        bench.addr(),
        &post(
            GUARDED,
            "",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#,
        ),
        TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);
    let body = r.body_text();
    assert!(
        !body.contains("file:///etc/passwd"),
        "a message about a hidden resource reached the client: {body}"
    );
    bench.alive().unwrap_or_else(|e| panic!("{e}"));
}

// ---------------------------------------------------------------------------------------------
// Upstream answers (RFC 9112 §4, §6; RFC 9110 §15.2)

/// The upstream's answer for the shape named by the request's last path segment.
fn upstream_shape(request: &CapturedRequest) -> Reply {
    let target = request
        .request_line()
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let shape = target.rsplit('/').next().unwrap_or_default();
    let body = RESULT;
    let len = body.len();
    match shape {
        "cl-and-te" => Reply::close(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        )),
        "two-lengths" => Reply::close(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Length: {}\r\n\r\n{body}",
            len + 1
        )),
        "bad-status" => Reply::close(format!("HTTP/1.1 2000 OK\r\nContent-Length: {len}\r\n\r\n{body}")),
        "not-http" => Reply::close("SSH-2.0-OpenSSH_9.6\r\n\r\n"),
        "obs-fold" => Reply::close(format!(
            "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: {len}\r\n\r\n{body}"
        )),
        "silent-close" => Reply::close(Vec::new()),
        "bad-chunk" => Reply::close(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{body}\r\n0\r\n\r\n"
        )),
        "huge-head" => Reply::close(format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: {len}\r\n\r\n{body}",
            "h".repeat(20 * 1024)
        )),
        "switching" => Reply::close("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"),
        "unknown-coding" => Reply::close(format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{}0\r\n\r\n",
            String::from_utf8_lossy(&chunk(body.as_bytes()))
        )),
        "204-with-bytes" => Reply::keep(format!(
            "HTTP/1.1 204 No Content\r\nContent-Length: {len}\r\n\r\nHTTP/1.1 200 OK\r\nX-Smuggled: 1\r\n\r\n"
        )),
        "http10-close-delimited" => Reply::close(format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}")),
        "early-hints" => Reply::keep(format!(
            "HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n{}",
            String::from_utf8_lossy(&json_reply(body))
        )),
        _ => Reply::keep(json_reply(body)),
    }
}

#[test]
fn upstream_answers() {
    let mut bench = Bench::start(
        CapturingUpstream::scripted(upstream_shape),
        "[gateway.timeouts]\nupstream_response_head = \"3s\"",
    );
    let to = |shape: &str| post(&format!("{OPEN}/{shape}"), "", PING.as_bytes());
    bench.run(
        "upstream answers",
        vec![
            case(
                "Content-Length with Transfer-Encoding",
                to("cl-and-te"),
                502,
                Some(-32603),
                true,
            ),
            case(
                "two different Content-Length fields",
                to("two-lengths"),
                502,
                Some(-32603),
                true,
            ),
            case(
                "a four-digit status code",
                to("bad-status"),
                502,
                Some(-32603),
                true,
            ),
            case("not HTTP at all", to("not-http"), 502, Some(-32603), true),
            case(
                "obs-fold in a response field",
                to("obs-fold"),
                502,
                Some(-32603),
                true,
            ),
            case(
                "closed without answering",
                to("silent-close"),
                502,
                Some(-32603),
                true,
            ),
            case(
                "a chunk size that is not hex, before any byte was relayed",
                to("bad-chunk"),
                502,
                Some(-32603),
                true,
            ),
            case(
                "a response head over 16 KiB",
                to("huge-head"),
                502,
                Some(-32603),
                true,
            ),
            case(
                "101 to a request that asked for no upgrade",
                to("switching"),
                502,
                Some(-32603),
                true,
            ),
            case(
                "a transfer coding the gateway cannot remove",
                to("unknown-coding"),
                502,
                Some(-32603),
                true,
            ),
            case(
                "HTTP/1.0 close-delimited answer is relayed",
                to("http10-close-delimited"),
                200,
                None,
                true,
            ),
            case(
                "204 never has a body: stray bytes after it are not relayed (RFC 9110 §15.3.5)",
                to("204-with-bytes"),
                204,
                None,
                true,
            ),
        ],
    );
}

/// RFC 9110 §15.2: a 1xx answer is interim; the client must still get the final answer (a proxy
/// forwards 1xx or drops it, never takes it for the final response).
#[test]
fn upstream_interim_103_is_followed_by_the_final_answer() {
    let mut bench = Bench::start(CapturingUpstream::scripted(upstream_shape), "");
    let request = post(&format!("{OPEN}/early-hints"), "", PING.as_bytes());
    let mut stream = TcpStream::connect(bench.addr()).unwrap_or_else(|e| panic!("{e}"));
    stream
        .set_read_timeout(Some(TIMEOUT))
        .unwrap_or_else(|e| panic!("{e}"));
    stream.write_all(&request).unwrap_or_else(|e| panic!("{e}"));
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    let text = String::from_utf8_lossy(&received);
    let final_status = text
        .split("HTTP/1.1 ")
        .filter(|part| !part.is_empty())
        .filter_map(|part| part.get(..3))
        .find(|code| !code.starts_with('1'));
    assert_eq!(
        final_status,
        Some("200"),
        "no final 200 after the 103: {text}"
    );
    assert!(text.ends_with(RESULT), "the final body is missing: {text}");
    bench.alive().unwrap_or_else(|e| panic!("{e}"));
}
