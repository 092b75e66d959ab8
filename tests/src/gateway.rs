//! The real `mcpgate` binary under test: where to find it (or how to build it), which engine
//! driver to run, and a handle that starts it on free loopback ports and kills it on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::net::{free_port, wait_for_listener, wait_for_ready_line};
use crate::peers::repo_root;
use crate::process::{run_to_completion, ManagedChild};

/// The engine's I/O driver, as `mcpgate run --driver` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Uring,
    Epoll,
}

impl Driver {
    pub fn flag(self) -> &'static str {
        match self {
            Driver::Uring => "uring",
            Driver::Epoll => "epoll",
        }
    }

    /// `Err(reason)` when this machine cannot run the driver (io_uring blocked by the kernel or
    /// a seccomp profile), so the caller can skip with the reason printed.
    pub fn available(self) -> Result<(), String> {
        match self {
            Driver::Epoll => Ok(()),
            Driver::Uring => io_uring_available(),
        }
    }
}

/// Probes io_uring the way a runtime does: set up a tiny ring and close it.
fn io_uring_available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            // struct io_uring_params is 120 bytes; zeroed means "no flags, kernel fills in".
            let mut params = [0u64; 16];
            // SAFETY: io_uring_setup(2) writes at most sizeof(struct io_uring_params) (120) bytes
            // into `params`, which is 128 bytes long and lives across the call.
            let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4_u32, params.as_mut_ptr()) };
            if fd < 0 {
                return Err(format!(
                    "io_uring_setup failed: {} (kernel.io_uring_disabled or seccomp)",
                    std::io::Error::last_os_error()
                ));
            }
            if let Ok(fd) = libc::c_int::try_from(fd) {
                // SAFETY: closing the ring descriptor we just received and own.
                unsafe {
                    libc::close(fd);
                }
            }
            Ok(())
        })
        .clone()
}

/// The directory cargo puts this test binary's profile in (`<target>/<profile>`), derived from
/// the running test executable (`<target>/<profile>/deps/<test>-<hash>`).
fn profile_dir_of_current_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    Some(deps.parent()?.to_path_buf())
}

fn build_mcpgate() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("MCPGATE_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("MCPGATE_BIN={} is not a file", path.display()))
        };
    }
    // Built into the same target directory and profile as the running test binary, so the
    // dependencies `cargo test` just compiled are reused (cargo releases its build lock before
    // running tests).
    let profile_dir = profile_dir_of_current_exe();
    let release = profile_dir
        .as_deref()
        .and_then(Path::file_name)
        .is_some_and(|name| name == "release");
    let target_dir = profile_dir
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "-p", "mcpgate-core", "--bin", "mcpgate"])
        .args(release.then_some("--release"))
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(repo_root());
    let finished = run_to_completion(build, Duration::from_secs(1800))
        .map_err(|e| format!("cargo build: {e}"))?;
    if !finished.status.is_some_and(|s| s.success()) || finished.timed_out {
        return Err(format!(
            "cargo build -p mcpgate-core failed ({:?}, timed out: {})\n{}",
            finished.status, finished.timed_out, finished.stderr
        ));
    }
    let binary = target_dir
        .join(if release { "release" } else { "debug" })
        .join("mcpgate");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "cargo build succeeded but {} is missing",
            binary.display()
        ))
    }
}

/// The `mcpgate` binary: `$MCPGATE_BIN` when set (scripts/test.sh builds it first), otherwise
/// built once per test process.
pub fn mcpgate_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(build_mcpgate) {
        Ok(path) => path.clone(),
        Err(error) => panic!("no mcpgate binary to test: {error}"),
    }
}

/// A scratch directory removed on drop (config files for one gateway).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mcpgate-e2e-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(error) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {error}", dir.display());
        }
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// `--driver`; `None` leaves the binary's default (auto).
    pub driver: Option<Driver>,
    pub workers: usize,
    /// `--upstream` and `--path` (one API from the command line), used when `config` is `None`.
    pub upstream: String,
    pub path: String,
    /// A TOML config; `{listen}` and `{admin}` are replaced by the addresses picked for this run.
    pub config: Option<String>,
    /// More `mcpgate run` arguments, after the others (`--tls-cert FILE`, `--limit …`, `--pin FILE`).
    pub args: Vec<String>,
    /// Environment variables for the gateway (`MCPGATE_CA_FILE`).
    pub env: Vec<(String, String)>,
}

impl GatewaySpec {
    /// One API at `path` in front of `upstream`, from the command line.
    pub fn cli(upstream: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            driver: None,
            workers: 2,
            upstream: upstream.into(),
            path: path.into(),
            config: None,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A config file (with `{listen}` and `{admin}` placeholders).
    pub fn config(toml: impl Into<String>) -> Self {
        Self {
            driver: None,
            workers: 2,
            upstream: String::new(),
            path: String::new(),
            config: Some(toml.into()),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn driver(mut self, driver: Driver) -> Self {
        self.driver = Some(driver);
        self
    }

    /// Sets an environment variable of the gateway's process.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Adds `mcpgate run` arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// The ready line names the driver asked for, so an engine that silently fell back to epoll
/// cannot pass the io_uring tests.
fn confirm_driver(ready_line: &str, driver: Driver) {
    assert!(
        ready_line.contains(driver.flag()),
        "asked for --driver {} but the gateway says: {ready_line}",
        driver.flag()
    );
}

/// A running `mcpgate`.
pub struct Gateway {
    process: ManagedChild,
    addr: SocketAddr,
    admin: SocketAddr,
    config_file: Option<PathBuf>,
    _scratch: ScratchDir,
}

impl Gateway {
    /// Starts the gateway on free loopback ports and waits until it accepts connections.
    pub fn start(spec: &GatewaySpec) -> Self {
        let binary = mcpgate_bin();
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let scratch = ScratchDir::new();
            let mut command = Command::new(&binary);
            command.arg("run");
            let mut config_file = None;
            match &spec.config {
                Some(template) => {
                    let text = template
                        .replace("{listen}", &addr.to_string())
                        .replace("{admin}", &admin.to_string());
                    let file = scratch.0.join("mcpgate.toml");
                    if let Err(error) = std::fs::write(&file, text) {
                        panic!("cannot write {}: {error}", file.display());
                    }
                    command.arg("--config").arg(&file);
                    config_file = Some(file);
                }
                None => {
                    command
                        .args(["--listen", &addr.to_string(), "--admin", &admin.to_string()])
                        .args(["--upstream", &spec.upstream, "--path", &spec.path])
                        .args(["--workers", &spec.workers.to_string()]);
                }
            }
            if let Some(driver) = spec.driver {
                command.args(["--driver", driver.flag()]);
            }
            command.args(&spec.args);
            command.env("RUST_BACKTRACE", "1").current_dir(&scratch.0);
            command.envs(spec.env.iter().map(|(k, v)| (k, v)));
            let name = format!(
                "mcpgate {addr} ({})",
                spec.driver.map_or("default driver", Driver::flag)
            );
            let mut process = match ManagedChild::spawn(name, command) {
                Ok(process) => process,
                Err(error) => panic!("cannot run {}: {error}", binary.display()),
            };
            let ready =
                wait_for_listener(addr, &mut process, Duration::from_secs(30)).and_then(|()| {
                    // The gateway refuses to share a port; if another test's listener held this
                    // one, our process exits and we retry on fresh ports.
                    wait_for_ready_line(
                        &mut process,
                        &format!("listening on {addr} "),
                        Duration::from_secs(30),
                    )
                });
            match ready {
                Ok(ready_line) => {
                    if let Some(driver) = spec.driver {
                        confirm_driver(&ready_line, driver);
                    }
                    return Self {
                        process,
                        addr,
                        admin,
                        config_file,
                        _scratch: scratch,
                    };
                }
                Err(error) => last_error = error,
            }
        }
        panic!("mcpgate did not start: {last_error}");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// `http://<listen><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The config file it was started with (rewrite it, then SIGHUP, to test reloads).
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config_file.clone()
    }

    /// What the gateway printed so far.
    pub fn output(&self) -> String {
        self.process.output()
    }

    pub fn process(&mut self) -> &mut ManagedChild {
        &mut self.process
    }
}
