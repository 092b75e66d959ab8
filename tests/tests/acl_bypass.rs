//! Issue 21's three ways around the MCP ACL, each tried against the real server-everything on
//! Streamable HTTP and on the legacy HTTP+SSE transport, with what an attacker sends:
//!
//! 1. list answers the gateway would not pair with their request (`"id": -0`, answered `0`; in
//!    a batch) — every answer carrying a list is filtered whatever its id;
//! 2. resource URIs with dot segments (`a/../features.md`, `%2e%2e`, odd whitespace) that match
//!    an allowed pattern as written but name a denied resource once the upstream's URL parser has
//!    read them — refused unless in normal form;
//! 3. a declared charset other than UTF-8 (`utf-7`) that makes the upstream decode another
//!    message than the gateway judged — 415 on every route, ACL or not.
//!
//! Every test first shows the attack works against the upstream itself (so it can fail), then
//! that it does not through the gateway. Expected lists are the upstream's own, filtered.

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine as _;
use mcpgate_tests::http::{LegacySession, McpSession};
use mcpgate_tests::peers::EverythingTransport;
use mcpgate_tests::{Gateway, GatewaySpec, ServerEverything};
use serde_json::{json, Value};

const API: &str = "/mcp-proxy";
const LEGACY_API: &str = "/legacy";
const PROTOCOL: &str = "2025-06-18";
const DOCS: &str = "demo://resource/static/document/";

/// The ACL of the issue's attack: the tool `echo`, resources matching
/// `demo://resource/static/document/a.*` (only `architecture.md` among server-everything's),
/// and the prompt `simple-prompt`.
const ACL: &str = r#"{"authorizations":[{"authorizedFeatures":[
  {"type":"TOOLS","methods":["TOOLS_LIST","TOOLS_CALL"],"patternType":"LITERAL","patternValue":"echo"},
  {"type":"RESOURCES","methods":["RESOURCES_LIST","RESOURCES_READ","RESOURCES_SUBSCRIBE","RESOURCES_TEMPLATES_LIST"],"patternType":"EXPRESSION","patternValue":"demo://resource/static/document/a.*"},
  {"type":"PROMPTS","methods":["PROMPTS_LIST","PROMPTS_GET"],"patternType":"LITERAL","patternValue":"simple-prompt"}]}]}"#;

struct Setup {
    server: ServerEverything,
    gateway: Gateway,
    _acl_file: AclFile,
}

/// The ACL's file, removed when the test ends.
struct AclFile(std::path::PathBuf);

impl Drop for AclFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// server-everything with `transport` behind the gateway with [`ACL`] (or without an ACL).
fn setup(transport: EverythingTransport, with_acl: bool) -> Setup {
    let server = ServerEverything::start_with(transport);
    let acl_path = std::env::temp_dir().join(format!(
        "mcpgate-acl-bypass-{}-{}.json",
        std::process::id(),
        server.addr().port()
    ));
    let mut file = std::fs::File::create(&acl_path).unwrap_or_else(|e| panic!("{e}"));
    file.write_all(ACL.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let acl_line = if with_acl {
        format!("acl_file = \"{}\"\n", acl_path.display())
    } else {
        String::new()
    };
    let (path, upstream) = match transport {
        EverythingTransport::StreamableHttp => (API, server.upstream_url()),
        EverythingTransport::Sse => (LEGACY_API, format!("http://{}/", server.addr())),
    };
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\nname = \"bypass\"\npath = \"{path}\"\nupstream = \"{upstream}\"\n{acl_line}"
    );
    let gateway = Gateway::start(&GatewaySpec::config(config));
    Setup {
        server,
        gateway,
        _acl_file: AclFile(acl_path),
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

/// The entries' names (or uris) of a list result.
fn names(result: &Value, list: &str) -> Vec<String> {
    let key = if list == "resources" { "uri" } else { "name" };
    result[list]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e[key].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn allowed(list: &str, name: &str) -> bool {
    match list {
        "tools" => name == "echo",
        "prompts" => name == "simple-prompt",
        "resources" => name.starts_with(&format!("{DOCS}a")),
        _ => false,
    }
}

fn answer(messages: &[Value], id: &Value) -> Value {
    messages
        .iter()
        .flat_map(|m| match m {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        })
        .find(|m| &m["id"] == id)
        .unwrap_or_else(|| panic!("no answer with id {id} in {messages:?}"))
}

// ---------------------------------------------------------------------------------------------
// 1. Unpaired list answers

#[test]
fn list_answers_with_an_id_the_gateway_would_not_pair_are_filtered() {
    let s = setup(EverythingTransport::StreamableHttp, true);
    let direct = McpSession::open(s.server.addr(), "/mcp", PROTOCOL);
    let through = McpSession::open(s.gateway.addr(), API, PROTOCOL);
    for (method, list) in [
        ("tools/list", "tools"),
        ("prompts/list", "prompts"),
        ("resources/list", "resources"),
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":-0,"method":"{method}"}}"#);
        let (_, m) = direct.messages(&[], &body);
        let upstream = names(&answer(&m, &json!(0))["result"], list);
        assert!(
            upstream.iter().any(|n| !allowed(list, n)),
            "the upstream lists nothing the ACL hides in {list}: {upstream:?}"
        );
        let expected: Vec<String> = upstream
            .iter()
            .filter(|n| allowed(list, n))
            .cloned()
            .collect();
        assert!(
            !expected.is_empty(),
            "{list}: nothing allowed in {upstream:?}"
        );
        let (status, m) = through.messages(&[], &body);
        assert_eq!(status, 200, "{m:?}");
        let got = names(&answer(&m, &json!(0))["result"], list);
        assert_eq!(got, expected, "{method} with id -0 through the gateway");
    }
}

#[test]
fn list_answers_inside_a_batch_are_filtered() {
    let s = setup(EverythingTransport::StreamableHttp, true);
    // Batches belong to 2025-03-26.
    let direct = McpSession::open(s.server.addr(), "/mcp", "2025-03-26");
    let through = McpSession::open(s.gateway.addr(), API, "2025-03-26");
    let batch = r#"[{"jsonrpc":"2.0","id":-0,"method":"tools/list"},{"jsonrpc":"2.0","id":"t","method":"prompts/list"}]"#;
    let (_, m) = direct.messages(&[], batch);
    let upstream_tools = names(&answer(&m, &json!(0))["result"], "tools");
    assert!(upstream_tools.iter().any(|n| n != "echo"), "{m:?}");
    let (status, m) = through.messages(&[], batch);
    assert_eq!(status, 200, "{m:?}");
    assert_eq!(names(&answer(&m, &json!(0))["result"], "tools"), ["echo"]);
    assert_eq!(
        names(&answer(&m, &json!("t"))["result"], "prompts"),
        ["simple-prompt"]
    );
}

#[test]
fn legacy_transport_list_answers_are_filtered_whatever_their_id() {
    let s = setup(EverythingTransport::Sse, true);
    let mut direct = LegacySession::open(s.server.addr(), "/sse");
    let mut through = LegacySession::open(s.gateway.addr(), &format!("{LEGACY_API}/sse"));
    assert!(
        through
            .endpoint
            .starts_with(&format!("{LEGACY_API}/message")),
        "endpoint not rewritten: {}",
        through.endpoint
    );
    for session in [&mut direct, &mut through] {
        let init = session.post_json(&mcpgate_tests::http::initialize_body(1));
        assert_eq!(init.status, 202, "{}", init.body_text());
        session.until_id(&json!(1), deadline());
        let ack = session.post_json(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(ack.status, 202, "{}", ack.body_text());
    }
    let list = r#"{"jsonrpc":"2.0","id":-0,"method":"tools/list"}"#;
    assert_eq!(direct.post_json(list).status, 202);
    let upstream = names(
        &answer(&direct.until_id(&json!(0), deadline()), &json!(0))["result"],
        "tools",
    );
    assert!(upstream.iter().any(|n| n != "echo"), "{upstream:?}");
    let reply = through.post_json(list);
    assert_eq!(reply.status, 202, "{}", reply.body_text());
    let got = names(
        &answer(&through.until_id(&json!(0), deadline()), &json!(0))["result"],
        "tools",
    );
    assert_eq!(got, ["echo"]);
}

// ---------------------------------------------------------------------------------------------
// 2. Resource URIs

/// `resources/read` variants that an allowed pattern matches as written but that name
/// `features.md` (denied) or a dynamic resource once resolved.
fn sneaky_uris() -> Vec<String> {
    [
        "a/../features.md",
        "a/%2e%2e/features.md",
        "a/%2E%2E/features.md",
        "a/.%2e/features.md",
        "a/.\t./features.md",
        "a/..\n/features.md",
        "a/../../../dynamic/text/42",
        "architecture.md/../features.md",
    ]
    .iter()
    .map(|tail| format!("{DOCS}{tail}"))
    .collect()
}

fn read(uri: &str, id: u32) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"resources/read","params":{"uri":uri}}).to_string()
}

#[test]
fn resource_uris_not_in_normal_form_are_refused_not_resolved_upstream() {
    let s = setup(EverythingTransport::StreamableHttp, true);
    let direct = McpSession::open(s.server.addr(), "/mcp", PROTOCOL);
    let through = McpSession::open(s.gateway.addr(), API, PROTOCOL);
    // The attack is real: the upstream reads the denied document through the first spelling.
    let (_, m) = direct.messages(&[], &read(&format!("{DOCS}a/../features.md"), 1));
    let leaked = answer(&m, &json!(1));
    assert_eq!(
        leaked["result"]["contents"][0]["uri"],
        json!(format!("{DOCS}features.md")),
        "{leaked}"
    );
    for (i, uri) in sneaky_uris().iter().enumerate() {
        let id = 10 + i as u32;
        let (status, m) = through.messages(&[], &read(uri, id));
        let a = answer(&m, &json!(id));
        assert_eq!(status, 200, "{uri:?}: {a}");
        assert_eq!(a["error"]["code"], json!(-32602), "{uri:?}: {a}");
        assert!(a.get("result").is_none(), "{uri:?} was read: {a}");
        assert!(
            a["error"]["message"]
                .as_str()
                .is_some_and(|t| t.contains("URI")),
            "{a}"
        );
    }
    // Subscriptions and completion references are judged the same way.
    let subscribe = json!({"jsonrpc":"2.0","id":30,"method":"resources/subscribe","params":{"uri":format!("{DOCS}a/../features.md")}}).to_string();
    let (_, m) = through.messages(&[], &subscribe);
    assert_eq!(answer(&m, &json!(30))["error"]["code"], json!(-32602));
    let complete = json!({"jsonrpc":"2.0","id":31,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":format!("{DOCS}a/../../dynamic/text/{{resourceId}}")},"argument":{"name":"resourceId","value":"1"}}}).to_string();
    let (_, m) = through.messages(&[], &complete);
    assert_eq!(answer(&m, &json!(31))["error"]["code"], json!(-32602));
    // The allowed document in normal form is still read.
    let (_, m) = through.messages(&[], &read(&format!("{DOCS}architecture.md"), 32));
    let ok = answer(&m, &json!(32));
    assert_eq!(
        ok["result"]["contents"][0]["uri"],
        json!(format!("{DOCS}architecture.md")),
        "{ok}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Declared charsets

/// A body whose method is an opaque, ungoverned string as UTF-8 and `tools/call` (of `get-sum`)
/// as UTF-7: the UTF-7 escape `+…-` is `tools/call` as UTF-16BE in base64.
fn utf7_smuggled_call(id: u32) -> Vec<u8> {
    let utf16: Vec<u8> = "tools/call"
        .encode_utf16()
        .flat_map(|unit| unit.to_be_bytes())
        .collect();
    let method = base64::engine::general_purpose::STANDARD_NO_PAD.encode(utf16);
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"+{method}-","params":{{"name":"get-sum","arguments":{{"a":1,"b":2}}}}}}"#
    )
    .into_bytes()
}

fn ready_legacy(session: &mut LegacySession) {
    let init = session.post_json(&mcpgate_tests::http::initialize_body(1));
    assert_eq!(init.status, 202, "{}", init.body_text());
    session.until_id(&json!(1), deadline());
    session.post_json(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
}

fn is_sum(message: &Value) -> bool {
    message["result"]["content"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("sum"))
}

#[test]
fn a_charset_other_than_utf8_is_refused_on_the_legacy_transport() {
    for with_acl in [true, false] {
        let s = setup(EverythingTransport::Sse, with_acl);
        // The attack is real: the upstream decodes UTF-7 and runs get-sum.
        let mut direct = LegacySession::open(s.server.addr(), "/sse");
        ready_legacy(&mut direct);
        let utf7 = [("Content-Type", "application/json; charset=utf-7")];
        let reply = direct.post(&utf7, &utf7_smuggled_call(5));
        assert_eq!(reply.status, 202, "{}", reply.body_text());
        let seen = direct.until_id(&json!(5), deadline());
        assert!(
            is_sum(&answer(&seen, &json!(5))),
            "the upstream did not run the smuggled call: {seen:?}"
        );

        let mut through = LegacySession::open(s.gateway.addr(), &format!("{LEGACY_API}/sse"));
        ready_legacy(&mut through);
        for charset in [
            "utf-7",
            "UNICODE-1-1-UTF-7",
            "utf-7-imap",
            "\"utf-7\"",
            "utf-16",
        ] {
            let content_type = format!("application/json; charset={charset}");
            let reply = through.post(
                &[("Content-Type", content_type.as_str())],
                &utf7_smuggled_call(6),
            );
            assert_eq!(reply.status, 415, "{charset}: {}", reply.body_text());
            let body = reply.json().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(body["error"]["code"], json!(-32600), "{body}");
        }
        // Nothing reached the upstream: the answer to a later ping is the next message.
        through.post_json(r#"{"jsonrpc":"2.0","id":99,"method":"ping"}"#);
        let seen = through.until_id(&json!(99), deadline());
        assert!(
            !seen.iter().any(is_sum),
            "get-sum ran (acl: {with_acl}): {seen:?}"
        );
        // UTF-8, declared or not, still passes.
        let reply = through.post(
            &[("Content-Type", "application/json; charset=UTF-8")],
            br#"{"jsonrpc":"2.0","id":100,"method":"ping"}"#,
        );
        assert_eq!(reply.status, 202, "{}", reply.body_text());
        through.until_id(&json!(100), deadline());
    }
}

#[test]
fn a_charset_other_than_utf8_is_refused_on_streamable_http() {
    let s = setup(EverythingTransport::StreamableHttp, false);
    let through = McpSession::open(s.gateway.addr(), API, PROTOCOL);
    let response = through.post(
        &[("Content-Type", "application/json; charset=utf-7")],
        std::str::from_utf8(&utf7_smuggled_call(7)).unwrap_or_default(),
    );
    assert_eq!(response.status, 415, "{}", response.body_text());
    let body = response.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["error"]["code"], json!(-32600), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("UTF-8")),
        "{body}"
    );
}
