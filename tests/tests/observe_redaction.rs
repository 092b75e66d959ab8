//! Redaction end to end: a session whose every request carries `Authorization: Bearer <token>`,
//! through mcpgate with payload capture on, with the token also inside a tool argument the server
//! echoes back. The token must appear in no sink: the JSON-lines file, `/api/logs` (list and each
//! record's detail with its capture), `/api/summary`, `/metrics`. Positive controls make sure the
//! exchanges and their captures were really recorded, so an empty sink cannot pass.

mod observe_common;

use std::time::Duration;

use observe_common::{admin_get, admin_json, poll, unique_token, Stack, API_NAME};

#[test]
fn a_bearer_token_reaches_no_sink() {
    let stack = Stack::start("observe-redaction", true);
    let token = unique_token("mcpgatetesttoken");
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];

    let session = stack.open_session(&auth);
    let echo = stack.call(
        &session,
        &auth,
        &format!(
            r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"my header was Bearer {token}"}}}}}}"#
        ),
    );
    // Control: the server really echoed the token, so the response capture had it to redact.
    assert!(
        echo.body_text().contains(&token),
        "server-everything did not echo the token: {}",
        echo.body_text()
    );

    // Every exchange of the session is in the ring, with its capture.
    let records = poll(
        "the session's records in /api/logs",
        Duration::from_secs(20),
        || {
            let logs = admin_json(
                stack.admin(),
                &format!("/api/logs?api={API_NAME}&limit=1000"),
            );
            let records = logs["records"].as_array().cloned().unwrap_or_default();
            let methods: Vec<&str> = records
                .iter()
                .filter_map(|r| r["method"].as_str())
                .collect();
            if ["initialize", "notifications/initialized", "tools/call"]
                .iter()
                .all(|m| methods.contains(m))
            {
                Ok(records)
            } else {
                Err(format!("{logs}"))
            }
        },
    );
    let mut sinks: Vec<(String, String)> = Vec::new();
    let mut redacted_captures = 0;
    for r in &records {
        assert_eq!(r["captured"], true, "capture is on, yet: {r}");
        let id = r["id"]
            .as_str()
            .unwrap_or_else(|| panic!("record without id: {r}"));
        let (status, detail) = admin_get(stack.admin(), &format!("/api/logs/{id}"));
        assert_eq!(status, 200, "/api/logs/{id}: {detail}");
        if detail.contains("[REDACTED]") {
            redacted_captures += 1;
        }
        sinks.push((format!("/api/logs/{id}"), detail));
    }
    // Control: the Authorization header was captured (as redacted) on every request of the session.
    assert_eq!(
        redacted_captures,
        records.len(),
        "every capture should show the header redacted: {sinks:?}"
    );
    let tools_call = records
        .iter()
        .find(|r| r["method"] == "tools/call")
        .and_then(|r| r["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let detail = admin_json(stack.admin(), &format!("/api/logs/{tools_call}"));
    let response = detail["capture"]["response_body"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        response.contains("my header was"),
        "the echoed answer should be captured (redacted): {detail}"
    );

    // The JSON-lines writer is asynchronous: wait until it has the tools/call line.
    let file = poll("the JSON-lines file", Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&stack.log_file).map_err(|e| e.to_string())?;
        if text.contains("\"tools/call\"") {
            Ok(text)
        } else {
            Err(text)
        }
    });
    sinks.push((stack.log_file.display().to_string(), file));
    let (status, list) = admin_get(
        stack.admin(),
        &format!("/api/logs?api={API_NAME}&limit=1000"),
    );
    assert_eq!(status, 200);
    sinks.push(("/api/logs".into(), list));
    let (status, summary) = admin_get(stack.admin(), "/api/summary");
    assert_eq!(status, 200);
    sinks.push(("/api/summary".into(), summary));
    let (status, metrics) = admin_get(stack.admin(), "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("target=\"echo\""), "{metrics}");
    sinks.push(("/metrics".into(), metrics));

    for (sink, text) in &sinks {
        assert!(
            !text.contains(&token),
            "the bearer token leaked into {sink}:\n{text}"
        );
    }
    // Nor the session id, a bearer-like secret too.
    for (sink, text) in &sinks {
        assert!(
            !text.contains(&session),
            "the session id leaked into {sink}:\n{text}"
        );
    }
}
