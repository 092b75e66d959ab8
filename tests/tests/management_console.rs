//! The seed guide's console steps in real Chromium, driven through its WebDriver (Debian's
//! `chromium-driver`, the `selenium` package pinned in tests/py/requirements.lock):
//! tests/py/console_manage.py clicks, this test checks with the official TypeScript SDK client.
//!
//! 1. Sign in, "Manage APIs", create the API for server-everything (inline validation from the
//!    form and from the gateway's loader on the way), load its live tools, add the rule
//!    "Tools: tools/list only", deploy, land on the API's traffic view. The client then sees
//!    every tool of the server and every call is refused.
//! 2. Change the rule to one LITERAL tool (echo) with list and call, deploy: the client sees
//!    one tool, can call it, and every other call is refused.
//!
//! Screenshots land in `test-artifacts/manage-*.png`.

mod observe_common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use mcpgate_tests::net::wait_for_listener;
use mcpgate_tests::peers::run_client_with_env;
use mcpgate_tests::process::{run_to_completion, ManagedChild};
use mcpgate_tests::{free_port, Gateway, GatewaySpec, Sdk, ServerEverything};
use observe_common::{artifacts_dir, require_program};
use serde_json::Value;

const TOKEN: &str = "console-manage-token-4e8a2b7c19";

/// Runs one phase of the WebDriver script; its observations.
fn browser_phase(driver: SocketAddr, admin: SocketAddr, upstream: &str, phase: &str) -> Value {
    let mut command: Command = Sdk::Python.script_command("console_manage.py");
    command
        .arg(format!("http://{driver}"))
        .arg(format!("http://{admin}"))
        .arg(TOKEN)
        .arg(upstream)
        .arg(phase)
        .arg(artifacts_dir());
    let finished = run_to_completion(command, Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("cannot run console_manage.py: {e}"));
    let out: Option<Value> = finished
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok());
    match out {
        Some(v) if finished.status.is_some_and(|s| s.success()) && v.get("error").is_none() => v,
        _ => panic!(
            "browser phase {phase} failed (status {:?}, timed out {})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            finished.status, finished.timed_out, finished.stdout, finished.stderr
        ),
    }
}

fn refused(outcome: &Value) -> bool {
    outcome["code"] == -32602
        && outcome["message"]
            .as_str()
            .is_some_and(|m| m.contains("Unknown tool"))
}

#[test]
fn the_guides_steps_in_chromium_through_webdriver() {
    let chromedriver = require_program("chromedriver", "chromium-driver");
    require_program("chromium", "chromium");
    let everything = ServerEverything::start();
    let scratch = mcpgate_tests::integrity::TempDir::new("manage-console");
    let token_file = scratch.path("admin-token");
    std::fs::write(&token_file, TOKEN).unwrap_or_else(|e| panic!("{e}"));
    let gw = Gateway::start(
        &GatewaySpec::config(format!(
            "# Managed from the console.\n[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
             [[api]]\nname = \"placeholder\"\npath = \"/placeholder\"\nupstream = \"{}\"\n",
            everything.upstream_url()
        ))
        .args([
            "--admin-token-file".to_string(),
            token_file.display().to_string(),
        ]),
    );
    let file = gw.config_path().unwrap_or_else(|| panic!("no config file"));

    // chromedriver on a free port, killed when the test ends.
    let port = free_port();
    let driver_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new(chromedriver);
    command.arg(format!("--port={port}"));
    let mut driver = ManagedChild::spawn("chromedriver", command)
        .unwrap_or_else(|e| panic!("cannot run chromedriver: {e}"));
    wait_for_listener(driver_addr, &mut driver, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("chromedriver: {e}"));

    // 1. Create the API with "Tools: tools/list only".
    let upstream = everything.upstream_url();
    let create = browser_phase(driver_addr, gw.admin_addr(), &upstream, "create");
    assert!(
        create["inline_client"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{create}"
    );
    assert!(
        create["inline_server"]
            .as_str()
            .is_some_and(|m| m.contains("already the path of api[0]")),
        "the loader's message under the path field: {create}"
    );
    let live: Vec<String> = create["live_tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        live.len() > 3 && live.iter().any(|t| t == "echo"),
        "{create}"
    );
    let preview = create["preview"].as_str().unwrap_or_default();
    assert!(
        preview.starts_with(&format!(
            "Lets through {n} of {n} live tools (listed)",
            n = live.len()
        )),
        "{preview}"
    );
    assert!(
        create["preview_rows"]
            .as_object()
            .is_some_and(|rows| rows.values().all(|v| v[0] == "true" && v[1] == "false")),
        "every tool listed, none callable: {create}"
    );
    assert_eq!(create["validated"], "Valid.", "{create}");
    assert!(
        create["landed"]
            .as_str()
            .is_some_and(|u| u.ends_with("/#api=everything")),
        "{create}"
    );
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        text.starts_with("# Managed from the console.\n")
            && text.contains("methods = [\"tools/list\"]"),
        "{text}"
    );

    let names = live.join(",");
    let env = [("MCPGATE_E2E_CALL_NAMES", names.as_str())];
    let seen = run_client_with_env(
        Sdk::TypeScript,
        &gw.url("/everything"),
        "acl_call_each",
        &env,
    );
    let listed: Vec<&str> = seen["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut want: Vec<&str> = live.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(listed, want, "the client sees every tool: {seen}");
    for name in &live {
        assert!(
            refused(&seen["calls"][name]),
            "{name} must be refused: {seen}"
        );
    }

    // 2. One literal tool, listed and callable.
    let literal = browser_phase(driver_addr, gw.admin_addr(), &upstream, "literal");
    assert!(
        literal["inline_rule"]
            .as_str()
            .is_some_and(|m| m.contains("regular expression")),
        "{literal}"
    );
    assert!(
        literal["preview"]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!(
                "Lets through 1 of {} live tools (listed and callable): echo",
                live.len()
            ))),
        "{literal}"
    );
    assert_eq!(
        literal["preview_rows"]["echo"],
        serde_json::json!(["true", "true"]),
        "{literal}"
    );
    let seen = run_client_with_env(
        Sdk::TypeScript,
        &gw.url("/everything"),
        "acl_call_each",
        &env,
    );
    assert_eq!(seen["tools"], serde_json::json!(["echo"]), "{seen}");
    assert_eq!(seen["calls"]["echo"], "ok", "{seen}");
    for name in live.iter().filter(|n| *n != "echo") {
        assert!(
            refused(&seen["calls"][name]),
            "{name} must be refused: {seen}"
        );
    }
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(text.contains("names = [\"echo\"]"), "{text}");
}
