//! Several APIs behind one listener: the longest entrypoint prefix on a segment boundary wins,
//! the rest of the path follows the upstream path, anything else is the gateway's own 404, dot
//! segments are refused before any upstream sees them, and sequential requests share pooled
//! upstream connections instead of opening one each.

use std::time::Duration;

use mcpgate_tests::http::{exchange, RawResponse, MCP_ACCEPT};
use mcpgate_tests::net::CapturingUpstream;
use mcpgate_tests::{Gateway, GatewaySpec};

const CANNED: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n\
{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";

fn post(gateway: &Gateway, path: &str) -> RawResponse {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: {MCP_ACCEPT}\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        gateway.addr(),
        body.len()
    );
    exchange(gateway.addr(), request.as_bytes(), Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

fn targets(upstream: &CapturingUpstream, count: usize) -> Vec<String> {
    upstream
        .wait_for(count, Duration::from_secs(5))
        .iter()
        .map(|r| {
            r.request_line()
                .split(' ')
                .nth(1)
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn two_apis(outer: &CapturingUpstream, inner: &CapturingUpstream) -> Gateway {
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\nname = \"outer\"\npath = \"/a\"\nupstream = \"http://{}/outer\"\n\n\
         [[api]]\nname = \"inner\"\npath = \"/a/b\"\nupstream = \"http://{}/inner\"\n",
        outer.addr(),
        inner.addr()
    );
    Gateway::start(&GatewaySpec::config(config))
}

#[test]
fn longest_prefix_on_a_segment_boundary_wins() {
    let outer = CapturingUpstream::start(CANNED);
    let inner = CapturingUpstream::start(CANNED);
    let gateway = two_apis(&outer, &inner);
    for path in ["/a", "/a/x", "/a/b", "/a/b/c", "/a/bc"] {
        let response = post(&gateway, path);
        assert_eq!(
            response.status,
            200,
            "POST {path}: {} {}",
            response.status,
            response.body_text()
        );
    }
    assert_eq!(
        targets(&outer, 3),
        ["/outer", "/outer/x", "/outer/bc"],
        "what reached the /a upstream"
    );
    assert_eq!(
        targets(&inner, 2),
        ["/inner", "/inner/c"],
        "what reached the /a/b upstream"
    );
}

#[test]
fn paths_outside_every_api_are_the_gateways_404() {
    let outer = CapturingUpstream::start(CANNED);
    let inner = CapturingUpstream::start(CANNED);
    let gateway = two_apis(&outer, &inner);
    for path in ["/ab", "/", "/b", "/A"] {
        let response = post(&gateway, path);
        assert_eq!(
            response.status,
            404,
            "POST {path}: {} {}",
            response.status,
            response.body_text()
        );
    }
    assert_eq!(
        outer.connections() + inner.connections(),
        0,
        "an unrouted request reached an upstream"
    );
}

#[test]
fn dot_segments_are_refused_before_the_upstream() {
    let outer = CapturingUpstream::start(CANNED);
    let inner = CapturingUpstream::start(CANNED);
    let gateway = two_apis(&outer, &inner);
    for path in ["/a/b/../x", "/a/./b", "/a/b/%2e%2e/x", "/a/%2E/b"] {
        let response = post(&gateway, path);
        assert!(
            (400..500).contains(&response.status),
            "POST {path} was answered {} {}",
            response.status,
            response.body_text()
        );
    }
    assert_eq!(
        outer.connections() + inner.connections(),
        0,
        "a dot-segment path reached an upstream"
    );
}

#[test]
fn sequential_requests_reuse_pooled_upstream_connections() {
    let upstream = CapturingUpstream::start(CANNED);
    let gateway = Gateway::start(&GatewaySpec::cli(
        format!("http://{}/mcp", upstream.addr()),
        "/mcp-proxy",
    ));
    const REQUESTS: usize = 8;
    for _ in 0..REQUESTS {
        let response = post(&gateway, "/mcp-proxy");
        assert_eq!(
            response.status,
            200,
            "{} {}",
            response.status,
            response.body_text()
        );
    }
    assert_eq!(
        upstream.wait_for(REQUESTS, Duration::from_secs(5)).len(),
        REQUESTS
    );
    // Each client connection is closed after one request and may land on either of the two
    // workers; each worker keeps its own pool, so at most one upstream connection per worker.
    assert!(
        upstream.connections() <= 2,
        "{REQUESTS} sequential requests opened {} upstream connections (no keep-alive reuse)",
        upstream.connections()
    );
}
