//! The upstreams ("origins") the side-by-side harness can put behind the proxies: the project's
//! own mock, nginx as a trivial origin that answers every POST from its config, and the real
//! `@modelcontextprotocol/server-everything` (Node). A claim holds only if it holds on an origin
//! we did not write (design.md §9): our mock sends no `Date`, `Server` or `Connection` header and
//! answers from pre-rendered bytes, which may flatter the gateway.
//!
//! nginx cannot read a POST body before answering, so it picks its answer from the request:
//! without `Mcp-Session-Id` it answers `initialize` (and hands out a session id), with one it
//! answers by the `answer` query parameter the harness appends to the URL for that origin only
//! (`json`, `sse` or `list`). The proxies forward the query untouched.

use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;

use crate::mcp::{MockAnswers, Scenario, ToolCall};

/// Which origin a leg's requests end up at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OriginKind {
    /// `mock_upstream` (ours).
    Mock,
    /// `mock_upstream` adding the header fields nginx sends ([`NGINX_LIKE_HEADERS`]): isolates
    /// what those fields cost a proxy from everything else that differs between the origins.
    MockHdr,
    /// nginx `return 200` with fixed JSON-RPC bodies.
    Nginx,
    /// server-everything, Streamable HTTP, real sessions; calls its `echo` tool.
    Everything,
}

impl OriginKind {
    pub const ALL: [OriginKind; 4] = [
        OriginKind::Mock,
        OriginKind::MockHdr,
        OriginKind::Nginx,
        OriginKind::Everything,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OriginKind::Mock => "mock",
            OriginKind::MockHdr => "mock-hdr",
            OriginKind::Nginx => "nginx",
            OriginKind::Everything => "everything",
        }
    }

    /// Whether this origin can serve `scenario`. Only the mock holds idle GET streams.
    pub fn supports(self, scenario: Scenario) -> bool {
        scenario != Scenario::IdleSse || self == OriginKind::Mock
    }

    /// What the harness appends to every URL of a leg in front of this origin.
    pub fn query(self, scenario: Scenario) -> &'static str {
        match (self, scenario) {
            (OriginKind::Nginx, Scenario::CallSse) => "?answer=sse",
            (OriginKind::Nginx, s) if s.is_list() => "?answer=list",
            (OriginKind::Nginx, _) => "?answer=json",
            _ => "",
        }
    }

    /// The `tools/call` this origin can answer, when it is not the mock's `tool_7`.
    /// server-everything answers every call as SSE (the SDK's default when the client accepts
    /// both), so on it call-json and call-sse are the same exchange.
    pub fn tool_call(self) -> Option<ToolCall> {
        match self {
            OriginKind::Everything => Some(ToolCall {
                name: "echo".to_owned(),
                arguments: r#"{"message":"x"}"#.to_owned(),
            }),
            _ => None,
        }
    }
}

impl fmt::Display for OriginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OriginKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OriginKind::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                format!("unknown origin {s:?} (expected mock, mock-hdr, nginx or everything)")
            })
    }
}

/// The fields nginx 1.22 adds to a `return 200` answer that our mock does not send (its Date is
/// fixed here: a proxy copies it like any other field).
pub const NGINX_LIKE_HEADERS: [&str; 3] = [
    "Server: nginx/1.22.1",
    "Date: Mon, 07 Dec 2026 08:00:00 GMT",
    "Connection: keep-alive",
];

/// The session id the nginx origin hands out on `initialize`.
pub const NGINX_ORIGIN_SESSION: &str = "nginx-origin-session";

/// Longest quoted parameter written into the config: nginx refuses a token longer than its 4 KiB
/// parse buffer ("too long parameter"), and a 100-tool list is ~28 KB.
const NGINX_PARAM_MAX: usize = 3000;

/// `body` as nginx directives that answer it: `set` of one variable per piece of at most
/// [`NGINX_PARAM_MAX`] bytes, then `return 200` of their concatenation (variables' values are
/// not interpolated again). `None` if the body holds a character nginx would interpret (`$`
/// variables, quotes, backslashes). `name` keeps the variables of different answers apart.
fn nginx_return(name: &str, body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if text.contains(['$', '\'', '\\', '\r']) {
        return None;
    }
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(NGINX_PARAM_MAX);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    let mut out = String::new();
    let mut vars = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        let _ = std::fmt::Write::write_fmt(
            &mut out,
            format_args!(
                "set ${name}_{i} '{}';\n            ",
                piece.replace('\n', "\\n")
            ),
        );
        vars.push_str(&format!("${name}_{i}"));
    }
    out.push_str(&format!("return 200 \"{vars}\";"));
    Some(out)
}

/// The fixed bodies the nginx origin answers with, rendered by the mock's own code so that both
/// origins send the same bytes (the JSON-RPC `id` is fixed: nginx cannot echo the request's).
pub struct NginxOriginBodies {
    pub initialize: Vec<u8>,
    pub call_json: Vec<u8>,
    pub call_sse: Vec<u8>,
    pub list: Vec<u8>,
}

impl NginxOriginBodies {
    pub fn new(tools: usize, result_bytes: usize) -> Self {
        let answers = MockAnswers::new(tools, result_bytes);
        let mut initialize = Vec::new();
        MockAnswers::write_initialize(b"0", &mut initialize);
        let mut call_json = Vec::new();
        answers.write_call(b"1", &mut call_json);
        let mut call_sse = b"event: message\ndata: ".to_vec();
        MockAnswers::write_progress("\"p1\"", &mut call_sse);
        call_sse.extend_from_slice(b"\n\nevent: message\ndata: ");
        answers.write_call(b"1", &mut call_sse);
        call_sse.extend_from_slice(b"\n\n");
        let mut list = Vec::new();
        answers.write_list(b"1", &mut list);
        Self {
            initialize,
            call_json,
            call_sse,
            list,
        }
    }
}

/// nginx as a trivial MCP origin on `port` (see the module doc for how it picks its answer).
/// `keepalive_requests` and `keepalive_timeout` are as generous as the proxy's, so neither side
/// closes pooled connections during a run.
pub fn nginx_origin_conf(
    dir: &Path,
    port: u16,
    workers: usize,
    bodies: &NginxOriginBodies,
) -> Result<String, &'static str> {
    let q = |name: &str, b: &[u8]| {
        nginx_return(name, b).ok_or("an nginx origin body holds $, quotes or backslashes")
    };
    let (init, json, sse, list) = (
        q("init", &bodies.initialize)?,
        q("json", &bodies.call_json)?,
        q("sse", &bodies.call_sse)?,
        q("list", &bodies.list)?,
    );
    let d = dir.display();
    let mut c = Vec::new();
    let _ = write!(
        c,
        r#"# Generated by mcpgate-bench sidebyside: nginx as a trivial MCP origin.
worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} backlog=8192 reuseport;
        location = /mcp {{
            default_type application/json;
            if ($http_mcp_session_id = "") {{ rewrite ^ /answer-init last; }}
            if ($arg_answer = "sse") {{ rewrite ^ /answer-sse last; }}
            if ($arg_answer = "list") {{ rewrite ^ /answer-list last; }}
            {json}
        }}
        location = /answer-init {{
            internal;
            default_type application/json;
            add_header Mcp-Session-Id {NGINX_ORIGIN_SESSION} always;
            {init}
        }}
        location = /answer-sse {{
            internal;
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            {sse}
        }}
        location = /answer-list {{
            internal;
            default_type application/json;
            {list}
        }}
    }}
}}
"#
    );
    String::from_utf8(c).map_err(|_| "nginx origin config is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip_and_idle_streams_only_on_the_mock() {
        for o in OriginKind::ALL {
            assert_eq!(o.name().parse::<OriginKind>(), Ok(o));
            assert!(o.supports(Scenario::CallJson));
        }
        assert!(OriginKind::Mock.supports(Scenario::IdleSse));
        assert!(!OriginKind::Nginx.supports(Scenario::IdleSse));
        assert_eq!(
            OriginKind::Nginx.query(Scenario::ListAclJwt),
            "?answer=list"
        );
        assert_eq!(OriginKind::Mock.query(Scenario::CallSse), "");
    }

    #[test]
    fn nginx_origin_config_quotes_every_body() {
        let bodies = NginxOriginBodies::new(100, 256);
        let conf = nginx_origin_conf(Path::new("/tmp/x"), 1234, 2, &bodies)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(conf.contains("listen 127.0.0.1:1234 "));
        assert!(conf.contains("set $list_0 '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":["));
        assert!(conf.contains("return 200 \"$list_0$list_1$list_2"));
        assert!(conf.contains("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\""));
        // Every quoted piece fits nginx's parse buffer.
        assert!(conf.lines().all(|l| l.len() < 4000));
        assert!(nginx_return("x", b"a$b").is_none());
        assert_eq!(
            nginx_return("x", b"a\nb").as_deref(),
            Some("set $x_0 'a\\nb';\n            return 200 \"$x_0\";")
        );
    }
}
