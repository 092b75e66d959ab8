//! A real Prometheus (Debian `prometheus`) scrapes mcpgate's admin listener every second while the
//! official TypeScript SDK client drives server-everything through the gateway; PromQL over
//! Prometheus' HTTP API must then return the counts the run produced. The admin listener has a
//! token and a separate scrape token (issue 18); Prometheus scrapes with the scrape token
//! (`authorization.credentials_file`), as the observability guide tells operators to.

mod observe_common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use mcpgate_tests::process::ManagedChild;
use mcpgate_tests::{free_port, run_client, Sdk};
use observe_common::{admin_get, poll, require_program, url_encode, Scratch, Stack, API_NAME};

/// A Prometheus started on loopback with a generated config; killed on drop.
struct Prometheus {
    _process: ManagedChild,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(stack: &Stack, scrape_target: SocketAddr, scrape_token: &std::path::Path) -> Self {
        let binary = require_program("prometheus", "prometheus");
        let dir = stack.scratch.path.join("prometheus");
        std::fs::create_dir_all(dir.join("data"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: mcpgate\n    metrics_path: /metrics\n    \
                 authorization:\n      credentials_file: {token}\n    \
                 static_configs:\n      - targets: ['{scrape_target}']\n",
                token = scrape_token.display()
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let mut last = String::new();
        for _attempt in 0..3 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut command = Command::new(&binary);
            command
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--storage.tsdb.retention.time=1h")
                .current_dir(&dir);
            let mut process = ManagedChild::spawn(format!("prometheus {addr}"), command)
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let ready = poll_ready(addr, &mut process);
            match ready {
                Ok(()) => {
                    return Self {
                        _process: process,
                        addr,
                    }
                }
                Err(e) => last = format!("{e}\n{}", process.output()),
            }
        }
        panic!("prometheus did not become ready: {last}");
    }

    /// Runs an instant PromQL query; the single sample's value (`Err` while there is none).
    fn query_scalar(&self, promql: &str) -> Result<f64, String> {
        let (status, body) = admin_get(
            self.addr,
            &format!("/api/v1/query?query={}", url_encode(promql)),
        );
        if status != 200 {
            return Err(format!("HTTP {status}: {body}"));
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        let result = v["data"]["result"]
            .as_array()
            .ok_or_else(|| format!("no result array: {body}"))?;
        match result.as_slice() {
            [one] => one["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| format!("bad sample: {body}")),
            [] => Err(format!("no sample yet for {promql}")),
            _ => Err(format!("several series for {promql}: {body}")),
        }
    }
}

fn poll_ready(addr: SocketAddr, process: &mut ManagedChild) -> Result<(), String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = process.exited() {
            return Err(format!("prometheus exited: {status}"));
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            let (status, _) = admin_get(addr, "/-/ready");
            if status == 200 {
                return Ok(());
            }
        }
        if std::time::Instant::now() > deadline {
            return Err("not ready after 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls a PromQL query until it returns `expected` (the scrape after the run has to land).
fn expect_promql(prom: &Prometheus, promql: &str, expected: f64) {
    poll(
        &format!("`{promql}` == {expected}"),
        Duration::from_secs(45),
        || match prom.query_scalar(promql) {
            Ok(v) if (v - expected).abs() < 1e-9 => Ok(()),
            Ok(v) => Err(format!("{promql} = {v}")),
            Err(e) => Err(e),
        },
    );
}

#[test]
fn promql_returns_the_counts_of_an_sdk_run() {
    let tokens = Scratch::new("prometheus-tokens");
    let (admin_token, scrape_token) = (tokens.path.join("admin"), tokens.path.join("scrape"));
    std::fs::write(&admin_token, "prometheus-e2e-admin-token-01").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&scrape_token, "prometheus-e2e-scrape-token-02\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let stack = Stack::start_all(
        "observe-prometheus",
        false,
        "",
        "",
        &format!(
            "[gateway.admin_auth]\ntoken_file = \"{}\"\nmetrics_token_file = \"{}\"\n",
            admin_token.display(),
            scrape_token.display()
        ),
    );
    // Without the token the metrics are refused; Prometheus below scrapes with the scrape token.
    assert_eq!(admin_get(stack.admin(), "/metrics").0, 401);
    let prom = Prometheus::start(&stack, stack.admin(), &scrape_token);
    // Prometheus must have scraped the gateway at least once before the run, so the counters'
    // first appearance is not mistaken for the whole run (and `up` proves the target is right).
    expect_promql(&prom, "up{job=\"mcpgate\"}", 1.0);

    let url = stack.mcp_url();
    // What the run does, from tests/js/client.mjs: `tools_call` calls echo and get-sum once each;
    // `prompts` lists prompts and gets two; `progress` calls one long-running tool and receives
    // 4 progress notifications on the POST's stream.
    const TOOLS_CALL_RUNS: usize = 3;
    for _ in 0..TOOLS_CALL_RUNS {
        let o = run_client(Sdk::TypeScript, &url, "tools_call");
        assert_eq!(o["sumText"], "The sum of 19 and 23 is 42.", "{o}");
    }
    let prompts = run_client(Sdk::TypeScript, &url, "prompts");
    assert!(prompts["simpleText"].is_string(), "{prompts}");
    let progress = run_client(Sdk::TypeScript, &url, "progress");
    let progress_seen = progress["progress"].as_array().map_or(0, Vec::len);
    assert!(progress_seen > 0, "no progress observed: {progress}");
    let session = stack.open_session(&[]);
    stack.provoke_jsonrpc_error(&session);

    let tool_calls = (TOOLS_CALL_RUNS * 2 + 1) as f64;
    let api = format!("api=\"{API_NAME}\"");
    expect_promql(
        &prom,
        &format!("sum(mcpgate_requests_total{{{api},method=\"tools/call\"}})"),
        tool_calls,
    );
    expect_promql(
        &prom,
        &format!("sum(mcpgate_requests_total{{{api},method=\"tools/call\",target=\"echo\"}})"),
        TOOLS_CALL_RUNS as f64,
    );
    expect_promql(
        &prom,
        &format!("sum(mcpgate_requests_total{{{api},method=\"tools/call\",target=\"get-sum\"}})"),
        TOOLS_CALL_RUNS as f64,
    );
    // Every call got its latency into the histogram.
    expect_promql(
        &prom,
        &format!("sum(mcpgate_request_duration_seconds_count{{{api},method=\"tools/call\"}})"),
        tool_calls,
    );
    // Two prompts read by the SDK plus the one that does not exist.
    expect_promql(
        &prom,
        &format!("sum(mcpgate_requests_total{{{api},method=\"prompts/get\"}})"),
        3.0,
    );
    expect_promql(
        &prom,
        &format!("sum(mcpgate_requests_total{{{api},method=\"prompts/get\",outcome=\"error\"}})"),
        1.0,
    );
    expect_promql(
        &prom,
        &format!("sum(mcpgate_jsonrpc_errors_total{{{api},code=\"-32602\"}})"),
        1.0,
    );
    // Server→client notifications relayed on the stream are exchanges of their own.
    expect_promql(
        &prom,
        &format!("sum(mcpgate_requests_total{{{api},method=\"notifications/progress\"}})"),
        progress_seen as f64,
    );
    // Every SDK session started with initialize: 3 + 1 + 1 runs, plus the hand-made session.
    expect_promql(
        &prom,
        &format!("sum(mcpgate_requests_total{{{api},method=\"initialize\"}})"),
        (TOOLS_CALL_RUNS + 2 + 1) as f64,
    );
    // Nothing is left open once the clients are gone.
    expect_promql(&prom, "mcpgate_sse_streams_open", 0.0);
}
