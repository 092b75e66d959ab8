//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! tests/js/package.json): run its server scenarios against a URL and read back every check it
//! recorded (its `checks.json` files), for tests/tests/conformance.rs; and the server it runs
//! against, [`ConformanceFixture`] (`tests/js/conformance_fixture.mjs`, our own server offering
//! every tool, resource and prompt the scenarios name).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::auth::node22;
use crate::net::{free_port, wait_for_listener, wait_for_ready_line};
use crate::peers::{ensure_js_installed, tests_dir};
use crate::process::{run_to_completion, ManagedChild};

fn js_dir() -> PathBuf {
    tests_dir().join("js")
}

/// A running `tests/js/conformance_fixture.mjs`: our own MCP server (official TypeScript SDK,
/// Streamable HTTP with sessions and resumable streams at `/mcp`) offering what the suite's
/// server scenarios call by name, so that directly nearly every check succeeds and the runs
/// through the gateway compare something.
pub struct ConformanceFixture {
    process: ManagedChild,
    addr: SocketAddr,
}

impl ConformanceFixture {
    /// Starts it on a free loopback port (on Node 22, like the suite) and waits until it accepts
    /// connections and has printed its ready line.
    pub fn start() -> Self {
        ensure_js_installed();
        let script = js_dir().join("conformance_fixture.mjs");
        let mut last_error = String::new();
        // A port picked as free can be taken by a parallel test before node binds it; then the
        // fixture exits (EADDRINUSE) and we try another.
        for _attempt in 0..3 {
            let port = free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut node = Command::new(node22());
            node.arg(&script)
                .env("PORT", port.to_string())
                .current_dir(js_dir());
            let mut process = ManagedChild::spawn(format!("conformance fixture :{port}"), node)
                .unwrap_or_else(|e| panic!("cannot run node for the conformance fixture: {e}"));
            let ready =
                wait_for_listener(addr, &mut process, Duration::from_secs(30)).and_then(|()| {
                    wait_for_ready_line(
                        &mut process,
                        &format!("conformance fixture listening on port {port}"),
                        Duration::from_secs(30),
                    )
                });
            match ready {
                Ok(_) => return Self { process, addr },
                Err(error) => last_error = error,
            }
        }
        panic!("the conformance fixture did not start: {last_error}");
    }

    /// Its MCP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// One check the suite recorded: `status` is the suite's own word (`SUCCESS`, `FAILURE`,
/// `WARNING`, `INFO`, `SKIPPED`).
#[derive(Debug, Clone)]
pub struct Check {
    pub scenario: String,
    pub id: String,
    pub status: String,
    pub error: Option<String>,
    pub details: Value,
}

impl Check {
    /// The key that pairs this check with the same check of another run: a scenario may record
    /// the same id more than once, so the occurrence counts too.
    pub fn key(&self, occurrence: usize) -> CheckKey {
        CheckKey {
            scenario: self.scenario.clone(),
            id: self.id.clone(),
            occurrence,
        }
    }

    /// How good the outcome is, for "no worse than": a failure, a warning (the check ran; the
    /// server did something only recommended against), a record that judges nothing (`INFO`,
    /// `SKIPPED`: an observation, or "could not test"), a success. A success that turns into a
    /// record judging nothing is worse: the check could no longer be made.
    pub fn rank(&self) -> u8 {
        match self.status.as_str() {
            "FAILURE" => 0,
            "WARNING" => 1,
            "SUCCESS" => 3,
            _ => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CheckKey {
    pub scenario: String,
    pub id: String,
    pub occurrence: usize,
}

impl fmt::Display for CheckKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.occurrence == 0 {
            write!(f, "{}/{}", self.scenario, self.id)
        } else {
            write!(f, "{}/{}#{}", self.scenario, self.id, self.occurrence)
        }
    }
}

/// Everything one run of the suite reported.
#[derive(Debug)]
pub struct SuiteRun {
    pub url: String,
    /// Every scenario the suite said it ran, in order.
    pub scenarios: Vec<String>,
    /// Scenarios that ran but left no `checks.json` (the suite's own output says why).
    pub without_results: Vec<String>,
    pub checks: BTreeMap<CheckKey, Check>,
    pub exit_ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl SuiteRun {
    /// The keys of the checks that failed (status `FAILURE`).
    pub fn failures(&self) -> BTreeSet<CheckKey> {
        self.checks
            .iter()
            .filter(|(_, c)| c.rank() == 0)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// One line per check that did not succeed, with the suite's message and details.
    pub fn describe(&self, keys: &BTreeSet<CheckKey>) -> String {
        let mut out = String::new();
        for key in keys {
            match self.checks.get(key) {
                Some(check) => {
                    let details = check.details.to_string();
                    let details: String = details.chars().take(600).collect();
                    out.push_str(&format!(
                        "  {key}: {} — {} — {details}\n",
                        check.status,
                        check.error.as_deref().unwrap_or("(no message)")
                    ));
                }
                None => out.push_str(&format!("  {key}: not recorded\n")),
            }
        }
        out
    }
}

/// Runs every server scenario of the suite (`--suite all`: the active ones and the pending ones)
/// against `url`, each in turn, and parses what it recorded. The scenario names come from the
/// suite's own output ("=== Running scenario: NAME ===" then "Results saved to DIR").
pub fn run_suite(url: &str) -> SuiteRun {
    ensure_js_installed();
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let out_dir = std::env::temp_dir().join(format!(
        "mcpgate-conformance-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&out_dir);
    // The suite needs Node >= 22 (it imports `fs.globSync`).
    let mut node = Command::new(node22());
    node.arg(js_dir().join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
        .args(["server", "--suite", "all", "--url", url, "--output-dir"])
        .arg(&out_dir)
        .current_dir(js_dir());
    // Each scenario has its own timeouts inside the suite; this bounds the whole run.
    let finished = run_to_completion(node, Duration::from_secs(480))
        .unwrap_or_else(|e| panic!("cannot run the conformance suite: {e}"));
    assert!(
        !finished.timed_out,
        "the conformance suite against {url} did not finish within 480 s\n\
         ----- stdout -----\n{}\n----- stderr -----\n{}",
        finished.stdout, finished.stderr
    );

    let mut scenarios = Vec::new();
    let mut result_dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in finished.stdout.lines() {
        let line = line.trim();
        if let Some(name) = line
            .strip_prefix("=== Running scenario: ")
            .and_then(|rest| rest.strip_suffix(" ==="))
        {
            scenarios.push(name.to_owned());
            current = Some(name.to_owned());
        } else if let Some(dir) = line.strip_prefix("Results saved to ") {
            if let Some(name) = current.take() {
                result_dirs.insert(name, PathBuf::from(dir));
            }
        }
    }

    let mut checks = BTreeMap::new();
    let mut without_results = Vec::new();
    for scenario in &scenarios {
        let Some(dir) = result_dirs.get(scenario) else {
            without_results.push(scenario.clone());
            continue;
        };
        let file = dir.join("checks.json");
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let parsed: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", file.display()));
        let Some(list) = parsed.as_array() else {
            panic!("{} is not an array of checks:\n{text}", file.display());
        };
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for entry in list {
            let id = entry["id"]
                .as_str()
                .unwrap_or_else(|| panic!("a check without an id in {}", file.display()))
                .to_owned();
            let status = entry["status"]
                .as_str()
                .unwrap_or_else(|| panic!("check {id} without a status in {}", file.display()))
                .to_owned();
            let check = Check {
                scenario: scenario.clone(),
                id: id.clone(),
                status,
                error: entry["errorMessage"].as_str().map(str::to_owned),
                details: entry.get("details").cloned().unwrap_or(Value::Null),
            };
            let occurrence = seen.entry(id).or_insert(0);
            checks.insert(check.key(*occurrence), check);
            *occurrence += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);

    SuiteRun {
        url: url.to_owned(),
        scenarios,
        without_results,
        checks,
        exit_ok: finished.status.is_some_and(|s| s.success()),
        stdout: finished.stdout,
        stderr: finished.stderr,
    }
}

/// What a run through the gateway lost against the direct run: the checks whose outcome is worse
/// ([`Check::rank`]: a success turned into anything else, a warning into a failure, an
/// observation into a warning or failure), and those the direct run recorded but this one did
/// not.
pub fn regressions(direct: &SuiteRun, through: &SuiteRun) -> BTreeSet<CheckKey> {
    direct
        .checks
        .iter()
        .filter(|(key, check)| {
            through
                .checks
                .get(*key)
                .is_none_or(|other| other.rank() < check.rank())
        })
        .map(|(key, _)| key.clone())
        .collect()
}
