//! The console (`GET /` on the admin listener) in a real headless Chromium (Debian `chromium`)
//! after a run of the official TypeScript SDK client through mcpgate: the rendered page must show
//! the run's tools and an error. A screenshot is kept as `test-artifacts/console.png`.
//!
//! The admin listener has a token (issue 18): the browser first gets the login page, then signs
//! in through it (`/login#token=…`, the page posts the token and keeps the session cookie) and
//! sees the console.

mod observe_common;

use std::time::Duration;

use mcpgate_tests::{run_client, Sdk};
use observe_common::{artifacts_dir, chromium, poll, visible_text, Scratch, Stack};

const ADMIN_TOKEN: &str = "console-e2e-token-5b7e21f0c9";

/// GET on the admin listener with the admin token; the JSON body.
fn admin_json(admin: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let request = mcpgate_tests::http::build_request(
        "GET",
        path,
        &admin.to_string(),
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        b"",
    );
    let answer = mcpgate_tests::http::exchange(admin, &request, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.body_text());
    answer.json().unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

#[test]
fn console_in_chromium_shows_the_runs_tools_and_an_error() {
    let scratch = Scratch::new("console-token");
    let token_file = scratch.path.join("admin-token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap_or_else(|e| panic!("{e}"));
    let stack = Stack::start_all(
        "observe-console",
        false,
        "",
        "",
        &format!(
            "[gateway.admin_auth]\ntoken_file = \"{}\"\n",
            token_file.display()
        ),
    );
    let url = stack.mcp_url();
    let calls = run_client(Sdk::TypeScript, &url, "tools_call");
    assert_eq!(calls["echoText"], "Echo: hello through mcpgate", "{calls}");
    let session = stack.open_session(&[]);
    stack.provoke_jsonrpc_error(&session);

    // The page polls the API; wait until the summary has everything the page must show, so a
    // missing name in the DOM is the console's fault, not a race with publication.
    poll("the run in /api/summary", Duration::from_secs(20), || {
        let summary = admin_json(stack.admin(), "/api/summary").to_string();
        let has_all = ["echo", "get-sum", "no-such-prompt", "-32602"]
            .iter()
            .all(|needle| summary.contains(needle));
        if has_all {
            Ok(())
        } else {
            Err(summary)
        }
    });

    let profile = Scratch::new("chromium-profile");
    // Without a session the browser lands on the login page, not the console.
    let console_url = format!("http://{}/", stack.admin());
    let dom = chromium(&profile.path, &console_url, &["--dump-dom".to_string()]);
    let text = visible_text(&dom);
    assert!(
        text.contains("Sign in to the traffic console") && !text.contains("get-sum"),
        "the console showed without signing in:\n{text}"
    );
    // Signing in through the login page (the token in the fragment never reaches the server).
    let login_url = format!("http://{}/login#token={ADMIN_TOKEN}", stack.admin());
    let dom = chromium(&profile.path, &login_url, &["--dump-dom".to_string()]);
    let text = visible_text(&dom);
    for needle in ["echo", "get-sum", "tools/call", "no-such-prompt", "-32602"] {
        assert!(
            text.contains(needle),
            "the rendered console does not show {needle:?}:\n{text}"
        );
    }
    // The error is shown as one: the failed exchange's row carries the `error` outcome.
    assert!(
        text.contains("prompts/get no-such-prompt 200 error -32602"),
        "the exchange log does not show the failed prompts/get as an error:\n{text}"
    );

    let shot = artifacts_dir().join("console.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &profile.path,
        &login_url,
        &[format!("--screenshot={}", shot.display())],
    );
    let size = std::fs::metadata(&shot)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()))
        .len();
    assert!(
        size > 10_000,
        "the screenshot is suspiciously small ({size} B)"
    );
    eprintln!("console screenshot: {}", shot.display());
}
