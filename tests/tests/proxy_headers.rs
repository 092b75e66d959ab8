//! What the gateway writes on the wire to the upstream and back, seen by an upstream that
//! records every request: the rewritten request-target and Host, the MCP headers kept, the
//! hop-by-hop headers dropped in both directions, `X-Forwarded-*` added, the body untouched.

use std::time::Duration;

use mcpgate_tests::http::{exchange, RawResponse, MCP_ACCEPT};
use mcpgate_tests::net::CapturingUpstream;
use mcpgate_tests::{Gateway, GatewaySpec};

const API: &str = "/mcp-proxy";

const CANNED: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: application/json\r\n\
Content-Length: 36\r\n\
Connection: keep-alive\r\n\
Keep-Alive: timeout=5\r\n\
Mcp-Session-Id: upstream-session-1\r\n\
X-Upstream-Marker: end-to-end\r\n\
\r\n\
{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";

fn show(response: &RawResponse) -> String {
    format!(
        "{} {:?}\n{}",
        response.status,
        response.headers,
        response.body_text()
    )
}

#[test]
fn request_is_rewritten_for_the_upstream_and_mcp_headers_kept() {
    let upstream = CapturingUpstream::start(CANNED);
    let gateway = Gateway::start(&GatewaySpec::cli(
        format!("http://{}/mcp", upstream.addr()),
        API,
    ));
    let gateway_host = gateway.addr().to_string();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"note":"caf\u00e9 \ud83d\ude00"}}}"#;
    let request = format!(
        "POST {API} HTTP/1.1\r\n\
         Host: {gateway_host}\r\n\
         Content-Type: application/json\r\n\
         Accept: {MCP_ACCEPT}\r\n\
         Mcp-Session-Id: client-session-42\r\n\
         MCP-Protocol-Version: 2025-11-25\r\n\
         Last-Event-ID: event-7\r\n\
         X-Forwarded-For: 10.9.8.7\r\n\
         Connection: close, X-Hop-Custom\r\n\
         X-Hop-Custom: must-not-pass\r\n\
         Keep-Alive: timeout=9\r\n\
         Proxy-Connection: keep-alive\r\n\
         TE: trailers\r\n\
         X-End-To-End: must-pass\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = exchange(gateway.addr(), request.as_bytes(), Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status, 200, "{}", show(&response));

    let captured = upstream.wait_for(1, Duration::from_secs(5));
    assert_eq!(
        captured.len(),
        1,
        "the upstream saw {} requests",
        captured.len()
    );
    let seen = &captured[0];
    assert_eq!(
        seen.request_line(),
        "POST /mcp HTTP/1.1",
        "request-target not rewritten:\n{}",
        seen.head
    );
    assert_eq!(
        seen.headers("host"),
        [upstream.addr().to_string()],
        "Host:\n{}",
        seen.head
    );
    for (name, value) in [
        ("mcp-session-id", "client-session-42"),
        ("mcp-protocol-version", "2025-11-25"),
        ("last-event-id", "event-7"),
        ("accept", MCP_ACCEPT),
        ("content-type", "application/json"),
        ("x-end-to-end", "must-pass"),
        ("x-forwarded-for", "10.9.8.7, 127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", gateway_host.as_str()),
    ] {
        assert_eq!(
            seen.headers(name),
            [value],
            "{name} as the upstream saw it:\n{}",
            seen.head
        );
    }
    for hop in ["keep-alive", "proxy-connection", "te", "x-hop-custom"] {
        assert!(
            seen.headers(hop).is_empty(),
            "hop-by-hop {hop} reached the upstream:\n{}",
            seen.head
        );
    }
    assert!(
        seen.headers("connection")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("x-hop-custom")),
        "the client's Connection list reached the upstream:\n{}",
        seen.head
    );
    assert_eq!(
        seen.body,
        body.as_bytes(),
        "the body was changed on the way"
    );

    assert_eq!(
        response.header("x-upstream-marker"),
        Some("end-to-end"),
        "{}",
        show(&response)
    );
    assert_eq!(
        response.header("mcp-session-id"),
        Some("upstream-session-1"),
        "{}",
        show(&response)
    );
    assert!(
        response.header("keep-alive").is_none(),
        "upstream hop-by-hop Keep-Alive reached the client"
    );
    assert_eq!(
        response.body_text(),
        r#"{"jsonrpc":"2.0","id":1,"result":{}}"#
    );
}

#[test]
fn what_follows_the_entrypoint_path_follows_the_upstream_path() {
    let upstream = CapturingUpstream::start(CANNED);
    let gateway = Gateway::start(&GatewaySpec::cli(
        format!("http://{}/base/mcp", upstream.addr()),
        API,
    ));
    let host = gateway.addr().to_string();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    for sent in [
        API.to_owned(),
        format!("{API}/sub/path"),
        format!("{API}?x=1&y=%20"),
    ] {
        let request = format!(
            "POST {sent} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: {MCP_ACCEPT}\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let response = exchange(gateway.addr(), request.as_bytes(), Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status, 200, "POST {sent}: {}", show(&response));
    }
    let captured = upstream.wait_for(3, Duration::from_secs(5));
    let targets: Vec<&str> = captured
        .iter()
        .map(|r| r.request_line().split(' ').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        targets,
        ["/base/mcp", "/base/mcp/sub/path", "/base/mcp?x=1&y=%20"]
    );
}

/// DNS rebinding (the MCP specification: servers MUST validate `Origin`): a browser request
/// whose `Origin` the gateway does not know is refused 403 before it reaches the upstream, even
/// when its `Host` names that same origin (what a rebound page sends); loopback pages, the
/// configured origins and requests without `Origin` pass. `"*"` turns the check off.
#[test]
fn unknown_browser_origins_are_refused_before_the_upstream() {
    let upstream = CapturingUpstream::start(CANNED);
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\n\
         allowed_origins = [\"https://app.example.com\"]\n\n\
         [[api]]\nname = \"e\"\npath = \"{API}\"\nupstream = \"http://{}/mcp\"\n",
        upstream.addr()
    );
    let gateway = Gateway::start(&GatewaySpec::config(config));
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let post = |origin: Option<&str>, host: &str| {
        let mut headers = vec![("Content-Type", "application/json"), ("Accept", MCP_ACCEPT)];
        if let Some(origin) = origin {
            headers.push(("Origin", origin));
        }
        let request =
            mcpgate_tests::http::build_request("POST", API, host, &headers, ping.as_bytes());
        exchange(gateway.addr(), &request, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("POST with Origin {origin:?}: {e}"))
    };
    for (origin, host) in [
        ("http://evil.example.com", "evil.example.com"),
        ("http://evil.example.com:8080", "evil.example.com:8080"),
        ("http://app.example.com", "localhost"),
        ("null", "localhost"),
    ] {
        let refused = post(Some(origin), host);
        assert_eq!(refused.status, 403, "{origin}: {}", show(&refused));
        let error = refused
            .json()
            .unwrap_or_else(|e| panic!("{e}: {}", show(&refused)));
        assert_eq!(error["error"]["code"], -32000, "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(origin)),
            "{error}"
        );
    }
    assert_eq!(
        upstream.count(),
        0,
        "a refused request reached the upstream"
    );
    let allowed = [
        Some("https://app.example.com"),
        Some("http://localhost:6274"),
        Some("http://127.0.0.1:3000"),
        None,
    ];
    for origin in allowed {
        let passed = post(origin, "localhost");
        assert_eq!(passed.status, 200, "{origin:?}: {}", show(&passed));
    }
    assert_eq!(
        upstream
            .wait_for(allowed.len(), Duration::from_secs(10))
            .len(),
        allowed.len()
    );

    let open = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nallowed_origins = [\"*\"]\n\n\
         [[api]]\nname = \"e\"\npath = \"{API}\"\nupstream = \"http://{}/mcp\"\n",
        upstream.addr()
    )));
    let request = mcpgate_tests::http::build_request(
        "POST",
        API,
        "evil.example.com",
        &[
            ("Content-Type", "application/json"),
            ("Accept", MCP_ACCEPT),
            ("Origin", "http://evil.example.com"),
        ],
        ping.as_bytes(),
    );
    let passed =
        exchange(open.addr(), &request, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(passed.status, 200, "{}", show(&passed));
}
