//! Shared by the observability end-to-end tests (`observe_*.rs`): a gateway with recording on in
//! front of server-everything, plain GETs on its admin listener, external programs that must be
//! present (a missing one fails the test with how to install it), and polling with a deadline.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mcpgate_tests::http::{initialize_body, post_mcp, RawResponse};
use mcpgate_tests::peers::repo_root;
use mcpgate_tests::process::run_to_completion;
use mcpgate_tests::{Gateway, GatewaySpec, ServerEverything};

/// The entrypoint path of the API under test.
pub const API_PATH: &str = "/mcp";
/// The API's name in records and metric labels.
pub const API_NAME: &str = "everything";

/// server-everything, and mcpgate in front of it writing JSON lines to a file in a scratch dir.
pub struct Stack {
    pub gateway: Gateway,
    pub upstream: ServerEverything,
    pub scratch: Scratch,
    pub log_file: PathBuf,
}

impl Stack {
    /// `capture`: payload capture on for the API (off is the default).
    pub fn start(name: &str, capture: bool) -> Self {
        Self::start_with(name, capture, "")
    }

    /// `gateway_log`: extra lines for the `[gateway.log]` table.
    pub fn start_with(name: &str, capture: bool, gateway_log: &str) -> Self {
        Self::start_full(name, capture, gateway_log, "")
    }

    /// `api_tables`: more tables of the `[[api]]` (e.g. `[api.acl]`), after `[api.log]`.
    pub fn start_full(name: &str, capture: bool, gateway_log: &str, api_tables: &str) -> Self {
        Self::start_all(name, capture, gateway_log, api_tables, "")
    }

    /// `gateway_tables`: more tables of `[gateway]` (e.g. `[gateway.admin_auth]`), after
    /// `[gateway.log]`.
    pub fn start_all(
        name: &str,
        capture: bool,
        gateway_log: &str,
        api_tables: &str,
        gateway_tables: &str,
    ) -> Self {
        let upstream = ServerEverything::start();
        let scratch = Scratch::new(name);
        let log_file = scratch.path.join("exchanges.jsonl");
        let toml = format!(
            r#"
[gateway]
listen = "{{listen}}"
admin = "{{admin}}"
workers = 2

[gateway.log]
sink = "file"
file = "{log}"
{gateway_log}
{gateway_tables}

[[api]]
name = "{API_NAME}"
path = "{API_PATH}"
upstream = "{up}"

[api.log]
capture = {capture}
capture_max_bytes = 8192
{api_tables}
"#,
            log = log_file.display(),
            up = upstream.upstream_url(),
        );
        let gateway = Gateway::start(&GatewaySpec::config(toml));
        Self {
            gateway,
            upstream,
            scratch,
            log_file,
        }
    }

    pub fn mcp_url(&self) -> String {
        self.gateway.url(API_PATH)
    }

    pub fn admin(&self) -> SocketAddr {
        self.gateway.admin_addr()
    }

    /// Opens a session by hand (initialize + initialized), with `extra` headers on both.
    pub fn open_session(&self, extra: &[(&str, &str)]) -> String {
        let init = post_mcp(self.gateway.addr(), API_PATH, extra, &initialize_body(1))
            .unwrap_or_else(|e| panic!("initialize: {e}\n{}", self.gateway.output()));
        assert_eq!(init.status, 200, "initialize: {}", init.body_text());
        let session = init
            .header("mcp-session-id")
            .unwrap_or_else(|| panic!("initialize answer without Mcp-Session-Id"))
            .to_string();
        let mut headers = extra.to_vec();
        headers.push(("Mcp-Session-Id", &session));
        let done = post_mcp(
            self.gateway.addr(),
            API_PATH,
            &headers,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .unwrap_or_else(|e| panic!("notifications/initialized: {e}"));
        assert_eq!(done.status, 202, "initialized: {}", done.body_text());
        session
    }

    /// A request in an open session; returns the answer.
    pub fn call(&self, session: &str, extra: &[(&str, &str)], body: &str) -> RawResponse {
        let mut headers = extra.to_vec();
        headers.push(("Mcp-Session-Id", session));
        post_mcp(self.gateway.addr(), API_PATH, &headers, body)
            .unwrap_or_else(|e| panic!("POST {body}: {e}\n{}", self.gateway.output()))
    }

    /// `prompts/get` of a prompt server-everything does not have: a JSON-RPC error (-32602) answer.
    pub fn provoke_jsonrpc_error(&self, session: &str) -> RawResponse {
        let answer = self.call(
            session,
            &[],
            r#"{"jsonrpc":"2.0","id":77,"method":"prompts/get","params":{"name":"no-such-prompt"}}"#,
        );
        let messages = answer
            .jsonrpc_messages()
            .unwrap_or_else(|e| panic!("prompts/get answer: {e}"));
        assert!(
            messages
                .iter()
                .any(|m| m["error"]["code"].as_i64() == Some(-32602)),
            "server-everything was expected to answer -32602: {messages:?}"
        );
        answer
    }
}

/// A scratch directory removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "mcpgate-{name}-{}-{:016x}",
            std::process::id(),
            rand_seed()
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// A fresh value no run could contain by chance.
pub fn unique_token(prefix: &str) -> String {
    format!("{prefix}{:016x}{:016x}", rand_seed(), rand_seed())
}

/// GET on the admin listener (one request per connection); `(status, body)`.
pub fn admin_get(admin: SocketAddr, path_and_query: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to the admin listener {admin}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request =
        format!("GET {path_and_query} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("write to {admin}: {e}"));
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path_and_query}: no HTTP head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path_and_query}: bad status line in {head:?}"));
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// Decodes a chunked body read to the end (other servers than mcpgate, e.g. Prometheus, use it).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size_line, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
    }
    out
}

/// GET returning JSON (status 200 required).
pub fn admin_json(admin: SocketAddr, path_and_query: &str) -> serde_json::Value {
    let (status, body) = admin_get(admin, path_and_query);
    assert_eq!(status, 200, "GET {path_and_query}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path_and_query}: {e}: {body}"))
}

/// Polls `probe` until it returns `Some`, or fails with `what` and the last state seen.
pub fn poll<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The path of an external program the test needs. Missing: the test FAILS (scripts/test.sh
/// installs it), it does not skip.
pub fn require_program(name: &str, debian_package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` is not installed, and this test needs the real program: run scripts/test.sh \
         (it installs it) or `apt-get install {debian_package}`"
    );
}

/// `<repo>/test-artifacts/` (gitignored), created.
pub fn artifacts_dir() -> PathBuf {
    let dir = repo_root().join("test-artifacts");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Percent-encodes a query parameter value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs headless Chromium on `url` with `extra` arguments; its stdout.
pub fn chromium(profile: &Path, url: &str, extra: &[String]) -> String {
    let binary = require_program("chromium", "chromium");
    let mut command = Command::new(binary);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,2200",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url);
    let finished = run_to_completion(command, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("cannot run chromium: {e}"));
    assert!(
        finished.status.is_some_and(|s| s.success()) && !finished.timed_out,
        "chromium failed ({:?}, timed out: {})\n{}",
        finished.status,
        finished.timed_out,
        finished.stderr
    );
    finished.stdout
}

/// The visible text of a DOM dump: scripts and styles dropped, tags removed, whitespace collapsed,
/// entities decoded (the few the console's escaping produces).
pub fn visible_text(dom: &str) -> String {
    let mut text = String::with_capacity(dom.len());
    let mut rest = dom;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        text.push(' ');
        let after = &rest[start..];
        let skip_to = if after.starts_with("<script") {
            after.find("</script>").map(|i| i + "</script>".len())
        } else if after.starts_with("<style") {
            after.find("</style>").map(|i| i + "</style>".len())
        } else {
            after.find('>').map(|i| i + 1)
        };
        match skip_to {
            Some(n) => rest = &after[n..],
            None => {
                rest = "";
                break;
            }
        }
    }
    text.push_str(rest);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}
