//! The JSON-lines sink as an operator uses it: one JSON object per exchange in the configured file,
//! a rotation by `mv` + SIGHUP (the next records go to a new file at the same path, nothing lost
//! or duplicated), and `[gateway.log] enabled = false` recording nothing.

mod observe_common;

use std::time::Duration;

use observe_common::{admin_get, admin_json, poll, Stack, API_NAME};

const ECHO: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"before rotation"}}}"#;
const SUM: &str = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}"#;

fn wait_for_line(path: &std::path::Path, needle: &str) -> String {
    poll(
        &format!("{needle} in {}", path.display()),
        Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
            if text.contains(needle) {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
}

#[test]
fn json_lines_survive_a_rotation_on_sighup() {
    let mut stack = Stack::start("observe-sink", false);
    let session = stack.open_session(&[]);
    assert_eq!(stack.call(&session, &[], ECHO).status, 200);
    let before = wait_for_line(&stack.log_file, "\"target\":\"echo\"");
    for line in before.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert_eq!(v["api"], API_NAME, "{line}");
        assert!(v["id"].is_string() && v["time_ms"].is_u64(), "{line}");
    }
    let echo: serde_json::Value = before
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["target"] == "echo")
        .unwrap_or_default();
    assert_eq!(echo["method"], "tools/call");
    assert_eq!(echo["status"], 200);
    assert_eq!(echo["outcome"], "ok");
    assert!(echo["total_us"].as_u64().unwrap_or(0) > 0, "{echo}");
    assert!(echo["response_bytes"].as_u64().unwrap_or(0) > 0, "{echo}");
    assert!(echo["session"].is_string(), "{echo}");

    let rotated = stack.log_file.with_extension("jsonl.1");
    std::fs::rename(&stack.log_file, &rotated).unwrap_or_else(|e| panic!("mv: {e}"));
    stack.gateway.process().signal(libc::SIGHUP);
    // The reload is logged once the signal was handled; the reopen happens right after it.
    poll("the SIGHUP to be handled", Duration::from_secs(10), || {
        let out = stack.gateway.output();
        if out.contains("reload") {
            Ok(())
        } else {
            Err(out)
        }
    });
    assert_eq!(stack.call(&session, &[], SUM).status, 200);
    let after = wait_for_line(&stack.log_file, "\"target\":\"get-sum\"");
    assert!(
        !after.contains("\"target\":\"echo\""),
        "the new file repeats old records:\n{after}"
    );
    let old = std::fs::read_to_string(&rotated).unwrap_or_default();
    assert!(
        old.contains("\"target\":\"echo\"") && !old.contains("get-sum"),
        "records after the rotation went to the moved file:\n{old}"
    );
}

#[test]
fn recording_off_records_nothing() {
    let stack = Stack::start_with("observe-off", false, "enabled = false");
    let session = stack.open_session(&[]);
    assert_eq!(stack.call(&session, &[], ECHO).status, 200);
    // A positive control for the admin side: the routes answer, they just have nothing.
    let (status, metrics) = admin_get(stack.admin(), "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("mcpgate_build_info"), "{metrics}");
    // Give a recorder every chance to publish (its flush interval is 100 ms) before checking.
    std::thread::sleep(Duration::from_millis(500));
    let (_, metrics) = admin_get(stack.admin(), "/metrics");
    assert!(
        !metrics.contains("mcpgate_requests_total{"),
        "recording is off, yet: {metrics}"
    );
    let logs = admin_json(stack.admin(), "/api/logs");
    assert_eq!(logs["records"], serde_json::json!([]), "{logs}");
    let file = std::fs::read_to_string(&stack.log_file).unwrap_or_default();
    assert!(file.is_empty(), "{file}");
}
