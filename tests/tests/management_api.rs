//! The management API (issue 19) over real HTTP against the real binary, with
//! server-everything as the upstream: every endpoint, the admin token required, optimistic
//! concurrency (a stale version is refused 409), a failed validation leaving the file untouched
//! byte for byte, comments kept across deploys, deploys reloading the running gateway (the new
//! path answers, the deleted one stops), history and rollback, the audit log, write-only secrets,
//! the console session's CSRF and same-origin checks, and the refusal to edit when there is no
//! file (embedded default) or no token.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mcpgate_tests::http::{build_request, exchange, initialize_body, post_mcp};
use mcpgate_tests::integrity::TempDir;
use mcpgate_tests::net::{wait_for_listener, wait_for_ready_line};
use mcpgate_tests::process::ManagedChild;
use mcpgate_tests::{free_port, mcpgate_bin, Gateway, GatewaySpec, ServerEverything};
use serde_json::{json, Value};

const TOKEN: &str = "manage-e2e-token-7c1f0a9d3b";
const API_KEY: &str = "sk-live-never-echoed-0123456789";

const CONFIG: &str = r#"# mcpgate config for the management API test: this comment must survive every deploy.
[gateway]
listen = "{listen}"   # clients
admin = "{admin}"
workers = 1

[gateway.manage]
history_keep = 10

# The reference server.
[[api]]
name = "everything"
path = "/everything"
upstream = "{upstream}"

# A keyed API: its key must never be echoed.
[[api]]
name = "keyed"
path = "/keyed"
upstream = "{upstream}"

[api.plan]
type = "api_key"
keys = ["{key}"]
"#;

/// One admin call; status, JSON body (Null when not JSON), raw text.
fn call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, Value, String) {
    let text = body.map(Value::to_string).unwrap_or_default();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if body.is_some() {
        all.push(("Content-Type", "application/json"));
    }
    let request = build_request(method, path, &admin.to_string(), &all, text.as_bytes());
    let answer = exchange(admin, &request, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let raw = answer.body_text();
    (answer.status, answer.json().unwrap_or(Value::Null), raw)
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// An authorized call.
fn api(admin: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let auth = bearer();
    let (status, json, raw) = call(admin, method, path, body, &[("Authorization", &auth)]);
    assert!(
        !raw.contains(API_KEY),
        "{method} {path} echoed the API key: {raw}"
    );
    (status, json)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Waits until `path` on the gateway answers an MCP initialize with `want` (reloads are
/// applied by workers between requests).
fn wait_for_status(gateway: SocketAddr, path: &str, want: u16, extra: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = 0;
    while Instant::now() < deadline {
        if let Ok(r) = post_mcp(gateway, path, extra, &initialize_body(1)) {
            last = r.status;
            if r.status == want {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{path} answered {last}, not {want}, within 20 s");
}

fn start(scratch: &TempDir, upstream: &str) -> Gateway {
    let token_file = scratch.path("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap_or_else(|e| panic!("{e}"));
    let config = CONFIG
        .replace("{upstream}", upstream)
        .replace("{key}", API_KEY);
    Gateway::start(&GatewaySpec::config(config).args([
        "--admin-token-file".to_string(),
        token_file.display().to_string(),
    ]))
}

#[test]
fn every_endpoint_over_http() {
    let everything = ServerEverything::start();
    let scratch = TempDir::new("manage-api");
    let gw = start(&scratch, &everything.upstream_url());
    let admin = gw.admin_addr();
    let file = gw.config_path().unwrap_or_else(|| panic!("no config file"));
    let original = read(&file);

    // Auth: nothing without the token; the probes stay open.
    for (method, path) in [
        ("GET", "/api/manage"),
        ("GET", "/api/manage/apis"),
        ("POST", "/api/manage/apis"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/manage/audit"),
    ] {
        let (status, _, _) = call(admin, method, path, None, &[]);
        assert_eq!(status, 401, "{method} {path} without a token");
        let (status, _, _) = call(
            admin,
            method,
            path,
            None,
            &[("Authorization", "Bearer wrong-token-0123456789abcdef")],
        );
        assert_eq!(status, 401, "{method} {path} with a wrong token");
    }

    // The OpenAPI document names every route.
    let (status, doc) = api(admin, "GET", "/api/openapi.json", None);
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for route in [
        "/api/manage",
        "/api/manage/apis",
        "/api/manage/apis/{name}",
        "/api/manage/apis/{name}/live",
        "/api/manage/validate",
        "/api/manage/diff",
        "/api/manage/deploy",
        "/api/manage/history",
        "/api/manage/history/{id}",
        "/api/manage/history/{id}/rollback",
        "/api/manage/audit",
        "/api/session",
    ] {
        assert!(doc["paths"].get(route).is_some(), "OpenAPI lacks {route}");
    }

    // Status and reads.
    let (status, st) = api(admin, "GET", "/api/manage", None);
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["editable"], true, "{st}");
    assert_eq!(st["file"], file.display().to_string());
    let v0 = st["version"].as_str().unwrap_or_default().to_string();
    assert!(v0.starts_with("sha256:"), "{st}");
    let (status, list) = api(admin, "GET", "/api/manage/apis", None);
    assert_eq!(status, 200);
    assert_eq!(list["version"], v0);
    let names: Vec<&str> = list["apis"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["everything", "keyed"], "{list}");
    let (status, keyed) = api(admin, "GET", "/api/manage/apis/keyed", None);
    assert_eq!(status, 200);
    assert_eq!(keyed["api"]["plan"]["keys"][0], "********", "{keyed}");
    let (status, _) = api(admin, "GET", "/api/manage/apis/nope", None);
    assert_eq!(status, 404);

    // Live lists from the upstream, by API and by URL.
    let (status, live) = api(admin, "GET", "/api/manage/apis/everything/live", None);
    assert_eq!(status, 200, "{live}");
    let tools: Vec<&str> = live["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(tools.contains(&"echo") && tools.len() > 3, "{live}");
    assert!(
        live["prompts"].as_array().is_some_and(|p| !p.is_empty()),
        "{live}"
    );
    assert!(
        live["resources"].as_array().is_some_and(|r| !r.is_empty()),
        "{live}"
    );
    let dead = format!("http://{}/mcp", mcpgate_tests::closed_port_addr());
    let (status, err) = api(
        admin,
        "GET",
        &format!("/api/manage/live?upstream={dead}"),
        None,
    );
    assert_eq!(status, 502, "{err}");
    assert_eq!(err["code"], "upstream_unreachable");

    // Validate and diff: nothing written.
    let second = json!({"name": "second", "path": "/second", "upstream": everything.upstream_url(),
        "acl": {"rule": [{"type": "TOOLS", "methods": ["tools/list"]}]}});
    let (status, valid) = api(
        admin,
        "POST",
        "/api/manage/validate",
        Some(&json!({"api": second})),
    );
    assert_eq!(status, 200, "{valid}");
    assert_eq!(valid["valid"], true);
    assert!(
        valid["summary"].to_string().contains("api second /second"),
        "the summary `mcpgate check` prints: {valid}"
    );
    let (status, diff) = api(
        admin,
        "POST",
        "/api/manage/diff",
        Some(&json!({"api": second})),
    );
    assert_eq!(status, 200);
    let d = diff["diff"].as_str().unwrap_or_default();
    assert!(
        d.contains("+[[api]]")
            && d.contains("+name = \"second\"")
            && d.contains("+[[api.acl.rule]]"),
        "{d}"
    );
    let bad = json!({"name": "bad", "path": "/bad", "upstream": "ftp://127.0.0.1/mcp"});
    let (status, invalid) = api(
        admin,
        "POST",
        "/api/manage/validate",
        Some(&json!({"api": bad})),
    );
    assert_eq!(status, 422, "{invalid}");
    let message = invalid["messages"][0].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("{}:", file.display())) && message.contains("api[2].upstream"),
        "the loader's message, naming the file, line and field: {message}"
    );
    // The same message `mcpgate check` prints for that file.
    let candidate = scratch.path("candidate.toml");
    std::fs::write(
        &candidate,
        format!(
            "{original}\n[[api]]\nname = \"bad\"\npath = \"/bad\"\nupstream = \"ftp://127.0.0.1/mcp\"\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let check = Command::new(mcpgate_bin())
        .args(["check"])
        .arg(&candidate)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let check_err = String::from_utf8_lossy(&check.stderr);
    let tail = message.split_once(": ").map_or("", |(_, t)| t);
    let tail = tail.split_once(": ").map_or(tail, |(_field, rest)| rest);
    assert!(
        !check.status.success() && check_err.contains(tail),
        "check says {check_err:?}, the API said {message:?}"
    );
    assert_eq!(read(&file), original, "validate wrote nothing");

    // Writes need a version; a stale one is refused.
    let (status, e) = api(
        admin,
        "POST",
        "/api/manage/apis",
        Some(&json!({"api": second})),
    );
    assert_eq!(status, 428, "{e}");
    let (status, e) = api(
        admin,
        "POST",
        "/api/manage/apis",
        Some(&json!({"api": second, "version": "sha256:0000"})),
    );
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["code"], "stale_version");
    assert_eq!(e["version"], v0, "the current version comes back");
    // A dry run writes nothing.
    let (status, dry) = api(
        admin,
        "POST",
        "/api/manage/apis?dry_run=true",
        Some(&json!({"api": second, "version": v0})),
    );
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(read(&file), original);

    // Create: written, comments kept, reloaded (the new path answers).
    let (status, created) = api(
        admin,
        "POST",
        "/api/manage/apis",
        Some(&json!({"api": second, "version": v0})),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["reload"]["ok"], true, "{created}");
    let v1 = created["version"].as_str().unwrap_or_default().to_string();
    let text = read(&file);
    assert!(
        text.starts_with(&original),
        "appended, the rest untouched:\n{text}"
    );
    assert_ne!(v1, v0);
    wait_for_status(gw.addr(), "/second", 200, &[]);
    let (status, e) = api(
        admin,
        "POST",
        "/api/manage/apis",
        Some(&json!({"api": second, "version": v1})),
    );
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["code"], "exists");

    // Concurrent edits: two updates based on v1; the first wins, the second is stale.
    let mut a = second.clone();
    a["acl"]["rule"][0]["methods"] = json!(["tools/list", "tools/call"]);
    let mut b = second.clone();
    b["acl"]["rule"][0]["names"] = json!(["echo"]);
    let (sa, ra) = api(
        admin,
        "PUT",
        "/api/manage/apis/second",
        Some(&json!({"api": a, "version": v1})),
    );
    let (sb, rb) = api(
        admin,
        "PUT",
        "/api/manage/apis/second",
        Some(&json!({"api": b, "version": v1})),
    );
    assert_eq!((sa, sb), (200, 409), "{ra} / {rb}");
    assert_eq!(rb["code"], "stale_version");
    let v2 = ra["version"].as_str().unwrap_or_default().to_string();
    assert!(read(&file).contains("methods = [\"tools/list\", \"tools/call\"]"));
    // If-Match works as the version too.
    let v2_quoted = format!("\"{v2}\"");
    let auth = bearer();
    let (status, _, _) = call(
        admin,
        "PUT",
        "/api/manage/apis/second",
        Some(&json!({"api": b})),
        &[("Authorization", &auth), ("If-Match", "\"sha256:0\"")],
    );
    assert_eq!(status, 409, "a stale If-Match");

    // A failed validation leaves the file untouched, byte for byte.
    let before = read(&file);
    let mut broken = a.clone();
    broken["acl"]["rule"][0]["pattern"] = json!("(unclosed");
    let (status, e) = api(
        admin,
        "PUT",
        "/api/manage/apis/second",
        Some(&json!({"api": broken, "version": v2})),
    );
    assert_eq!(status, 422, "{e}");
    assert!(
        e["messages"][0]
            .as_str()
            .is_some_and(|m| m.contains("api[2]")),
        "{e}"
    );
    assert_eq!(read(&file), before, "a refused change writes nothing");
    let (status, _, _) = call(
        admin,
        "PUT",
        "/api/manage/apis/second",
        Some(&json!({"api": b})),
        &[("Authorization", &auth), ("If-Match", &v2_quoted)],
    );
    assert_eq!(status, 200, "If-Match with the current version");
    let (_, st) = api(admin, "GET", "/api/manage", None);
    let v3 = st["version"].as_str().unwrap_or_default().to_string();

    // Truly concurrent edits from the same version: exactly one is written.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let racers: Vec<_> = (0..4)
        .map(|i| {
            let barrier = barrier.clone();
            let mut edit = second.clone();
            edit["acl"]["rule"][0]["names"] = json!([format!("tool-{i}")]);
            let body = json!({"api": edit, "version": v3});
            std::thread::spawn(move || {
                barrier.wait();
                api(admin, "PUT", "/api/manage/apis/second", Some(&body))
            })
        })
        .collect();
    let mut outcomes: Vec<(u16, Value)> = racers
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| panic!("a racer panicked")))
        .collect();
    outcomes.sort_by_key(|(s, _)| *s);
    let statuses: Vec<u16> = outcomes.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 409, 409, 409], "{outcomes:?}");
    let winner = outcomes[0].1["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for (_, loser) in &outcomes[1..] {
        assert_eq!(loser["code"], "stale_version");
        assert_eq!(
            loser["version"],
            winner.as_str(),
            "the losers learn the winner's version"
        );
    }
    let v3 = winner;

    // Secrets are write-only: sending the marker back keeps the key, the key itself is never
    // shown (every call above and below checks that), and a marker where there was no secret is
    // refused.
    let (_, keyed) = api(admin, "GET", "/api/manage/apis/keyed", None);
    let mut keyed_api = keyed["api"].clone();
    keyed_api["upstream"] = json!(everything.upstream_url());
    keyed_api["public_url"] = json!(gw.url("/keyed"));
    let (status, r) = api(
        admin,
        "PUT",
        "/api/manage/apis/keyed",
        Some(&json!({"api": keyed_api, "version": v3})),
    );
    assert_eq!(status, 200, "{r}");
    let text = read(&file);
    assert!(text.contains(&format!("keys = [\"{API_KEY}\"]")), "{text}");
    assert!(text.contains("public_url"), "{text}");
    let v4 = r["version"].as_str().unwrap_or_default().to_string();
    wait_for_status(gw.addr(), "/keyed", 200, &[("X-API-Key", API_KEY)]);
    let mut no_secret = second.clone();
    no_secret["plan"] = json!({"type": "api_key", "keys": ["********"]});
    let (status, e) = api(
        admin,
        "PUT",
        "/api/manage/apis/second",
        Some(&json!({"api": no_secret, "version": v4})),
    );
    assert_eq!(status, 422, "{e}");

    // Delete: the path stops answering.
    let (status, r) = api(
        admin,
        "DELETE",
        "/api/manage/apis/second",
        Some(&json!({"version": v4})),
    );
    assert_eq!(status, 200, "{r}");
    let v5 = r["version"].as_str().unwrap_or_default().to_string();
    wait_for_status(gw.addr(), "/second", 404, &[]);
    assert!(!read(&file).contains("name = \"second\""));

    // Several changes in one deploy.
    let third = json!({"name": "third", "path": "/third", "upstream": everything.upstream_url()});
    let (status, r) = api(
        admin,
        "POST",
        "/api/manage/deploy",
        Some(&json!({"version": v5, "changes": [
            {"op": "upsert", "api": third},
            {"op": "delete", "name": "everything"}
        ]})),
    );
    assert_eq!(status, 200, "{r}");
    let v6 = r["version"].as_str().unwrap_or_default().to_string();
    wait_for_status(gw.addr(), "/third", 200, &[]);
    wait_for_status(gw.addr(), "/everything", 404, &[]);

    // History: newest first, the original among them; rollback to it restores the file.
    let (status, h) = api(admin, "GET", "/api/manage/history", None);
    assert_eq!(status, 200, "{h}");
    let entries = h["entries"].as_array().cloned().unwrap_or_default();
    assert!(entries.len() >= 6, "{h}");
    assert_eq!(entries[0]["version"], v6);
    assert_eq!(entries[0]["current"], true);
    let first = entries
        .iter()
        .find(|e| e["version"] == v0.as_str())
        .unwrap_or_else(|| panic!("the original version is in the history: {h}"));
    let id = first["id"].as_str().unwrap_or_default();
    let (status, one) = api(admin, "GET", &format!("/api/manage/history/{id}"), None);
    assert_eq!(status, 200, "{one}");
    assert!(
        one["diff"]
            .as_str()
            .is_some_and(|d| d.contains("+name = \"everything\"")),
        "{one}"
    );
    let (status, e) = api(
        admin,
        "POST",
        &format!("/api/manage/history/{id}/rollback"),
        Some(&json!({"version": v5})),
    );
    assert_eq!(status, 409, "rollback with a stale version: {e}");
    let (status, r) = api(
        admin,
        "POST",
        &format!("/api/manage/history/{id}/rollback"),
        Some(&json!({"version": v6})),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["version"], v0);
    assert_eq!(read(&file), original, "rolled back byte for byte");
    wait_for_status(gw.addr(), "/everything", 200, &[]);
    wait_for_status(gw.addr(), "/third", 404, &[]);
    let (status, _) = api(admin, "GET", "/api/manage/history/../../etc/passwd", None);
    assert!(status == 404 || status == 400, "{status}");

    // The audit log: who, what, versions, diffs — no secret.
    let (status, audit) = api(admin, "GET", "/api/manage/audit?limit=50", None);
    assert_eq!(status, 200, "{audit}");
    let records = audit["records"].as_array().cloned().unwrap_or_default();
    let actions: Vec<&str> = records
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(actions.len(), 8, "{actions:?}");
    assert!(actions[0].starts_with("rollback to "), "{actions:?}");
    for want in ["create", "update", "delete", "deploy"] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
    for r in &records {
        let who = r["who"].as_str().unwrap_or_default();
        assert!(
            who.starts_with("bearer: admin token from --admin-token-file"),
            "{who}"
        );
        assert!(
            r["time_ms"].as_u64().is_some() && r["diff"].is_string(),
            "{r}"
        );
    }
    let audit_file = audit["file"].as_str().unwrap_or_default();
    let on_disk = read(Path::new(audit_file));
    assert_eq!(on_disk.lines().count(), 8);
    assert!(!on_disk.contains(API_KEY), "the audit log holds no secret");
    let kept = std::fs::read_dir(Path::new(audit_file).parent().unwrap_or(Path::new("/")))
        .map(|d| d.flatten().count())
        .unwrap_or_default();
    assert!(
        (2..=11).contains(&kept),
        "history_keep = 10 copies plus the audit log: {kept}"
    );

    // Method and route errors are JSON with a code.
    let (status, e) = api(admin, "PATCH", "/api/manage/apis/everything", None);
    assert_eq!(status, 405, "{e}");
    let (status, e) = api(admin, "GET", "/api/manage/nothing", None);
    assert_eq!((status, e["code"].as_str()), (404, Some("not_found")));
    let (status, e, _) = call(
        admin,
        "POST",
        "/api/manage/validate",
        None,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!((status, e["code"].as_str()), (400, Some("bad_request")));
}

/// The console's session: the cookie alone does not authorize a write; the CSRF token from
/// `/api/session` does, from the same origin only.
#[test]
fn console_sessions_need_the_csrf_token_and_the_same_origin() {
    let everything = ServerEverything::start();
    let scratch = TempDir::new("manage-csrf");
    let gw = start(&scratch, &everything.upstream_url());
    let admin = gw.admin_addr();
    let request = build_request(
        "POST",
        "/login",
        &admin.to_string(),
        &[("Authorization", &bearer())],
        b"",
    );
    let login =
        exchange(admin, &request, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(login.status, 204);
    let cookie = login
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_string();
    assert!(cookie.starts_with("mcpgate-admin="), "{cookie}");
    let (status, session, _) = call(admin, "GET", "/api/session", None, &[("Cookie", &cookie)]);
    assert_eq!(status, 200);
    let csrf = session["csrf"].as_str().unwrap_or_default().to_string();
    assert_eq!(csrf.len(), 64, "{session}");
    assert!(session["identity"]
        .as_str()
        .is_some_and(|i| i.starts_with("console session")));
    let (_, st, _) = call(admin, "GET", "/api/manage", None, &[("Cookie", &cookie)]);
    let version = st["version"].as_str().unwrap_or_default().to_string();
    let body =
        json!({"version": version, "api": {"path": "/x", "upstream": everything.upstream_url()}});
    let path = "/api/manage/apis?dry_run=true";
    let (status, e, _) = call(admin, "POST", path, Some(&body), &[("Cookie", &cookie)]);
    assert_eq!(status, 403, "no CSRF token: {e}");
    let (status, _, _) = call(
        admin,
        "POST",
        path,
        Some(&body),
        &[("Cookie", &cookie), ("X-CSRF-Token", "00")],
    );
    assert_eq!(status, 403, "a wrong CSRF token");
    let (status, _, _) = call(
        admin,
        "POST",
        path,
        Some(&body),
        &[
            ("Cookie", &cookie),
            ("X-CSRF-Token", &csrf),
            ("Origin", "http://evil.example"),
        ],
    );
    assert_eq!(status, 403, "another origin");
    let origin = format!("http://{admin}");
    let (status, ok, _) = call(
        admin,
        "POST",
        path,
        Some(&body),
        &[
            ("Cookie", &cookie),
            ("X-CSRF-Token", &csrf),
            ("Origin", &origin),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    );
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["dry_run"], true);
    // Bearer callers need no CSRF token.
    let (status, _) = api(admin, "POST", path, Some(&body));
    assert_eq!(status, 200);
}

/// Started on the embedded default (no `--config`), there is no file to edit: reads work and
/// say so, writes are refused 409 `no_config_file`. Without an admin token, the management API
/// is closed (403) even on loopback.
#[test]
fn without_a_file_or_a_token_nothing_is_edited() {
    let scratch = TempDir::new("manage-default");
    let token_file = scratch.path("admin-token");
    std::fs::write(&token_file, TOKEN).unwrap_or_else(|e| panic!("{e}"));
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut command = Command::new(mcpgate_bin());
    command
        .args(["run", "--workers", "1", "--listen", &listen.to_string()])
        .args(["--admin", &admin.to_string()])
        .arg("--admin-token-file")
        .arg(&token_file)
        .current_dir(&scratch.0);
    let mut child =
        ManagedChild::spawn("mcpgate (default)", command).unwrap_or_else(|e| panic!("{e}"));
    wait_for_listener(listen, &mut child, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for_ready_line(&mut child, "admin listening", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, st) = api(admin, "GET", "/api/manage", None);
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["editable"], false);
    assert!(
        st["reason"]
            .as_str()
            .is_some_and(|r| r.contains("--config")),
        "{st}"
    );
    let (status, list) = api(admin, "GET", "/api/manage/apis", None);
    assert_eq!(status, 200);
    assert_eq!(list["apis"][0]["path"], "/mcp-proxy", "{list}");
    let version = list["version"].as_str().unwrap_or_default();
    let (status, e) = api(
        admin,
        "POST",
        "/api/manage/apis",
        Some(
            &json!({"version": version, "api": {"path": "/x", "upstream": "http://127.0.0.1:1/mcp"}}),
        ),
    );
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["code"], "no_config_file");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("embedded default")),
        "{e}"
    );
    drop(child);

    // No token at all: the management API is closed.
    let everything_url = "http://127.0.0.1:1/mcp";
    let gw = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\
         [[api]]\npath = \"/a\"\nupstream = \"{everything_url}\"\n"
    )));
    let (status, e, _) = call(gw.admin_addr(), "GET", "/api/manage/apis", None, &[]);
    assert_eq!(status, 403, "{e}");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("admin token")),
        "{e}"
    );
}
