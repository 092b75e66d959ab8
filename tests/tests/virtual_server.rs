//! The virtual MCP server (issue 15): one gateway endpoint over server-everything on each
//! transport (two over Streamable HTTP, one over stdio, one over legacy SSE) and a Python SDK
//! server over stdio (tests/py/sdk_server.py). The official TypeScript and Python SDK clients
//! list (prefixed names, every page), call, read and get prompts across the upstreams (scenario
//! `virtual`), and answer sampling, elicitation and roots asked through it while progress
//! arrives as it happens; a raw client kills one upstream mid-session and the others keep
//! working, hears `list_changed` on its GET stream, sees the upstream rejoin once restarted,
//! kills the stdio child and sees it restarted, checks the child's environment, DELETE; the ACL
//! judges the prefixed names; `--upstream-cmd` publishes one stdio server as it is; a legacy SSE
//! upstream drops out and comes back.
//!
//! Expected names are not hard-coded lists: the same program behind several transports must show
//! the same names (those its declared capabilities bring aside), containing the tools the calls
//! use.

mod observe_common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mcpgate_tests::http::{McpSession, SseStream};
use mcpgate_tests::peers::{run_client_with_env, tests_dir, EverythingTransport};
use mcpgate_tests::scenarios;
use mcpgate_tests::{run_client, Driver, Gateway, GatewaySpec, Sdk, ServerEverything};
use observe_common::{admin_get, admin_json, poll};
use serde_json::{json, Value};

const PATH: &str = "/mcp";
const PROTOCOL: &str = "2025-06-18";
const UPSTREAMS: [&str; 3] = ["a", "b", "s"];

fn everything_entry() -> PathBuf {
    tests_dir().join("js/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// A virtual API at `/mcp`: `a` and `b` over Streamable HTTP, `s` over stdio (`env` given to it
/// explicitly), then `extra` (more tables of the `[[api]]`).
fn virtual_config(a: &ServerEverything, b: &ServerEverything, extra: &str) -> String {
    format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\nname = \"toolbox\"\npath = \"{PATH}\"\n\n\
         [[api.upstream]]\nname = \"a\"\nurl = \"{}\"\n\n\
         [[api.upstream]]\nname = \"b\"\nurl = \"{}\"\n\n\
         [[api.upstream]]\nname = \"s\"\ncommand = \"node\"\nargs = [\"{}\", \"stdio\"]\n\
         env = {{ MCPGATE_TEST_GIVEN = \"given-to-the-child\" }}\n\n{extra}",
        a.upstream_url(),
        b.upstream_url(),
        everything_entry().display()
    )
}

/// The gateway with its stdio upstream initialized (its log says so), within a deadline.
fn start(config: String) -> Gateway {
    let mut gateway = Gateway::start(&GatewaySpec::config(config));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gateway
        .output()
        .contains("stdio upstream toolbox/s: initialized")
    {
        assert!(
            Instant::now() < deadline,
            "the stdio upstream was not initialized:\n{}",
            gateway.output()
        );
        assert!(gateway.process().exited().is_none(), "{}", gateway.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    gateway
}

/// The upstream prefixes of `names` (`a__echo` → `a`), and whether every name has one.
fn prefixes(names: &[String]) -> BTreeSet<String> {
    names
        .iter()
        .map(|n| match n.split_once("__") {
            Some((p, _)) => p.to_owned(),
            None => panic!("an unprefixed name: {n} in {names:?}"),
        })
        .collect()
}

/// The names of one upstream with its prefix removed.
fn own_names(names: &[String], upstream: &str) -> BTreeSet<String> {
    names
        .iter()
        .filter_map(|n| n.strip_prefix(&format!("{upstream}__")).map(str::to_owned))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The upstreams of [`five_upstreams`]: server-everything over Streamable HTTP (`a`, `b`), over
/// stdio (`s`) and over legacy SSE (`l`), and a Python SDK server over stdio (`p`).
const FIVE: [&str; 5] = ["a", "b", "s", "l", "p"];

fn check_virtual_observations(sdk: Sdk, o: &Value) {
    let all: BTreeSet<String> = FIVE.iter().map(|s| s.to_string()).collect();
    assert_eq!(o["serverName"], "toolbox", "{sdk:?}: {o}");
    assert!(
        o["sessionIdPresent"].as_bool() == Some(true),
        "{sdk:?}: {o}"
    );
    assert!(
        o["protocolVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "{sdk:?}: {o}"
    );
    let instructions = o["instructions"].as_str().unwrap_or_default();
    for u in FIVE {
        assert!(
            instructions.contains(&format!("## {u}\n")),
            "{sdk:?}: instructions lack upstream {u}"
        );
    }
    for field in ["toolNames", "promptNames", "templateNames"] {
        let names = strings(&o[field]);
        assert_eq!(prefixes(&names), all, "{sdk:?} {field}: {names:?}");
        let first = own_names(&names, "a");
        assert!(!first.is_empty(), "{sdk:?} {field}: {names:?}");
        assert_eq!(own_names(&names, "b"), first, "{sdk:?} {field} of b");
        // The two shared links (stdio, legacy SSE) of one program: the same names.
        let shared = own_names(&names, "s");
        assert_eq!(own_names(&names, "l"), shared, "{sdk:?} {field} of l");
        assert!(shared.is_subset(&first), "{sdk:?} {field} of s: {shared:?}");
        if field != "toolNames" {
            assert_eq!(shared, first, "{sdk:?} {field} of s");
        }
    }
    let tools = own_names(&strings(&o["toolNames"]), "a");
    assert!(
        tools.contains("echo") && tools.contains("get-sum"),
        "{tools:?}"
    );
    // The HTTP legs were told the client answers sampling, elicitation and roots (relayed to
    // it); the shared links sampling and elicitation (relayed to the client of their only call
    // in flight), not roots (they belong to one client).
    assert!(
        tools.contains("trigger-sampling-request") && tools.contains("get-roots-list"),
        "{tools:?}"
    );
    let stdio_tools = own_names(&strings(&o["toolNames"]), "s");
    assert!(
        stdio_tools.contains("trigger-sampling-request") && !stdio_tools.contains("get-roots-list"),
        "{stdio_tools:?}"
    );
    let python_tools = own_names(&strings(&o["toolNames"]), "p");
    for wanted in ["echo", "get-sum", "trigger-sampling-request"] {
        assert!(python_tools.contains(wanted), "{python_tools:?}");
    }
    for u in FIVE {
        assert_eq!(o["calls"][u], format!("Echo: hi {u}"), "{sdk:?}: {o}");
        assert_eq!(o["sums"][u], "The sum of 2 and 40 is 42.", "{sdk:?}: {o}");
        assert!(
            o["promptTexts"][u]
                .as_str()
                .is_some_and(|t| t.contains("Oslo")),
            "{sdk:?}: {o}"
        );
    }
    let uris = strings(&o["resourceUris"]);
    let unique: BTreeSet<_> = uris.iter().collect();
    assert!(
        !uris.is_empty() && unique.len() == uris.len(),
        "{sdk:?}: resources listed once each: {uris:?}"
    );
    // server-everything lists the same URIs behind every transport: the first upstream keeps
    // them, the others' are rewritten under their names.
    for u in ["b", "s", "l"] {
        assert!(
            uris.iter()
                .any(|uri| uri.starts_with(&format!("mcpgate://{u}/"))),
            "{sdk:?}: no rewritten URI of {u}: {uris:?}"
        );
    }
    assert!(
        uris.iter().any(|uri| uri.starts_with("pyserver://")),
        "{sdk:?}: {uris:?}"
    );
    assert!(
        o["readFirst"][0]["textLength"].as_u64().unwrap_or(0) > 0,
        "{sdk:?}: {o}"
    );
    assert!(
        o["templatedText"]
            .as_str()
            .is_some_and(|t| t.contains("Resource 7")),
        "{sdk:?}: {o}"
    );
    assert!(
        o["unknownTool"]
            .as_str()
            .is_some_and(|t| t.contains("Unknown tool: nobody__echo")),
        "{sdk:?}: {o}"
    );
    assert_eq!(o["ping"], json!({}), "{sdk:?}: {o}");
}

/// The pass-through path's own checks of `scenario` (`mcpgate_tests::scenarios::check`) on what
/// a client observed through a virtual API.
fn check_scenario(sdk: Sdk, scenario: &str, value: &Value) {
    scenarios::check(
        scenario,
        &scenarios::Observed {
            sdk,
            route: scenarios::Route::Through(Driver::Uring),
            value,
        },
    );
}

/// A virtual API over [`FIVE`] upstreams, each initialized (the gateway's log says so); the
/// peers live as long as the returned guards.
fn five_upstreams() -> (Gateway, Vec<ServerEverything>) {
    let a = ServerEverything::start();
    let b = ServerEverything::start();
    let l = ServerEverything::start_with(EverythingTransport::Sse);
    mcpgate_tests::peers::ensure_py_installed();
    let extra = format!(
        "[[api.upstream]]\nname = \"l\"\nurl = \"{}\"\ntransport = \"sse\"\n\n\
         [[api.upstream]]\nname = \"p\"\ncommand = \"{}\"\nargs = [\"{}\"]\n",
        l.sse_url(),
        tests_dir().join("py/.venv/bin/python").display(),
        tests_dir().join("py/sdk_server.py").display()
    );
    let gateway = start(virtual_config(&a, &b, &extra));
    for line in [
        "stdio upstream toolbox/p: initialized",
        "sse upstream toolbox/l: initialized",
    ] {
        poll(line, Duration::from_secs(30), || {
            let out = gateway.output();
            if out.contains(line) {
                Ok(())
            } else {
                Err(out)
            }
        });
    }
    (gateway, vec![a, b, l])
}

/// Both official SDK clients over one virtual endpoint of five upstreams on three transports
/// (two servers): every page of every list, calls, prompts and reads on each (scenario
/// `virtual`); then server→client requests and notifications with the pass-through path's own
/// checks (`mcpgate_tests::scenarios::check`): sampling and elicitation asked during a call by an
/// HTTP upstream, the shared stdio process or the Python SDK server reach the client and its
/// answers reach the upstream; progress arrives as it happens (not with the result); roots/list
/// from the HTTP upstreams arrives on the client's GET stream, and its answer and its
/// `roots/list_changed` go back to them.
#[test]
fn sdk_clients_use_one_endpoint_over_five_upstreams_and_answer_their_requests() {
    let (gateway, _peers) = five_upstreams();
    let url = gateway.url(PATH);
    for sdk in [Sdk::TypeScript, Sdk::Python] {
        let o = run_client_with_env(
            sdk,
            &url,
            "virtual",
            &[("MCPGATE_E2E_UPSTREAMS", &FIVE.join(","))],
        );
        check_virtual_observations(sdk, &o);
        for (scenario, prefix) in [
            ("sampling", "a__"),
            ("elicitation", "b__"),
            ("progress", "a__"),
            ("roots", "b__"),
            ("sampling", "s__"),
            ("elicitation", "l__"),
            ("progress", "l__"),
            ("sampling", "p__"),
            ("progress", "p__"),
        ] {
            let value =
                run_client_with_env(sdk, &url, scenario, &[("MCPGATE_E2E_TOOL_PREFIX", prefix)]);
            check_scenario(sdk, scenario, &value);
        }
    }
}

/// A JSON-RPC request on the raw session; its one answer.
fn call(session: &McpSession, id: u64, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    let (status, messages) = session.messages(&[], &body);
    assert_eq!(status, 200, "{method}: {messages:?}");
    messages
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{method}: no answer"))
}

fn tool_names(session: &McpSession, id: u64) -> Vec<String> {
    let answer = call(session, id, "tools/list", json!({}));
    answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("tools/list: {answer}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn echo(session: &McpSession, id: u64, upstream: &str) -> Value {
    call(
        session,
        id,
        "tools/call",
        json!({"name": format!("{upstream}__echo"), "arguments": {"message": "still here"}}),
    )
}

/// The gateway's child processes (its stdio upstreams), from /proc.
fn children(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    out
}

/// server-everything (Streamable HTTP) started again on `port`, killed on drop.
fn restart_everything(port: u16) -> KilledOnDrop {
    let child = std::process::Command::new("node")
        .arg(everything_entry())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("node: {e}"));
    let guard = KilledOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "server-everything did not listen on {port} again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    guard
}

struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The client's standalone GET stream on the virtual API.
fn open_get_stream(session: &McpSession) -> SseStream {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: gateway\r\nAccept: text/event-stream\r\n\
         Mcp-Session-Id: {}\r\nMCP-Protocol-Version: {}\r\n\r\n",
        session.path, session.id, session.protocol
    );
    let stream = SseStream::open(session.addr, request.as_bytes(), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("GET stream: {e}"));
    assert_eq!(stream.status, 200, "{:?}", stream.headers);
    stream
}

/// The first message with `method` on `stream`, within 20 s.
fn wait_for_message(stream: &mut SseStream, method: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        match stream.next_event(deadline) {
            Ok(Some(event)) => {
                let message = event.json();
                if message["method"] == method {
                    return message;
                }
                seen.push(message);
            }
            Ok(None) => panic!("the stream ended before {method}; saw {seen:?}"),
            Err(e) => panic!("no {method} on the stream ({e}); saw {seen:?}"),
        }
    }
}

#[test]
fn a_killed_upstream_drops_out_and_the_others_keep_working() {
    let a = ServerEverything::start();
    let b = ServerEverything::start();
    let mut gateway = start(virtual_config(&a, &b, ""));
    let session = McpSession::open(gateway.addr(), PATH, PROTOCOL);
    let before = tool_names(&session, 2);
    assert_eq!(
        prefixes(&before),
        UPSTREAMS.iter().map(|s| s.to_string()).collect()
    );

    // The stdio child's environment: what the configuration gave it, nothing of the gateway's
    // (the test harness sets RUST_BACKTRACE and cargo's variables on the gateway).
    let env = call(
        &session,
        3,
        "tools/call",
        json!({"name": "s__get-env", "arguments": {}}),
    );
    let env_text = env["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(env_text.contains("given-to-the-child"), "{env}");
    for leaked in ["RUST_BACKTRACE", "CARGO_MANIFEST_DIR", "CARGO_PKG_NAME"] {
        assert!(
            !env_text.contains(leaked),
            "{leaked} reached the child: {env_text}"
        );
    }

    // The client's GET stream merges the legs' streams; it hears when an upstream leaves.
    let mut stream = open_get_stream(&session);

    // Both HTTP upstreams list the same URIs: `b`'s are rewritten, and read from `b` under the
    // URI the client knows.
    let listed = call(&session, 20, "resources/list", json!({}));
    let collided = listed["result"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uri"].as_str())
        .find(|uri| uri.starts_with("mcpgate://b/"))
        .unwrap_or_else(|| panic!("no URI of b rewritten: {listed}"))
        .to_owned();
    let read = call(&session, 21, "resources/read", json!({"uri": collided}));
    assert_eq!(
        read["result"]["contents"][0]["uri"],
        collided.as_str(),
        "{read}"
    );
    poll("the read served by b", Duration::from_secs(20), || {
        let logs = admin_json(
            gateway.admin_addr(),
            "/api/logs?api=toolbox&method=resources/read",
        );
        let by_b = logs["records"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["upstream"] == "b");
        if by_b {
            Ok(())
        } else {
            Err(logs.to_string())
        }
    });

    // Kill `b` mid-session.
    let b_port = b.addr().port();
    drop(b);
    let changed = wait_for_message(&mut stream, "notifications/tools/list_changed");
    assert!(changed.get("id").is_none(), "{changed}");
    let after = tool_names(&session, 4);
    assert_eq!(
        prefixes(&after),
        ["a", "s"].iter().map(|s| s.to_string()).collect(),
        "b drops out of the list (fail_open)"
    );
    assert_eq!(own_names(&after, "a"), own_names(&before, "a"));
    assert_eq!(
        echo(&session, 5, "a")["result"]["content"][0]["text"],
        "Echo: still here"
    );
    assert_eq!(
        echo(&session, 6, "s")["result"]["content"][0]["text"],
        "Echo: still here"
    );
    // The exchange log names the upstream that served each call.
    let served: BTreeSet<String> = poll(
        "tools/call records served by a and s",
        Duration::from_secs(20),
        || {
            let logs = admin_json(
                gateway.admin_addr(),
                "/api/logs?api=toolbox&method=tools/call",
            );
            let upstreams: BTreeSet<String> = logs["records"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["upstream"].as_str().map(str::to_owned))
                .collect();
            if upstreams.contains("a") && upstreams.contains("s") {
                Ok(upstreams)
            } else {
                Err(logs.to_string())
            }
        },
    );
    assert!(!served.iter().any(|u| u.contains("virtual")), "{served:?}");
    let down = echo(&session, 7, "b");
    assert_eq!(down["error"]["code"], -32603, "{down}");
    assert!(
        down["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("upstream `b`")),
        "{down}"
    );

    // `b` comes back on its port, without the session: the client's stream says the lists
    // changed, and the next list opens a new leg to it (its names are back; calls work).
    let _b_again = restart_everything(b_port);
    wait_for_message(&mut stream, "notifications/tools/list_changed");
    let back = tool_names(&session, 8);
    assert_eq!(
        prefixes(&back),
        UPSTREAMS.iter().map(|s| s.to_string()).collect(),
        "b rejoined the session"
    );
    assert_eq!(
        echo(&session, 9, "b")["result"]["content"][0]["text"],
        "Echo: still here"
    );

    // Kill the stdio child: the gateway restarts it (with backoff) and it serves again.
    let pid = gateway.process().pid();
    let kids = children(pid);
    assert_eq!(kids.len(), 1, "one stdio child: {kids:?}");
    // SAFETY: kill(2) on the gateway's own child, found just above.
    unsafe {
        libc::kill(kids[0], libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut id = 100;
    loop {
        id += 1;
        let answer = echo(&session, id, "s");
        if answer["result"]["content"][0]["text"] == "Echo: still here" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stdio upstream did not come back: {answer}\n{}",
            gateway.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let restarted = children(pid);
    assert!(
        restarted.len() == 1 && restarted[0] != kids[0],
        "{kids:?} -> {restarted:?}"
    );
    // The client's stream heard about it (the shared process left and came back).
    wait_for_message(&mut stream, "notifications/tools/list_changed");

    // Per-upstream health in /metrics: all up again (b's failures counted), the stdio restart
    // counted.
    let (status, metrics) = admin_get(gateway.admin_addr(), "/metrics");
    assert_eq!(status, 200, "{metrics}");
    for line in [
        "mcpgate_virtual_upstream_up{api=\"toolbox\",upstream=\"a\"} 1",
        "mcpgate_virtual_upstream_up{api=\"toolbox\",upstream=\"b\"} 1",
        "mcpgate_virtual_upstream_up{api=\"toolbox\",upstream=\"s\"} 1",
        "mcpgate_virtual_stdio_restarts_total{api=\"toolbox\",upstream=\"s\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    assert!(
        !metrics
            .contains("mcpgate_virtual_upstream_failures_total{api=\"toolbox\",upstream=\"b\"} 0"),
        "{metrics}"
    );

    // DELETE ends every upstream session: `a` no longer knows the session afterwards.
    let response = mcpgate_tests::http::exchange(
        gateway.addr(),
        format!(
            "DELETE {PATH} HTTP/1.1\r\nHost: {}\r\nMcp-Session-Id: {}\r\nConnection: close\r\n\r\n",
            gateway.addr(),
            session.id
        )
        .as_bytes(),
        Duration::from_secs(20),
    )
    .unwrap_or_else(|e| panic!("DELETE: {e}"));
    assert_eq!(response.status, 200, "{}", response.body_text());
    let gone = session.post(
        &[],
        r#"{"jsonrpc":"2.0","id":1000,"method":"tools/call","params":{"name":"a__echo","arguments":{"message":"x"}}}"#,
    );
    assert_eq!(
        gone.status,
        404,
        "a deleted session is over: {}",
        gone.body_text()
    );
    // A session id the gateway did not seal is refused.
    let forged = McpSession {
        addr: gateway.addr(),
        path: PATH.into(),
        id: "not-a-session".into(),
        protocol: PROTOCOL,
    };
    let refused = forged.post(&[], r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    assert_eq!(refused.status, 404, "{}", refused.body_text());
}

#[test]
fn the_acl_judges_the_prefixed_names() {
    let a = ServerEverything::start();
    let b = ServerEverything::start();
    let acl = "[api.acl]\n[[api.acl.rule]]\nmethods = [\"tools/list\", \"tools/call\"]\n\
               names = [\"b__echo\", \"s__get-sum\"]\n";
    let gateway = start(virtual_config(&a, &b, acl));
    let session = McpSession::open(gateway.addr(), PATH, PROTOCOL);
    let mut names = tool_names(&session, 2);
    names.sort();
    assert_eq!(names, ["b__echo", "s__get-sum"]);
    assert_eq!(
        echo(&session, 3, "b")["result"]["content"][0]["text"],
        "Echo: still here"
    );
    let refused = echo(&session, 4, "a");
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
}

/// An ACL that refuses sampling applies to requests relayed from any upstream: the client never
/// sees them, and the upstream that asked (an HTTP leg, the shared stdio process) gets the
/// gateway's -32601 under its own id, so the call still ends.
#[test]
fn a_refused_server_request_never_reaches_the_client_and_is_answered_to_its_upstream() {
    let a = ServerEverything::start();
    let b = ServerEverything::start();
    let acl = "[api.acl]\nserver_requests = { sampling = \"deny\" }\n[[api.acl.rule]]\ntype = \"TOOLS\"\n";
    let gateway = start(virtual_config(&a, &b, acl));
    for prefix in ["a__", "s__"] {
        let through = run_client_with_env(
            Sdk::TypeScript,
            &gateway.url(PATH),
            "acl_sampling",
            &[("MCPGATE_E2E_TOOL_PREFIX", prefix)],
        );
        assert_eq!(through["samplingRequests"], json!(0), "{prefix}: {through}");
        assert_eq!(
            through["outcome"]["isError"],
            json!(true),
            "{prefix}: {through}"
        );
        let text = through["outcome"]["text"].as_str().unwrap_or_default();
        assert!(text.contains("-32601"), "{prefix}: {through}");
    }
}

/// A server that sends a call's sampling request on its standalone GET stream rather than on the
/// call's (the Python SDK does, for a request made without naming its call; the specification
/// says SHOULD, not MUST) reaches a client that has no GET stream open: the first streamed call a
/// worker makes on a leg opens the leg's GET stream beside it and relays what comes there.
#[test]
fn a_calls_request_sent_on_the_upstreams_get_stream_reaches_the_call() {
    mcpgate_tests::peers::ensure_py_installed();
    let (_server, server_addr) =
        mcpgate_tests::net::spawn_listening("the Python SDK server", |port| {
            let mut python = std::process::Command::new(tests_dir().join("py/.venv/bin/python"));
            python
                .arg(tests_dir().join("py/sdk_server.py"))
                .env("PORT", port.to_string());
            python
        });
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
         [[api]]\nname = \"toolbox\"\npath = \"{PATH}\"\n\n\
         [[api.upstream]]\nname = \"p\"\nurl = \"http://{server_addr}/mcp\"\n"
    );
    let gateway = Gateway::start(&GatewaySpec::config(config));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {"sampling": {}},
        "clientInfo": {"name": "no-get-stream", "version": "1"}}});
    let opened = mcpgate_tests::http::post_mcp(gateway.addr(), PATH, &[], &init.to_string())
        .unwrap_or_else(|e| panic!("initialize: {e}"));
    let sid = opened
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("no session: {}", opened.body_text()))
        .to_owned();
    let headers = [
        ("Mcp-Session-Id", sid.as_str()),
        ("MCP-Protocol-Version", PROTOCOL),
    ];
    let ack = mcpgate_tests::http::post_mcp(
        gateway.addr(),
        PATH,
        &headers,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .unwrap_or_else(|e| panic!("initialized: {e}"));
    assert_eq!(ack.status, 202, "{}", ack.body_text());
    // The call (one upstream: names are not prefixed), with no GET stream of the client's
    // anywhere.
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "trigger-sampling-request", "arguments": {"prompt": "side", "maxTokens": 5}}});
    let request = mcpgate_tests::http::build_request(
        "POST",
        PATH,
        &gateway.addr().to_string(),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", &sid),
            ("MCP-Protocol-Version", PROTOCOL),
        ],
        call.to_string().as_bytes(),
    );
    let mut stream = SseStream::open(gateway.addr(), &request, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the call: {e}"));
    assert_eq!(stream.status, 200, "{:?}", stream.headers);
    let asked = wait_for_message(&mut stream, "sampling/createMessage");
    let relayed_id = asked["id"].clone();
    assert!(
        relayed_id
            .as_str()
            .is_some_and(|i| i.starts_with("mcpgate:p:")),
        "{asked}"
    );
    let answer = json!({"jsonrpc": "2.0", "id": relayed_id, "result": {
        "role": "assistant", "model": "side-model", "stopReason": "endTurn",
        "content": {"type": "text", "text": "answered beside the call"}}});
    let accepted =
        mcpgate_tests::http::post_mcp(gateway.addr(), PATH, &headers, &answer.to_string())
            .unwrap_or_else(|e| panic!("the answer: {e}"));
    assert_eq!(accepted.status, 202, "{}", accepted.body_text());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let event = stream
            .next_event(deadline)
            .unwrap_or_else(|e| panic!("no answer to the call: {e}"))
            .unwrap_or_else(|| panic!("the call's stream ended without its answer"));
        let message = event.json();
        if message["id"] == 2 {
            let text = message["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default();
            assert!(
                text.contains("side-model") && text.contains("answered beside the call"),
                "{message}"
            );
            break;
        }
    }
}

#[test]
fn upstream_cmd_publishes_one_stdio_server_as_it_is() {
    let config = "[gateway]\nlisten = \"{listen}\"\nadmin = \"{admin}\"\n\n\
                  [[api]]\npath = \"/unused\"\nupstream = \"http://127.0.0.1:9/mcp\"\n";
    let command = format!("node {} stdio", everything_entry().display());
    let gateway = Gateway::start(&GatewaySpec::config(config).args([
        "--path",
        "/everything",
        "--upstream-cmd",
        &command,
    ]));
    let o = run_client(Sdk::TypeScript, &gateway.url("/everything"), "tools_call");
    assert_eq!(o["echoText"], "Echo: hello through mcpgate", "{o}");
    assert_eq!(o["sumText"], "The sum of 19 and 23 is 42.", "{o}");
    // Progress from the shared stdio process reaches the client under its own token (the
    // gateway remapped it), before the result.
    check_progress(&run_client(
        Sdk::TypeScript,
        &gateway.url("/everything"),
        "progress",
    ));
}

/// The `progress` scenario's four notifications, in order, each before the result. A virtual
/// API delivers them with the answer (not as they happen), so only their content and order are
/// checked here.
fn check_progress(o: &Value) {
    let progress = o["progress"]
        .as_array()
        .unwrap_or_else(|| panic!("no progress: {o}"));
    let values: Vec<f64> = progress
        .iter()
        .filter_map(|p| p["progress"].as_f64())
        .collect();
    assert_eq!(values, [1.0, 2.0, 3.0, 4.0], "{o}");
    assert!(progress.iter().all(|p| p["total"] == 4), "{o}");
    assert!(
        o["resultText"]
            .as_str()
            .is_some_and(|t| t.contains("Long running operation completed")),
        "{o}"
    );
}

#[test]
fn progress_from_an_http_upstream_reaches_the_client() {
    let a = ServerEverything::start();
    let config = "[gateway]\nlisten = \"{listen}\"\nadmin = \"{admin}\"\n\n\
                  [[api]]\npath = \"/unused\"\nupstream = \"http://127.0.0.1:9/mcp\"\n";
    let named = format!("a={}", a.upstream_url());
    let gateway =
        Gateway::start(&GatewaySpec::config(config).args(["--path", "/one", "--upstream", &named]));
    check_progress(&run_client(
        Sdk::TypeScript,
        &gateway.url("/one"),
        "progress",
    ));
}

/// An `https://` Streamable HTTP upstream (Node's TLS server in front of server-everything,
/// trusted through `MCPGATE_CA_FILE`): its calls stream like plain ones (sampling answered
/// through it, progress as it happens) and its legs ride kept-alive TLS connections (far fewer
/// handshakes than calls).
#[test]
fn https_legs_stream_and_keep_their_connections() {
    let origin = ServerEverything::start();
    let pki = mcpgate_tests::tls::Pki::new("vhttps");
    let cert = pki.server("upstream", &["localhost", "127.0.0.1"]);
    let https = mcpgate_tests::tls::HttpsUpstream::start(&cert, origin.addr(), None);
    let a = ServerEverything::start();
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
         [[api]]\nname = \"toolbox\"\npath = \"{PATH}\"\n\n\
         [[api.upstream]]\nname = \"a\"\nurl = \"{}\"\n\n\
         [[api.upstream]]\nname = \"h\"\nurl = \"https://localhost:{}/mcp\"\n",
        a.upstream_url(),
        https.port()
    );
    let gateway = Gateway::start(
        &GatewaySpec::config(config).env("MCPGATE_CA_FILE", pki.ca().display().to_string()),
    );
    let url = gateway.url(PATH);
    let mut calls = 0;
    for (scenario, sdk) in [
        ("sampling", Sdk::TypeScript),
        ("progress", Sdk::TypeScript),
        ("sampling", Sdk::Python),
    ] {
        let value = run_client_with_env(sdk, &url, scenario, &[("MCPGATE_E2E_TOOL_PREFIX", "h__")]);
        check_scenario(sdk, scenario, &value);
        calls += 1;
    }
    let session = McpSession::open(gateway.addr(), PATH, PROTOCOL);
    for id in 0..20 {
        assert_eq!(
            echo(&session, 100 + id, "h")["result"]["content"][0]["text"],
            "Echo: still here"
        );
        calls += 1;
    }
    // Each SDK session makes several requests to `h` (initialize, initialized, lists, the call,
    // the answer to sampling, DELETE): one TLS connection each would be well over 40. Reused,
    // they are a handful (each session's GET stream holds one) plus one per pause longer than
    // `upstream_idle` (4 s) — which a loaded machine makes between SDK runs (seen: 12–13 at
    // load average 18), so the bound leaves room for those and still fails without reuse.
    let stats = https.stats(pki.ca());
    let connections = stats["connections"].as_u64().unwrap_or(u64::MAX);
    assert!(
        connections < 20,
        "{connections} TLS connections for {calls} calls and their sessions: {stats}\n{}",
        gateway.output()
    );
}

/// The console (real headless Chromium) shows a virtual API's upstreams, each up or down as its
/// last leg went, with its transport.
#[test]
fn the_console_shows_each_upstream_up_or_down() {
    let a = ServerEverything::start();
    let b = ServerEverything::start();
    let gateway = start(virtual_config(&a, &b, ""));
    let session = McpSession::open(gateway.addr(), PATH, PROTOCOL);
    assert_eq!(prefixes(&tool_names(&session, 2)).len(), 3);
    drop(b);
    let down = echo(&session, 3, "b");
    assert_eq!(down["error"]["code"], -32603, "{down}");
    let profile = observe_common::Scratch::new("virtual-console");
    let console = format!("http://{}/", gateway.admin_addr());
    let dom = observe_common::chromium(&profile.path, &console, &["--dump-dom".to_string()]);
    for (name, transport, state) in [
        ("a", "http", "up"),
        ("b", "http", "down"),
        ("s", "stdio", "up"),
    ] {
        let start = dom
            .find(&format!("data-upstream=\"{name}\""))
            .unwrap_or_else(|| {
                panic!(
                    "no row for upstream {name} in the console:\n{}",
                    observe_common::visible_text(&dom)
                )
            });
        let row = &dom[start..];
        let row = &row[..row.find("</tr>").unwrap_or(row.len())];
        let text = observe_common::visible_text(row);
        assert!(
            text.contains(transport) && text.split_whitespace().any(|w| w == state),
            "upstream {name}: {text}"
        );
    }
}

#[test]
fn fail_closed_refuses_lists_while_an_upstream_is_down() {
    let a = ServerEverything::start();
    let b = ServerEverything::start();
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\nname = \"strict\"\npath = \"{PATH}\"\n\n\
         [api.virtual]\non_upstream_failure = \"fail_closed\"\n\n\
         [[api.upstream]]\nname = \"a\"\nurl = \"{}\"\n\n\
         [[api.upstream]]\nname = \"b\"\nurl = \"{}\"\n",
        a.upstream_url(),
        b.upstream_url(),
    );
    let gateway = Gateway::start(&GatewaySpec::config(config));
    let session = McpSession::open(gateway.addr(), PATH, PROTOCOL);
    assert_eq!(
        prefixes(&tool_names(&session, 2)),
        ["a", "b"].iter().map(|s| s.to_string()).collect()
    );
    drop(b);
    let refused = call(&session, 3, "tools/list", json!({}));
    assert_eq!(refused["error"]["code"], -32603, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("upstream `b`")),
        "{refused}"
    );
    // Calls to the upstream that is up still work; a new session is refused.
    assert_eq!(
        echo(&session, 4, "a")["result"]["content"][0]["text"],
        "Echo: still here"
    );
    let response = mcpgate_tests::http::post_mcp(
        gateway.addr(),
        PATH,
        &[],
        &mcpgate_tests::http::initialize_body(1),
    )
    .unwrap_or_else(|e| panic!("initialize: {e}"));
    let body = response.body_text();
    assert!(
        body.contains("-32603") && body.contains("upstream `b`"),
        "{}: {body}",
        response.status
    );
}

#[test]
fn a_reload_that_removes_a_stdio_upstream_stops_its_process() {
    let a = ServerEverything::start();
    let b = ServerEverything::start();
    let mut gateway = start(virtual_config(&a, &b, ""));
    let pid = gateway.process().pid();
    let kids = children(pid);
    assert_eq!(kids.len(), 1, "one stdio child: {kids:?}");
    // The same API without its stdio upstream.
    let without = format!(
        "[gateway]\nlisten = \"{}\"\nadmin = \"{}\"\nworkers = 2\n\n\
         [[api]]\nname = \"toolbox\"\npath = \"{PATH}\"\n\n\
         [[api.upstream]]\nname = \"a\"\nurl = \"{}\"\n\n\
         [[api.upstream]]\nname = \"b\"\nurl = \"{}\"\n",
        gateway.addr(),
        gateway.admin_addr(),
        a.upstream_url(),
        b.upstream_url()
    );
    let file = gateway
        .config_path()
        .unwrap_or_else(|| panic!("started from a file"));
    std::fs::write(&file, without).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    gateway.process().signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&format!("/proc/{}", kids[0])).exists() {
        assert!(
            Instant::now() < deadline,
            "the removed stdio upstream still runs:\n{}",
            gateway.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let session = McpSession::open(gateway.addr(), PATH, PROTOCOL);
    assert_eq!(
        prefixes(&tool_names(&session, 2)),
        ["a", "b"].iter().map(|s| s.to_string()).collect()
    );
}

/// TCP sockets of this machine in TIME_WAIT with `port` at either end (from /proc/net/tcp*).
fn time_wait_sockets(port: u16) -> usize {
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port_of = |addr: &str| {
                addr.rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            };
            let ends = [fields.get(1), fields.get(2)]
                .into_iter()
                .flatten()
                .filter_map(|a| port_of(a));
            if fields.get(3) == Some(&"06") && ends.into_iter().any(|p| p == port) {
                count += 1;
            }
        }
    }
    count
}

/// The HTTP legs keep their connections: forty calls through the virtual API leave no trail of
/// closed connections to the upstream (one connection per call left a TIME_WAIT socket each, and
/// ran out of ephemeral ports at a few thousand calls a second).
#[test]
fn http_legs_keep_their_connections_alive() {
    let a = ServerEverything::start();
    let b = ServerEverything::start();
    let gateway = start(virtual_config(&a, &b, ""));
    let port = a
        .upstream_url()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or_else(|| panic!("no port in {}", a.upstream_url()));
    let before = time_wait_sockets(port);
    let session = McpSession::open(gateway.addr(), PATH, PROTOCOL);
    for id in 0..40 {
        let answer = echo(&session, 10 + id, "a");
        assert!(answer["result"].is_object(), "{answer}");
    }
    let after = time_wait_sockets(port);
    assert!(
        after <= before + 4,
        "{} connections to upstream a closed for 40 calls (TIME_WAIT {before} -> {after})",
        after - before
    );
}

/// A virtual API at `/mcp` over a legacy HTTP+SSE server-everything (`l`, first, so resources it
/// lists are read through it), a Streamable HTTP one (`a`) and a stdio one (`s`).
fn sse_config(l: &ServerEverything, a: &ServerEverything) -> String {
    format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\nname = \"toolbox\"\npath = \"{PATH}\"\n\n\
         [[api.upstream]]\nname = \"l\"\nurl = \"{}\"\ntransport = \"sse\"\n\n\
         [[api.upstream]]\nname = \"a\"\nurl = \"{}\"\n\n\
         [[api.upstream]]\nname = \"s\"\ncommand = \"node\"\nargs = [\"{}\", \"stdio\"]\n",
        l.sse_url(),
        a.upstream_url(),
        everything_entry().display()
    )
}

/// The prefixes `tools/list` shows, polled until `wanted` holds (a link noticing its upstream
/// went or came back takes a moment: the stream's end, the reconnect backoff).
fn wait_for_prefixes(
    session: &McpSession,
    id: &mut u64,
    what: &str,
    wanted: impl Fn(&BTreeSet<String>) -> bool,
) -> Vec<String> {
    poll(what, Duration::from_secs(40), || {
        *id += 1;
        let names = tool_names(session, *id);
        if wanted(&prefixes(&names)) {
            Ok(names)
        } else {
            Err(format!("{:?}", prefixes(&names)))
        }
    })
}

#[test]
fn a_legacy_sse_upstream_serves_drops_out_and_comes_back() {
    let mut l = ServerEverything::start_with(EverythingTransport::Sse);
    let a = ServerEverything::start();
    let gateway = start(sse_config(&l, &a));
    poll(
        "the sse upstream to be initialized",
        Duration::from_secs(30),
        || {
            let out = gateway.output();
            if out.contains("sse upstream toolbox/l: initialized") {
                Ok(())
            } else {
                Err(out)
            }
        },
    );
    let session = McpSession::open(gateway.addr(), PATH, PROTOCOL);
    let all: BTreeSet<String> = ["a", "l", "s"].iter().map(|s| s.to_string()).collect();
    let before = tool_names(&session, 2);
    assert_eq!(prefixes(&before), all);
    // The same program behind each transport: the same tools, those the gateway's declared
    // capabilities bring aside (both shared links were told it relays sampling and elicitation;
    // this raw client, through `a`, declared nothing).
    assert_eq!(own_names(&before, "l"), own_names(&before, "s"));
    assert!(
        own_names(&before, "a").is_subset(&own_names(&before, "l")),
        "{before:?}"
    );
    assert_eq!(
        echo(&session, 3, "l")["result"]["content"][0]["text"],
        "Echo: still here"
    );
    let prompt = call(
        &session,
        4,
        "prompts/get",
        json!({"name": "l__simple-prompt"}),
    );
    assert!(
        prompt["result"]["messages"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{prompt}"
    );
    // Resources keep their URIs; `l` is first, so what it listed is read through it.
    let listed = call(&session, 5, "resources/list", json!({}));
    let uri = listed["result"]["resources"][0]["uri"]
        .as_str()
        .unwrap_or_else(|| panic!("resources/list: {listed}"))
        .to_owned();
    let read = call(&session, 6, "resources/read", json!({"uri": uri}));
    assert_eq!(read["result"]["contents"][0]["uri"], uri, "{read}");
    // The exchange log says `l` served the read and the prompt.
    poll(
        "resources/read and prompts/get records served by l",
        Duration::from_secs(20),
        || {
            let mut served = Vec::new();
            for method in ["resources/read", "prompts/get"] {
                let logs = admin_json(
                    gateway.admin_addr(),
                    &format!("/api/logs?api=toolbox&method={method}"),
                );
                served.push(
                    logs["records"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|r| r["upstream"] == "l"),
                );
            }
            if served.iter().all(|s| *s) {
                Ok(())
            } else {
                Err(format!("{served:?}"))
            }
        },
    );

    // The SSE server goes away: its tools drop out (fail_open), the others still answer.
    l.kill();
    let mut id = 10;
    let after = wait_for_prefixes(&session, &mut id, "l to drop out", |p| !p.contains("l"));
    assert_eq!(
        prefixes(&after),
        ["a", "s"].iter().map(|s| s.to_string()).collect()
    );
    for up in ["a", "s"] {
        id += 1;
        assert_eq!(
            echo(&session, id, up)["result"]["content"][0]["text"],
            "Echo: still here",
            "{up}"
        );
    }
    id += 1;
    let down = echo(&session, id, "l");
    assert_eq!(down["error"]["code"], -32603, "{down}");
    assert!(
        down["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("upstream `l`")),
        "{down}"
    );

    // Back on the same port: the link reconnects and its tools return to the same session.
    l.restart(EverythingTransport::Sse);
    let back = wait_for_prefixes(&session, &mut id, "l to come back", |p| p == &all);
    assert_eq!(own_names(&back, "l"), own_names(&before, "l"));
    id += 1;
    assert_eq!(
        echo(&session, id, "l")["result"]["content"][0]["text"],
        "Echo: still here",
        "{}",
        gateway.output()
    );

    // Health: every upstream up again, the reconnect counted.
    let (status, metrics) = admin_get(gateway.admin_addr(), "/metrics");
    assert_eq!(status, 200, "{metrics}");
    for up in ["a", "l", "s"] {
        let line = format!("mcpgate_virtual_upstream_up{{api=\"toolbox\",upstream=\"{up}\"}} 1");
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }
    let reconnects: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("mcpgate_virtual_sse_reconnects_total{api=\"toolbox\",upstream=\"l\"} ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no reconnect counter for l:\n{metrics}"));
    assert!(reconnects >= 1, "{metrics}");
}
