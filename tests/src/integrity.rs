//! The tool-integrity peers: `py/pin_server.py` (a FastMCP server of the official Python SDK whose
//! tool and prompt definitions change on command, counting the list requests it answers), and
//! the gateway's admin views the tests read (metrics, the summary's `integrity` member).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{build_request, exchange};
use crate::net::spawn_listening;
use crate::peers::Sdk;
use crate::process::{run_to_completion, ManagedChild};

/// A running `pin_server.py`.
pub struct PinServer {
    process: ManagedChild,
    addr: SocketAddr,
}

impl PinServer {
    /// Starts it with `env` (`PIN_VARIANT`, `JSON_RESPONSE`, `CACHE_SCOPE`, `TTL_MS`,
    /// `LIST_DELAY_MS`, `PAGE_SIZE`: see the script) on a free loopback port.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let (process, addr) = spawn_listening("pin-server", |port| {
            let mut command = Sdk::Python.script_command("pin_server.py");
            command.env("PORT", port.to_string());
            command.envs(env.iter().copied());
            command
        });
        PinServer { process, addr }
    }

    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn output(&self) -> String {
        self.process.output()
    }

    fn call(&self, method: &str, path: &str) -> Value {
        let request = build_request(method, path, &self.addr.to_string(), &[], b"");
        exchange(self.addr, &request, Duration::from_secs(10))
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("pin-server {path}: {e}\n{}", self.output()))
    }

    /// How many requests of `method` (`tools/list`…) it answered.
    pub fn list_calls(&self, method: &str) -> u64 {
        self.call("GET", "/stats")
            .get(method)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no {method} in /stats"))
    }

    /// Switches its definitions to `variant` without notifying anyone ("between sessions").
    pub fn set_variant(&self, variant: &str) {
        let v = self.call("POST", &format!("/variant?name={variant}"));
        assert_eq!(v["variant"], variant);
    }
}

/// `GET path` on the gateway's admin listener, as text.
pub fn admin_get(admin: SocketAddr, path: &str) -> String {
    let request = build_request("GET", path, &admin.to_string(), &[], b"");
    exchange(admin, &request, Duration::from_secs(10))
        .map(|r| r.body_text())
        .unwrap_or_else(|e| panic!("admin {path}: {e}"))
}

/// The value of one Prometheus sample (`name{labels}` exactly as exposed), 0 when absent.
pub fn metric(metrics: &str, sample: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Runs `mcpgate pin --upstream URL --out FILE`; returns its stderr line.
pub fn pin(upstream: &str, out: &Path) -> String {
    let mut command = std::process::Command::new(crate::mcpgate_bin());
    command
        .args(["pin", "--upstream", upstream, "--out"])
        .arg(out);
    let finished = run_to_completion(command, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("mcpgate pin: {e}"));
    assert!(
        finished.status.is_some_and(|s| s.success()) && !finished.timed_out,
        "mcpgate pin failed ({:?}):\n{}\n{}",
        finished.status,
        finished.stdout,
        finished.stderr
    );
    finished.stderr
}

/// Waits until `condition` holds, up to `timeout`; `false` if it never did.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scratch directory for lockfiles, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mcpgate-integrity-{name}-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self, file: &str) -> std::path::PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
