//! Stdio upstreams of virtual APIs: one child process per configured stdio upstream, shared by
//! every client session of its API and multiplexed (the gateway initializes it once and remaps
//! every JSON-RPC id onto its own counter). Why shared rather than one per client session: a
//! session id the gateway hands out must be servable by any worker and any replica without
//! per-session memory (docs/architecture.md), and a per-session child is exactly such memory;
//! shared processes also bound the process count by configuration (`MAX_STDIO_PROCESSES`) rather
//! than by client behaviour. The cost, documented: server-side session state (log level,
//! subscriptions) is common to the API's clients.
//!
//! Each process has a supervisor thread (spawn, `initialize`, read stdout lines, restart with
//! backoff when it exits), a stdin writer thread (workers queue lines, never block on a full
//! pipe) and a stderr thread (each line into the gateway's log with the
//! upstream's name). The child's environment is explicit: cleared, then `PATH` and `HOME`, then
//! the configured `env` — the gateway's own variables and secrets never reach it. It dies with
//! the gateway (`PR_SET_PDEATHSIG`), on shutdown (`stop_all`) and when a reload removes it
//! (`reconcile`). Workers wait for answers through a one-shot slot woken across threads (monoio's
//! `sync` feature, like `crate::dns`).

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::virtual_server::{StdioCommand, Transport};
use crate::config::Config;

/// The version the gateway asks a stdio server for (the newest the SDKs commonly speak).
pub const STDIO_PROTOCOL_VERSION: &str = "2025-06-18";
/// How long a (re)started server has to answer `initialize`.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A process that ran this long before exiting restarts without backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// What a stdio call can end with (besides a result).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StdioError {
    #[error("the process is not running (starting or restarting)")]
    NotRunning,
    #[error("the process exited before answering")]
    Exited,
    #[error("writing to the process failed: {0}")]
    Write(String),
}

/// The answer to one request: the JSON-RPC message (`result` or `error`).
type Reply = Result<Value, StdioError>;

/// A one-shot slot a supervisor thread fills and a worker's task awaits.
#[derive(Default)]
struct Slot {
    /// The answer, the waiting task, and the notifications about the request that came first
    /// (progress, with the client's token restored).
    state: Mutex<(Option<Reply>, Option<Waker>, Vec<Value>)>,
}

impl Slot {
    fn fill(&self, reply: Reply) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let notes = std::mem::take(&mut s.2);
            s.0 = Some(reply.map(|mut answer| {
                if !notes.is_empty() {
                    answer[super::NOTES] = Value::Array(notes);
                }
                answer
            }));
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

struct Wait(Arc<Slot>);

impl Future for Wait {
    type Output = Reply;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        let mut s = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reply) = s.0.take() {
            return Poll::Ready(reply);
        }
        s.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// What the running process answered to the gateway's `initialize`.
#[derive(Debug, Clone)]
pub struct InitInfo {
    pub result: Value,
}

#[derive(Default)]
struct Inner {
    /// Lines for the process's stdin, written by its writer thread (a worker never blocks on a
    /// full pipe); dropping it closes stdin.
    stdin: Option<mpsc::Sender<Vec<u8>>>,
    child: Option<Child>,
    pending: HashMap<u64, Arc<Slot>>,
    /// The gateway's progress token → (the request's id, the client's token): clients of a shared
    /// process may all use token 1.
    tokens: HashMap<String, (u64, Value)>,
    next_id: u64,
    init: Option<InitInfo>,
    restarts: u64,
}

/// One supervised stdio server.
pub struct Process {
    /// `api/upstream`, for logs.
    label: String,
    spec: StdioCommand,
    max_line: usize,
    inner: Mutex<Inner>,
    ready: Condvar,
    stop: AtomicBool,
}

impl Process {
    /// Sends `method` and waits for its answer (the whole JSON-RPC message; progress received
    /// before it under `super::NOTES`).
    pub async fn request(&self, method: &str, mut params: Value) -> Reply {
        let slot = Arc::new(Slot::default());
        let id = {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if inner.init.is_none() {
                return Err(StdioError::NotRunning);
            }
            inner.next_id += 1;
            let id = inner.next_id;
            if let Some(token) = params
                .pointer_mut("/_meta/progressToken")
                .map(|t| std::mem::replace(t, Value::String(format!("mcpgate-{id}"))))
            {
                inner.tokens.insert(format!("mcpgate-{id}"), (id, token));
            }
            let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            inner.pending.insert(id, Arc::clone(&slot));
            if let Err(e) = write_line(&mut inner, &line) {
                inner.pending.remove(&id);
                return Err(e);
            }
            id
        };
        let _forget = Forget { process: self, id };
        Wait(slot).await
    }

    /// A notification to the process (no answer).
    pub fn notify(&self, method: &str, params: Value) -> Result<(), StdioError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        write_line(
            &mut inner,
            &json!({"jsonrpc": "2.0", "method": method, "params": params}),
        )
    }

    /// What the running process answered to `initialize` (`None`: not running).
    pub fn init(&self) -> Option<InitInfo> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .init
            .clone()
    }

    /// Waits (blocking; tests and startup only) until the process is initialized.
    pub fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        while inner.init.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            inner = self
                .ready
                .wait_timeout(inner, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    pub fn restarts(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .restarts
    }

    fn kill(&self) {
        self.stop.store(true, Ordering::Release);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.stdin = None;
        if let Some(child) = inner.child.as_mut() {
            let _ = child.kill();
        }
    }
}

/// Drops a waiter's entry when its task gives up (timeout, client gone).
struct Forget<'a> {
    process: &'a Process,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut inner = self
            .process
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        inner.pending.remove(&self.id);
        inner.tokens.remove(&format!("mcpgate-{}", self.id));
    }
}

fn write_line(inner: &mut Inner, message: &Value) -> Result<(), StdioError> {
    let Some(stdin) = inner.stdin.as_mut() else {
        return Err(StdioError::NotRunning);
    };
    let mut line = serde_json::to_vec(message).map_err(|e| StdioError::Write(e.to_string()))?;
    line.push(b'\n');
    stdin
        .send(line)
        .map_err(|_| StdioError::Write("its stdin is closed".into()))
}

/// The processes of the running configuration, keyed by API name, upstream name and command.
type Key = (String, String, StdioCommand);

fn registry() -> &'static Mutex<HashMap<Key, Arc<Process>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Key, Arc<Process>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The process serving `api`'s stdio upstream `upstream`, if the configuration has it.
pub fn process(api: &str, upstream: &str, spec: &StdioCommand) -> Option<Arc<Process>> {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(api.to_owned(), upstream.to_owned(), spec.clone()))
        .cloned()
}

/// Starts the stdio upstreams `config` has and the registry lacks, and kills those it no longer
/// has (a reload that removed or changed them). Unchanged ones keep running.
pub fn reconcile(config: &Config) {
    let mut wanted: HashMap<Key, usize> = HashMap::new();
    for api in &config.apis {
        let Some(server) = api.virtual_server.as_deref() else {
            continue;
        };
        for u in &server.upstreams {
            if let Transport::Stdio(spec) = &u.transport {
                wanted.insert(
                    (api.name.clone(), u.name.clone(), spec.clone()),
                    server.max_line_bytes,
                );
            }
        }
    }
    let mut reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
    reg.retain(|key, process| {
        let keep = wanted.contains_key(key);
        if !keep {
            crate::info!(
                "stdio upstream {}: removed by a reload, stopping it",
                process.label
            );
            process.kill();
        }
        keep
    });
    for (key, max_line) in wanted {
        if reg.contains_key(&key) {
            continue;
        }
        let process = Arc::new(Process {
            label: format!("{}/{}", key.0, key.1),
            spec: key.2.clone(),
            max_line,
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let supervised = Arc::clone(&process);
        let spawned = std::thread::Builder::new()
            .name(format!("stdio-{}", key.1))
            .spawn(move || supervise(&supervised));
        if let Err(e) = spawned {
            crate::error!(
                "stdio upstream {}: cannot start its thread: {e}",
                process.label
            );
            continue;
        }
        reg.insert(key, process);
    }
}

/// Kills every stdio upstream (gateway shutdown).
pub fn stop_all() {
    let mut reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
    for (_, process) in reg.drain() {
        process.kill();
    }
}

fn command(spec: &StdioCommand) -> Command {
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Only what a program needs to be found and to find its files; everything else is the
    // operator's explicit `env`.
    for name in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    // SAFETY: prctl(2) is async-signal-safe; it runs in the child between fork and exec. The
    // child is killed when the thread that spawned it (its supervisor) ends, so it never outlives
    // the gateway, even one killed with SIGKILL.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// The supervisor: run, initialize, read, restart with backoff, until stopped.
fn supervise(p: &Process) {
    let mut backoff = BACKOFF_MIN;
    while !p.stop.load(Ordering::Acquire) {
        let started = Instant::now();
        match run_once(p) {
            Ok(()) => crate::warn!("stdio upstream {}: the process exited", p.label),
            Err(e) => crate::warn!("stdio upstream {}: {e}", p.label),
        }
        {
            let mut inner = p.inner.lock().unwrap_or_else(PoisonError::into_inner);
            inner.init = None;
            inner.stdin = None;
            if let Some(mut child) = inner.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            for (_, slot) in inner.pending.drain() {
                slot.fill(Err(StdioError::Exited));
            }
            inner.restarts += 1;
        }
        if p.stop.load(Ordering::Acquire) {
            break;
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = BACKOFF_MIN;
        }
        // Sleep in small steps so a stop is seen promptly.
        let until = Instant::now() + backoff;
        while Instant::now() < until && !p.stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One life of the process. `Ok`: it exited (or closed stdout).
fn run_once(p: &Process) -> Result<(), String> {
    let mut child = command(&p.spec)
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", p.spec.command))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    if let Some(stderr) = child.stderr.take() {
        let label = p.label.clone();
        let _ = std::thread::Builder::new()
            .name("stdio-stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    match line {
                        Ok(line) => crate::info!("stdio upstream {label} stderr: {line}"),
                        Err(_) => break,
                    }
                }
            });
    }
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let (lines, to_write) = mpsc::channel::<Vec<u8>>();
    std::thread::Builder::new()
        .name("stdio-stdin".into())
        .spawn(move || {
            for line in to_write {
                if stdin.write_all(&line).and_then(|()| stdin.flush()).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start its stdin writer: {e}"))?;
    {
        let mut inner = p.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.stdin = Some(lines);
        inner.child = Some(child);
        if p.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": STDIO_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")},
        }});
        write_line(&mut inner, &init).map_err(|e| e.to_string())?;
    }
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let init_deadline = Instant::now() + INIT_TIMEOUT;
    loop {
        line.clear();
        let n = (&mut reader)
            .take(p.max_line as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading stdout: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && line.len() > p.max_line {
            // Framing is lost past an oversized line: restart rather than misread the rest.
            return Err(format!(
                "a line of more than {} bytes (max_line_bytes); restarting it",
                p.max_line
            ));
        }
        let Ok(message) = serde_json::from_slice::<Value>(&line) else {
            crate::debug!("stdio upstream {}: a line that is not JSON", p.label);
            continue;
        };
        dispatch(p, message, init_deadline)?;
    }
}

fn dispatch(p: &Process, message: Value, init_deadline: Instant) -> Result<(), String> {
    let id = message.get("id").cloned();
    let is_answer = message.get("result").is_some() || message.get("error").is_some();
    let mut inner = p.inner.lock().unwrap_or_else(PoisonError::into_inner);
    match (id, is_answer) {
        (Some(Value::Number(n)), true) if n.as_u64() == Some(0) && inner.init.is_none() => {
            let Some(result) = message.get("result").cloned() else {
                return Err(format!("initialize refused: {}", message["error"]));
            };
            write_line(
                &mut inner,
                &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .map_err(|e| e.to_string())?;
            crate::info!("stdio upstream {}: initialized", p.label);
            inner.init = Some(InitInfo { result });
            p.ready.notify_all();
        }
        (Some(id), true) => {
            if let Some(slot) = id.as_u64().and_then(|id| inner.pending.remove(&id)) {
                slot.fill(Ok(message));
            }
        }
        (Some(id), false) => {
            // A server→client request (roots, sampling, elicitation): a shared process has no
            // one client to ask, so it is refused rather than left waiting.
            let refusal = json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601, "message": "not available through the gateway's virtual server"}});
            write_line(&mut inner, &refusal).map_err(|e| e.to_string())?;
        }
        (None, _) if message["method"] == "notifications/progress" => {
            // Progress about one request: kept with it, under the client's own token.
            let token = message["params"]["progressToken"]
                .as_str()
                .unwrap_or_default();
            if let Some((id, original)) = inner.tokens.get(token).cloned() {
                if let Some(slot) = inner.pending.get(&id) {
                    let mut note = message;
                    note["params"]["progressToken"] = original;
                    slot.state
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .2
                        .push(note);
                }
            }
        }
        (None, _) => {
            // Other notifications (logging, list_changed) are not relayed yet.
        }
    }
    if inner.init.is_none() && Instant::now() > init_deadline {
        return Err("no answer to initialize".into());
    }
    Ok(())
}
