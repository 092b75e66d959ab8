//! The console (`GET /` on the admin listener) in a real headless Chromium (Debian `chromium`)
//! after a run of the official TypeScript SDK client through mcpgate: the rendered page must show
//! the run's tools and an error. A screenshot is kept as `test-artifacts/console.png`.
//!
//! The admin listener has a token (issue 18): the browser first gets the login page, then signs
//! in through it (`/login#token=…`, the page posts the token and keeps the session cookie) and
//! sees the console.

mod observe_common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mcpgate_tests::process::run_to_completion;
use mcpgate_tests::{run_client, Sdk};
use observe_common::{artifacts_dir, poll, require_program, Scratch, Stack};

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

/// Runs headless Chromium on `url` with `extra` arguments; its stdout.
fn chromium(profile: &Path, url: &str, extra: &[String]) -> String {
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
fn visible_text(dom: &str) -> String {
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
