//! The real MCP peers: `@modelcontextprotocol/server-everything` as the upstream, and the two
//! client drivers (official TypeScript and Python SDKs). Installs them from the committed
//! lockfiles when they are missing or stale, so `cargo test --workspace` works on a fresh clone.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::net::{free_port, wait_for_listener, wait_for_ready_line};
use crate::process::{run_to_completion, ManagedChild};

/// `tests/` in the repository.
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root (the workspace).
pub fn repo_root() -> PathBuf {
    tests_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(tests_dir)
}

fn js_dir() -> PathBuf {
    tests_dir().join("js")
}

fn py_dir() -> PathBuf {
    tests_dir().join("py")
}

/// Holds an exclusive flock on `path` while alive, so two test processes never install into the
/// same directory at once.
struct InstallLock {
    _file: File,
}

impl InstallLock {
    fn acquire(path: &Path) -> Result<Self, String> {
        let file = File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
        // SAFETY: flock(2) on a descriptor owned by `file`, which outlives the lock.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(format!(
                "flock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(Self { _file: file })
    }
}

/// True when `marker` holds exactly the bytes of `lockfile`: the install was made from this lock.
fn installed_from(marker: &Path, lockfile: &Path) -> bool {
    match (std::fs::read(marker), std::fs::read(lockfile)) {
        (Ok(done), Ok(wanted)) => done == wanted,
        _ => false,
    }
}

fn run_install_step(what: &str, command: Command) -> Result<(), String> {
    let finished =
        run_to_completion(command, Duration::from_secs(600)).map_err(|e| format!("{what}: {e}"))?;
    match finished.status {
        Some(status) if status.success() && !finished.timed_out => Ok(()),
        status => Err(format!(
            "{what} failed ({status:?}, timed out: {})\nstdout:\n{}\nstderr:\n{}",
            finished.timed_out, finished.stdout, finished.stderr
        )),
    }
}

fn install_js() -> Result<(), String> {
    let dir = js_dir();
    let lockfile = dir.join("package-lock.json");
    let marker = dir.join("node_modules").join(".mcpgate-installed-lock");
    let _lock = InstallLock::acquire(&dir.join(".install.lock"))?;
    if installed_from(&marker, &lockfile) {
        return Ok(());
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir);
    run_install_step("npm ci in tests/js", npm)?;
    std::fs::copy(&lockfile, &marker).map_err(|e| format!("write {}: {e}", marker.display()))?;
    Ok(())
}

fn install_py() -> Result<(), String> {
    let dir = py_dir();
    let lockfile = dir.join("requirements.lock");
    let venv = dir.join(".venv");
    let marker = venv.join(".mcpgate-installed-lock");
    let _lock = InstallLock::acquire(&dir.join(".install.lock"))?;
    if installed_from(&marker, &lockfile) {
        return Ok(());
    }
    if !venv.join("bin").join("python").exists() {
        let python = std::env::var("MCPGATE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let mut create = Command::new(python);
        create.arg("-m").arg("venv").arg(&venv);
        run_install_step("python3 -m venv tests/py/.venv", create)?;
    }
    let mut pip = Command::new(venv.join("bin").join("python"));
    pip.args(["-m", "pip", "install", "--quiet", "--require-hashes", "-r"])
        .arg(&lockfile);
    run_install_step(
        "pip install --require-hashes -r tests/py/requirements.lock",
        pip,
    )?;
    std::fs::copy(&lockfile, &marker).map_err(|e| format!("write {}: {e}", marker.display()))?;
    Ok(())
}

/// Installs the npm packages (server-everything, the TS SDK) once per test process.
pub fn ensure_js_installed() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(error) = DONE.get_or_init(install_js) {
        panic!("cannot install the npm test peers: {error}");
    }
}

/// Installs the Python SDK into tests/py/.venv once per test process.
pub fn ensure_py_installed() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(error) = DONE.get_or_init(install_py) {
        panic!("cannot install the Python test peers: {error}");
    }
}

/// A running `@modelcontextprotocol/server-everything` in streamableHttp mode.
pub struct ServerEverything {
    process: ManagedChild,
    addr: SocketAddr,
}

/// Which transport server-everything serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EverythingTransport {
    /// Streamable HTTP at `/mcp`.
    StreamableHttp,
    /// The legacy HTTP+SSE transport (2024-11-05): `GET /sse`, then POSTs to `/message`.
    Sse,
}

impl ServerEverything {
    /// Starts it (Streamable HTTP) on a free loopback port and waits until the port accepts.
    pub fn start() -> Self {
        Self::start_with(EverythingTransport::StreamableHttp)
    }

    /// Starts it with `transport` on a free loopback port and waits until it is ready.
    pub fn start_with(transport: EverythingTransport) -> Self {
        Self::start_on(transport, None)
            .unwrap_or_else(|error| panic!("server-everything did not start: {error}"))
    }

    /// Stops it and starts it again with `transport` on the same port (a server that went away
    /// and came back, for clients that must reconnect), waiting until it is ready.
    pub fn restart(&mut self, transport: EverythingTransport) {
        let port = self.addr.port();
        // The old process must be gone (port released) before the new one binds it.
        self.kill();
        let old = std::mem::replace(
            self,
            Self::start_on(transport, Some(port)).unwrap_or_else(|error| {
                panic!("server-everything did not restart on port {port}: {error}")
            }),
        );
        drop(old);
    }

    /// Stops the process, keeping the value (its port) for `restart`.
    pub fn kill(&mut self) {
        self.process.signal(libc::SIGKILL);
        let _ = self.process.wait_exit(Duration::from_secs(10));
    }

    /// Starts it on `port` (`None`: a free one, retried when a parallel test took it first).
    fn start_on(transport: EverythingTransport, port: Option<u16>) -> Result<Self, String> {
        ensure_js_installed();
        let entry =
            js_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        let mut last_error = String::new();
        // A port picked as free can be taken by a parallel test before node binds it; then node
        // exits with EADDRINUSE and we try another (or, on a fixed port, the same once more).
        for _attempt in 0..3 {
            let port = port.unwrap_or_else(free_port);
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut node = Command::new("node");
            let (mode, ready_line) = match transport {
                EverythingTransport::StreamableHttp => {
                    ("streamableHttp", format!("listening on port {port}"))
                }
                EverythingTransport::Sse => ("sse", format!("running on port {port}")),
            };
            node.arg(&entry)
                .arg(mode)
                .env("PORT", port.to_string())
                .current_dir(js_dir());
            let mut process = match ManagedChild::spawn(format!("server-everything :{port}"), node)
            {
                Ok(process) => process,
                Err(error) => panic!("cannot run node (is Node.js installed?): {error}"),
            };
            let ready =
                wait_for_listener(addr, &mut process, Duration::from_secs(30)).and_then(|()| {
                    wait_for_ready_line(&mut process, &ready_line, Duration::from_secs(30))
                });
            match ready {
                Ok(_) => return Ok(Self { process, addr }),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its MCP endpoint, for clients that talk to it directly.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The upstream URL a gateway is pointed at.
    pub fn upstream_url(&self) -> String {
        self.mcp_url()
    }

    /// Its legacy SSE stream's URL (started with `EverythingTransport::Sse`).
    pub fn sse_url(&self) -> String {
        format!("http://{}/sse", self.addr)
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// Which official SDK drives the client side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    TypeScript,
    Python,
}

impl Sdk {
    /// A command running `script` (a file of `tests/js` or `tests/py`) with this SDK installed,
    /// from that directory; the caller adds the arguments.
    pub fn script_command(self, script: &str) -> Command {
        match self {
            Sdk::TypeScript => {
                ensure_js_installed();
                let mut node = Command::new("node");
                node.arg(js_dir().join(script)).current_dir(js_dir());
                node
            }
            Sdk::Python => {
                ensure_py_installed();
                let mut python = Command::new(py_dir().join(".venv/bin/python"));
                python
                    .arg(py_dir().join(script))
                    .env("PYTHONUNBUFFERED", "1")
                    .current_dir(py_dir());
                python
            }
        }
    }

    fn command(self, url: &str, scenario: &str) -> Command {
        let driver = match self {
            Sdk::TypeScript => "client.mjs",
            Sdk::Python => "client.py",
        };
        let mut command = self.script_command(driver);
        command.arg(url).arg(scenario);
        command
    }
}

/// Runs one scenario of the `sdk` client driver against `url` and returns its observations.
/// Panics with the driver's output when it fails, hangs, or prints no JSON object.
pub fn run_client(sdk: Sdk, url: &str, scenario: &str) -> Value {
    run_client_with_env(sdk, url, scenario, &[])
}

/// [`run_client`] with extra environment variables for the driver (the TypeScript driver sends
/// `MCPGATE_E2E_AUTHORIZATION` as the `Authorization` header of every request).
pub fn run_client_with_env(sdk: Sdk, url: &str, scenario: &str, env: &[(&str, &str)]) -> Value {
    let mut command = sdk.command(url, scenario);
    command.envs(env.iter().copied());
    let finished = match run_to_completion(command, Duration::from_secs(90)) {
        Ok(finished) => finished,
        Err(error) => panic!("cannot start the {sdk:?} client driver: {error}"),
    };
    let last_line = finished
        .stdout
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with('{'));
    let parsed: Option<Value> = last_line.and_then(|line| serde_json::from_str(line).ok());
    let succeeded = finished.status.is_some_and(|s| s.success()) && !finished.timed_out;
    match parsed {
        Some(observations) if succeeded && observations.get("error").is_none() => observations,
        _ => panic!(
            "{sdk:?} client scenario {scenario:?} against {url} failed (status {:?}, timed out: {})\n\
             ----- stdout -----\n{}\n----- stderr -----\n{}",
            finished.status, finished.timed_out, finished.stdout, finished.stderr
        ),
    }
}
