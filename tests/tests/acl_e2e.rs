//! The MCP ACL end to end (issue 5): the real server-everything behind mcpgate with an ACL, the
//! official TypeScript SDK client (scenario `acl_probe`) for the seed's scenarios, and a plain
//! HTTP client for what an attacker would send (escapes, duplicate keys, case tricks, batches,
//! mismatching 2026-07-28 headers, completion on a hidden prompt).
//!
//! Expected lists are never hard-coded: they are the upstream's own answer (asked directly),
//! filtered by what the ACL grants.

use std::net::SocketAddr;

use mcpgate_tests::http::{initialize_body, post_mcp, McpSession, RawResponse};
use mcpgate_tests::peers::repo_root;
use mcpgate_tests::{run_client, Gateway, GatewaySpec, Sdk, ServerEverything};
use serde_json::{json, Value};

const API: &str = "/mcp-proxy";
const PROTOCOL: &str = "2025-06-18";
const ARCHITECTURE: &str = "demo://resource/static/document/architecture.md";

/// One API at `/mcp-proxy` in front of `upstream` with `acl` appended to its `[[api]]` table.
fn config_with_acl(upstream: &str, acl: &str) -> String {
    format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\nname = \"acl-under-test\"\npath = \"{API}\"\nupstream = \"{upstream}\"\n{acl}\n"
    )
}

fn behind_acl(acl: &str) -> (ServerEverything, Gateway) {
    let server = ServerEverything::start();
    let gateway = Gateway::start(&GatewaySpec::config(config_with_acl(
        &server.upstream_url(),
        acl,
    )));
    (server, gateway)
}

fn example_acl(name: &str) -> String {
    repo_root()
        .join("examples/acl")
        .join(name)
        .display()
        .to_string()
}

/// The TS SDK's view through the gateway, and directly from the upstream.
fn probe(server: &ServerEverything, gateway: &Gateway) -> (Value, Value) {
    let through = run_client(Sdk::TypeScript, &gateway.url(API), "acl_probe");
    let direct = run_client(Sdk::TypeScript, &server.mcp_url(), "acl_probe");
    (through, direct)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn error_code(outcome: &Value) -> Option<i64> {
    outcome.get("code").and_then(Value::as_i64)
}

/// The upstream really offers what the test relies on.
fn assert_upstream_has(direct: &Value) {
    let tools = strings(&direct["tools"]);
    for needed in ["echo", "get-sum"] {
        assert!(
            tools.iter().any(|t| t == needed),
            "server-everything has no {needed}: {direct}"
        );
    }
    assert!(strings(&direct["resources"])
        .iter()
        .any(|r| r == ARCHITECTURE));
    assert!(strings(&direct["prompts"])
        .iter()
        .any(|p| p == "simple-prompt"));
    assert_eq!(direct["calls"]["get-sum"], json!("ok"), "{direct}");
}

#[test]
fn empty_acl_connects_lists_nothing_and_refuses_every_call() {
    let (server, gateway) = behind_acl("[api.acl]\ndry_run = false\n");
    let (through, direct) = probe(&server, &gateway);
    assert_upstream_has(&direct);
    for list in ["tools", "resources", "templates", "prompts"] {
        assert_eq!(
            through[list],
            json!([]),
            "{list} through an empty ACL: {through}"
        );
    }
    assert_eq!(
        error_code(&through["calls"]["echo"]),
        Some(-32602),
        "{through}"
    );
    assert_eq!(
        error_code(&through["calls"]["get-sum"]),
        Some(-32602),
        "{through}"
    );
    assert_eq!(
        error_code(&through["reads"]["architecture.md"]),
        Some(-32002),
        "{through}"
    );
    assert_eq!(
        error_code(&through["gets"]["simple-prompt"]),
        Some(-32602),
        "{through}"
    );
    assert_eq!(through["ping"], json!("ok"), "{through}");
}

#[test]
fn tools_list_any_only_lists_everything_and_refuses_calls() {
    let acl = format!("acl_file = \"{}\"", example_acl("tools-list-only.json"));
    let (server, gateway) = behind_acl(&acl);
    let (through, direct) = probe(&server, &gateway);
    assert_upstream_has(&direct);
    assert_eq!(
        through["tools"], direct["tools"],
        "tools/list ANY must list all"
    );
    assert_eq!(
        error_code(&through["calls"]["echo"]),
        Some(-32602),
        "{through}"
    );
    assert_eq!(
        error_code(&through["calls"]["get-sum"]),
        Some(-32602),
        "{through}"
    );
    assert_eq!(through["prompts"], json!([]), "{through}");
}

#[test]
fn literal_echo_is_the_only_tool_listed_and_callable() {
    let acl = format!("acl_file = \"{}\"", example_acl("tools-echo-only.json"));
    let (server, gateway) = behind_acl(&acl);
    let (through, direct) = probe(&server, &gateway);
    assert_upstream_has(&direct);
    assert_eq!(through["tools"], json!(["echo"]), "{through}");
    assert_eq!(through["calls"]["echo"], json!("ok"), "{through}");
    assert_eq!(
        error_code(&through["calls"]["get-sum"]),
        Some(-32602),
        "{through}"
    );
}

#[test]
fn resources_and_prompts_are_listed_and_read_only_as_granted() {
    let acl = format!(
        "[api.acl]\n\
         [[api.acl.rule]]\nmethods = [\"resources/list\", \"resources/read\"]\nnames = [\"{ARCHITECTURE}\"]\n\
         [[api.acl.rule]]\nmethods = [\"prompts/list\", \"prompts/get\"]\nnames = [\"simple-prompt\"]\n"
    );
    let (server, gateway) = behind_acl(&acl);
    let (through, direct) = probe(&server, &gateway);
    assert_upstream_has(&direct);
    assert!(strings(&direct["resources"]).len() > 1, "{direct}");
    assert_eq!(through["resources"], json!([ARCHITECTURE]), "{through}");
    assert_eq!(through["templates"], json!([]), "{through}");
    assert_eq!(
        through["reads"]["architecture.md"],
        json!("ok"),
        "{through}"
    );
    // Found by guessing: the URI exists upstream (read directly) but is hidden here.
    assert_eq!(direct["reads"]["features.md"], json!("ok"), "{direct}");
    assert_eq!(
        error_code(&through["reads"]["features.md"]),
        Some(-32002),
        "{through}"
    );
    assert_eq!(through["prompts"], json!(["simple-prompt"]), "{through}");
    assert_eq!(through["gets"]["simple-prompt"], json!("ok"), "{through}");
    assert_eq!(direct["gets"]["args-prompt"], json!("ok"), "{direct}");
    assert_eq!(
        error_code(&through["gets"]["args-prompt"]),
        Some(-32602),
        "{through}"
    );
    assert_eq!(through["tools"], json!([]), "{through}");
}

#[test]
fn dry_run_lets_everything_through() {
    let (server, gateway) = behind_acl("[api.acl]\ndry_run = true\n");
    let (through, direct) = probe(&server, &gateway);
    assert_upstream_has(&direct);
    for list in ["tools", "resources", "templates", "prompts"] {
        assert_eq!(through[list], direct[list], "{list} in dry-run");
    }
    assert_eq!(through["calls"], direct["calls"], "calls in dry-run");
    assert_eq!(through["reads"], direct["reads"], "reads in dry-run");
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP

/// A Streamable HTTP session through the gateway at [`API`].
struct Session(McpSession);

impl Session {
    fn open(gateway: &Gateway) -> Session {
        Session(McpSession::open(gateway.addr(), API, PROTOCOL))
    }

    fn post(&self, extra: &[(&str, &str)], body: &str) -> RawResponse {
        self.0.post(extra, body)
    }

    fn messages(&self, extra: &[(&str, &str)], body: &str) -> (u16, Vec<Value>) {
        self.0.messages(extra, body)
    }
}

fn by_id(messages: &[Value], id: i64) -> Value {
    messages
        .iter()
        .flat_map(|m| match m {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        })
        .find(|m| m["id"] == json!(id))
        .unwrap_or_else(|| panic!("no answer with id {id} in {messages:?}"))
}

fn echo_only() -> (ServerEverything, Gateway) {
    behind_acl(&format!(
        "acl_file = \"{}\"",
        example_acl("tools-echo-only.json")
    ))
}

#[test]
fn escaped_names_are_judged_as_the_upstream_reads_them() {
    let (_server, gateway) = echo_only();
    let s = Session::open(&gateway);
    // "\u0065cho" is "echo" to the upstream: allowed, and executed.
    let (_, m) = s.messages(
        &[],
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"\u0065cho","arguments":{"message":"escaped"}}}"#,
    );
    let answer = by_id(&m, 5);
    assert_eq!(
        answer["result"]["content"][0]["text"],
        json!("Echo: escaped"),
        "{answer}"
    );
    // "\u0067et-sum" is "get-sum": refused by the gateway.
    let (_, m) = s.messages(
        &[],
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"\u0067et-sum","arguments":{"a":1,"b":2}}}"#,
    );
    let answer = by_id(&m, 6);
    assert_eq!(answer["error"]["code"], json!(-32602), "{answer}");
    assert!(answer.get("result").is_none(), "{answer}");
}

#[test]
fn duplicate_name_keys_and_bad_json_are_refused_not_forwarded() {
    let (_server, gateway) = echo_only();
    let s = Session::open(&gateway);
    let response = s.post(
        &[],
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","name":"get-sum","arguments":{"a":1,"b":2,"message":"x"}}}"#,
    );
    assert_eq!(response.status, 400, "{}", response.body_text());
    let body = response.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["error"]["code"], json!(-32600), "{body}");

    let response = s.post(&[], r#"{"jsonrpc":"2.0","id":8,"method":"tools/call""#);
    assert_eq!(response.status, 400, "{}", response.body_text());
    let body = response.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["error"]["code"], json!(-32700), "{body}");
}

#[test]
fn method_case_trick_is_refused_by_the_gateway() {
    let (_server, gateway) = echo_only();
    let s = Session::open(&gateway);
    let response = s.post(
        &[],
        r#"{"jsonrpc":"2.0","id":9,"method":"Tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}"#,
    );
    assert_eq!(response.status, 200, "{}", response.body_text());
    // The gateway's own answer: plain JSON (server-everything answers on an event stream).
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{}",
        response.body_text()
    );
    let body = response.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["id"], json!(9), "{body}");
    assert_eq!(body["error"]["code"], json!(-32601), "{body}");
}

#[test]
fn batch_mixing_allowed_and_refused_calls_is_judged_per_element() {
    let (_server, gateway) = echo_only();
    let s = Session::open(&gateway);
    let (status, m) = s.messages(
        &[],
        r#"[{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","arguments":{"message":"in a batch"}}},
            {"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}]"#,
    );
    assert_eq!(status, 200, "{m:?}");
    let allowed = by_id(&m, 10);
    assert_eq!(
        allowed["result"]["content"][0]["text"],
        json!("Echo: in a batch"),
        "{allowed}"
    );
    let refused = by_id(&m, 11);
    assert_eq!(refused["error"]["code"], json!(-32602), "{refused}");
    assert!(refused.get("result").is_none(), "get-sum ran: {refused}");

    // Every element refused: answered by the gateway alone, as a JSON array.
    let response = s.post(
        &[],
        r#"[{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}},
            {"jsonrpc":"2.0","id":13,"method":"prompts/get","params":{"name":"simple-prompt"}}]"#,
    );
    let body = response.json().unwrap_or_else(|e| panic!("{e}"));
    let codes: Vec<Value> = body
        .as_array()
        .map(|a| a.iter().map(|e| e["error"]["code"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(codes, vec![json!(-32602), json!(-32602)], "{body}");
}

#[test]
fn mirrored_headers_that_disagree_with_the_body_are_refused() {
    let (_server, gateway) = echo_only();
    let s = Session::open(&gateway);
    let call_sum = r#"{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}"#;
    for header in [("Mcp-Name", "echo"), ("Mcp-Method", "tools/list")] {
        let response = s.post(&[header], call_sum);
        assert_eq!(response.status, 400, "{header:?}: {}", response.body_text());
        let body = response.json().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["error"]["code"], json!(-32020), "{header:?}: {body}");
        assert_eq!(body["id"], json!(14), "{body}");
    }
    // Headers that agree change nothing.
    let (_, m) = s.messages(
        &[("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")],
        r#"{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"echo","arguments":{"message":"agreed"}}}"#,
    );
    assert_eq!(
        by_id(&m, 15)["result"]["content"][0]["text"],
        json!("Echo: agreed")
    );
}

#[test]
fn completion_on_a_hidden_prompt_is_refused() {
    let (server, gateway) = echo_only();
    let complete = r#"{"jsonrpc":"2.0","id":16,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"completable-prompt"},"argument":{"name":"department","value":"E"}}}"#;
    // Directly, the upstream completes it.
    let direct = {
        let response = post_mcp(server.addr(), "/mcp", &[], &initialize_body(1))
            .unwrap_or_else(|e| panic!("{e}"));
        let id = response
            .header("mcp-session-id")
            .unwrap_or_default()
            .to_owned();
        let headers = [
            ("Mcp-Session-Id", id.as_str()),
            ("MCP-Protocol-Version", PROTOCOL),
        ];
        post_mcp(server.addr(), "/mcp", &headers, complete)
            .and_then(|r| r.jsonrpc_messages())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(
        by_id(&direct, 16)["result"]["completion"].is_object(),
        "{direct:?}"
    );
    let s = Session::open(&gateway);
    let (_, m) = s.messages(&[], complete);
    let answer = by_id(&m, 16);
    assert_eq!(answer["error"]["code"], json!(-32602), "{answer}");
}

#[test]
fn condition_on_a_request_header() {
    let (_server, gateway) = behind_acl(
        "[api.acl]\n[[api.acl.rule]]\nmethods = [\"tools/list\", \"tools/call\"]\nnames = [\"echo\"]\n\
         condition = \"'x-team' in request.headers && request.headers['x-team'] == 'blue'\"\n",
    );
    let s = Session::open(&gateway);
    let list = r#"{"jsonrpc":"2.0","id":20,"method":"tools/list"}"#;
    let call = r#"{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"echo","arguments":{"message":"team"}}}"#;
    let names = |m: &[Value]| -> Vec<Value> {
        by_id(m, 20)["result"]["tools"]
            .as_array()
            .map(|a| a.iter().map(|t| t["name"].clone()).collect())
            .unwrap_or_default()
    };

    let (_, m) = s.messages(&[("X-Team", "blue")], list);
    assert_eq!(names(&m), vec![json!("echo")], "{m:?}");
    let (_, m) = s.messages(&[("X-Team", "blue")], call);
    assert_eq!(
        by_id(&m, 21)["result"]["content"][0]["text"],
        json!("Echo: team")
    );

    for headers in [vec![], vec![("X-Team", "red")]] {
        let (_, m) = s.messages(&headers, list);
        assert_eq!(names(&m), Vec::<Value>::new(), "{headers:?}: {m:?}");
        let (_, m) = s.messages(&headers, call);
        assert_eq!(by_id(&m, 21)["error"]["code"], json!(-32602), "{headers:?}");
    }
}

#[test]
fn an_api_without_acl_passes_unparsable_bodies_to_the_upstream() {
    let server = ServerEverything::start();
    let gateway = Gateway::start(&GatewaySpec::cli(server.upstream_url(), API));
    let s = Session::open(&gateway);
    // No ACL, no policy: the upstream's own answer (not the gateway's -32600 for duplicates).
    let response = s.post(
        &[],
        r#"{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"echo","name":"echo","arguments":{"message":"dup"}}}"#,
    );
    let m = response
        .jsonrpc_messages()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        by_id(&m, 30)["result"]["content"][0]["text"],
        json!("Echo: dup"),
        "{m:?}"
    );
}

#[test]
fn refused_sampling_never_reaches_the_client_and_is_answered_upstream() {
    let (server, gateway) = behind_acl(
        "[api.acl]\nserver_requests = { sampling = \"deny\" }\n[[api.acl.rule]]\ntype = \"TOOLS\"\n",
    );
    let direct = run_client(Sdk::TypeScript, &server.mcp_url(), "acl_sampling");
    assert_eq!(direct["samplingRequests"], json!(1), "{direct}");
    assert_eq!(direct["outcome"]["isError"], json!(false), "{direct}");
    // Through the gateway the client never sees the request, and the tool call still ends:
    // the upstream got the gateway's -32601 answer in the client's session.
    let through = run_client(Sdk::TypeScript, &gateway.url(API), "acl_sampling");
    assert_eq!(through["samplingRequests"], json!(0), "{through}");
    assert_eq!(through["outcome"]["isError"], json!(true), "{through}");
    let text = through["outcome"]["text"].as_str().unwrap_or_default();
    assert!(text.contains("-32601"), "{through}");
}

#[test]
fn updates_for_a_uri_the_client_may_not_read_are_dropped() {
    // Subscribing is granted for every static document, reading only for one of them.
    let (server, gateway) = behind_acl(&format!(
        "[api.acl]\n\
         [[api.acl.rule]]\nmethods = [\"resources/subscribe\"]\npattern = \"demo://resource/static/document/.*\"\n\
         [[api.acl.rule]]\nmethods = [\"resources/read\"]\nnames = [\"{ARCHITECTURE}\"]\n\
         [[api.acl.rule]]\nmethods = [\"tools/call\"]\nnames = [\"toggle-subscriber-updates\"]\n"
    ));
    let direct = run_client(Sdk::TypeScript, &server.mcp_url(), "acl_updates");
    let both = json!([ARCHITECTURE, "demo://resource/static/document/features.md"]);
    assert_eq!(direct["updatedUris"], both, "{direct}");
    let through = run_client(Sdk::TypeScript, &gateway.url(API), "acl_updates");
    assert_eq!(through["twoRounds"], json!(true), "{through}");
    assert_eq!(
        through["subscribed"][ARCHITECTURE],
        json!("ok"),
        "{through}"
    );
    assert_eq!(through["updatedUris"], json!([ARCHITECTURE]), "{through}");
}

#[test]
fn run_acl_flag_applies_a_gravitee_file_to_the_command_line_api() {
    use mcpgate_tests::net::{free_port, wait_for_listener};
    use mcpgate_tests::process::ManagedChild;

    let server = ServerEverything::start();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut command = std::process::Command::new(mcpgate_tests::mcpgate_bin());
    command
        .args(["run", "--listen", &addr.to_string(), "--admin", "off"])
        .args(["--upstream", &server.upstream_url(), "--path", API])
        .args([
            "--workers",
            "1",
            "--acl",
            &example_acl("tools-echo-only.json"),
        ]);
    let mut gateway = ManagedChild::spawn("mcpgate --acl", command)
        .unwrap_or_else(|e| panic!("cannot run mcpgate: {e}"));
    if let Err(e) = wait_for_listener(addr, &mut gateway, std::time::Duration::from_secs(30)) {
        panic!("mcpgate --acl did not start: {e}\n{}", gateway.output());
    }
    let through = run_client(Sdk::TypeScript, &format!("http://{addr}{API}"), "acl_probe");
    assert_eq!(through["tools"], json!(["echo"]), "{through}");
    assert_eq!(
        error_code(&through["calls"]["get-sum"]),
        Some(-32602),
        "{through}"
    );
}
