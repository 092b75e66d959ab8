//! The harness every engine test runs in: a monoio runtime of the chosen driver with a hard
//! deadline per test ([`run_on`]), the gateway under test inside it ([`Setup`] → [`Gateway`]:
//! a configuration from TOML, a [`Worker`], a loopback listener whose connections go to
//! `conn::serve`), and [`eventually`] for waiting on a condition with a deadline.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpListener;

use super::super::conn;
use super::super::worker::Worker;
use super::super::Shared;
use crate::config::{load_str, Overrides};
use crate::observe::{ObserveConfig, ObserveHub, SinkTarget};

/// A test still running after this is a hang: it fails.
pub const TEST_DEADLINE: Duration = Duration::from_secs(10);
/// How long a test waits for one thing it expects (an answer, a condition, a close).
pub const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub enum Driver {
    Epoll,
    IoUring,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Driver::Epoll => "epoll",
            Driver::IoUring => "io_uring",
        })
    }
}

/// Runs `body` on a fresh runtime of `driver` (timers enabled), failing if it is not done within
/// [`TEST_DEADLINE`]. Where io_uring is unavailable the io_uring half is skipped: the reason is
/// printed and appended to `$MCPGATE_E2E_SKIP_LOG` (as the end-to-end suite does), and the test
/// passes, since libtest has no "skipped" outcome.
pub fn run_on<F, Fut>(driver: Driver, test: &str, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let guarded = async move {
        if monoio::time::timeout(TEST_DEADLINE, body()).await.is_err() {
            panic!("{test} on {driver}: still running after {TEST_DEADLINE:?} (a hang)");
        }
    };
    match driver {
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap_or_else(|e| panic!("cannot build an epoll runtime: {e}"))
            .block_on(guarded),
        Driver::IoUring if !monoio::utils::detect_uring() => record_skip(
            test,
            "io_uring is not available on this kernel (or blocked by seccomp)",
        ),
        Driver::IoUring => match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
        {
            Ok(mut runtime) => runtime.block_on(guarded),
            Err(e) => record_skip(test, &format!("cannot build an io_uring runtime: {e}")),
        },
    }
}

/// Reports a half that cannot run here, like `mcpgate_tests::record_skip`.
fn record_skip(test: &str, reason: &str) {
    eprintln!("SKIPPED {test}: {reason}");
    if let Ok(path) = std::env::var("MCPGATE_E2E_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = writeln!(file, "{test}: {reason}");
        }
    }
}

/// Waits until `condition` holds, looking every 2 ms, failing after [`WAIT`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "still waiting for {what} after {WAIT:?}"
        );
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Asserts that something bounded by a `timeout` of the gateway took about that long: not much
/// less (the gateway's clock may start a little before the test's), and well within [`WAIT`].
pub fn assert_took_about(took: Duration, timeout: Duration) {
    assert!(
        took >= timeout / 2 && took < timeout + WAIT / 2,
        "took {took:?}, expected about {timeout:?}"
    );
}

/// The configuration of a gateway under test: one API in front of `upstream`, with the
/// defaults of docs/configuration.md unless a test changes a timeout, a limit or adds an ACL.
pub struct Setup {
    upstream: SocketAddr,
    api_path: &'static str,
    upstream_path: &'static str,
    timeouts: Vec<(&'static str, &'static str)>,
    limits: Vec<(&'static str, u64)>,
    acl: Option<&'static str>,
}

impl Setup {
    /// `path = "/mcp"` → `upstream = "http://{upstream}/up"`.
    pub fn new(upstream: SocketAddr) -> Self {
        Setup {
            upstream,
            api_path: "/mcp",
            upstream_path: "/up",
            timeouts: Vec::new(),
            limits: Vec::new(),
            acl: None,
        }
    }

    /// `[gateway.timeouts] key = "value"`.
    pub fn timeout(mut self, key: &'static str, value: &'static str) -> Self {
        self.timeouts.push((key, value));
        self
    }

    /// `[gateway.limits] key = value`.
    pub fn limit(mut self, key: &'static str, value: u64) -> Self {
        self.limits.push((key, value));
        self
    }

    /// The API's entrypoint and the upstream URL's path.
    pub fn paths(mut self, api_path: &'static str, upstream_path: &'static str) -> Self {
        self.api_path = api_path;
        self.upstream_path = upstream_path;
        self
    }

    /// TOML appended after the `[[api]]` table: `[api.acl]` and its rules.
    pub fn acl(mut self, toml: &'static str) -> Self {
        self.acl = Some(toml);
        self
    }

    fn toml(&self) -> String {
        let mut toml = String::from("[gateway]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n");
        toml.push_str("\n[gateway.timeouts]\n");
        for (key, value) in &self.timeouts {
            toml.push_str(&format!("{key} = \"{value}\"\n"));
        }
        toml.push_str("\n[gateway.limits]\n");
        for (key, value) in &self.limits {
            toml.push_str(&format!("{key} = {value}\n"));
        }
        toml.push_str(&format!(
            "\n[[api]]\nname = \"test\"\npath = \"{}\"\nupstream = \"http://{}{}\"\n",
            self.api_path, self.upstream, self.upstream_path
        ));
        if let Some(acl) = self.acl {
            toml.push('\n');
            toml.push_str(acl);
        }
        toml
    }

    /// Starts the gateway in the current runtime: a [`Worker`] for this configuration and a
    /// loopback listener whose accepted connections are each served by `conn::serve`.
    pub async fn start(self) -> Gateway {
        let toml = self.toml();
        let config = load_str(&toml, "<engine test>", &Overrides::default())
            .unwrap_or_else(|e| panic!("the test configuration does not load: {e}\n{toml}"));
        let hub = ObserveHub::start(ObserveConfig {
            sink: SinkTarget::None,
            ..ObserveConfig::default()
        })
        .unwrap_or_else(|e| panic!("cannot start the observe hub: {e}"));
        let worker = Rc::new(Worker::new(Arc::new(Shared::new(config)), &hub));
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind the gateway's listener: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("gateway listener address: {e}"));
        let serving = worker.clone();
        monoio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                monoio::spawn(conn::serve(serving.clone(), stream, peer));
            }
        });
        Gateway { addr, worker }
    }
}

/// A gateway serving in the test's runtime until the runtime ends.
pub struct Gateway {
    pub addr: SocketAddr,
    worker: Rc<Worker>,
}

impl Gateway {
    /// Client connections the gateway is serving now.
    pub fn open_connections(&self) -> usize {
        self.worker.connections.get()
    }

    /// Starts the graceful stop as SIGTERM does (`engine::run` sets the flag, the accept loop
    /// wakes the tasks waiting for it).
    pub fn drain(&self) {
        self.worker.shared.start_draining();
        self.worker.fire_drain();
    }
}
