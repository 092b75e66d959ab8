//! The machinery every *shared* upstream link of a virtual API has in common — stdio processes
//! (`super::stdio`) and legacy HTTP+SSE connections (`super::sse`): one connection per
//! (API, upstream), initialized once by the gateway and multiplexed for every client session of
//! the API. Owns the pending-answer slots a worker's task awaits (`Wait`, dropped by `Forget` when
//! the task gives up), the gateway-owned JSON-RPC ids and progress tokens (remapped both ways),
//! `dispatch` of what the upstream sends (answers, progress, server→client requests, other
//! notifications), the supervisor thread (run one connection, restart with backoff, fail the
//! pending requests on disconnect), and the registry of the running configuration's links
//! (`reconcile` on load and reload, `stop_all` on shutdown).
//!
//! Why shared rather than one per client session: a session id the gateway hands out must be
//! servable by any worker and any replica without per-session memory (docs/architecture.md); a
//! per-session child process or per-session SSE stream (a legacy session lives exactly as long as
//! its GET stream) would be such memory. The transports differ only in how they connect, write one
//! message and read messages: that is `Connector::run_once`. Workers never block: they queue
//! serialized messages to a writer thread and wait for answers through a one-shot slot woken
//! across threads (monoio's `sync` feature, like `crate::dns`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::virtual_server::Transport;
use crate::config::Config;

/// The version the gateway asks a shared upstream for (the newest the SDKs commonly speak).
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// How long a (re)started upstream has to answer `initialize`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that lasted this long before ending is started again without backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// What a call over a shared link can end with (besides a result).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    #[error("the upstream is not connected (starting, restarting or reconnecting)")]
    NotRunning,
    #[error("the upstream's connection ended before it answered")]
    Ended,
    #[error("writing to the upstream failed: {0}")]
    Write(String),
}

/// The answer to one request: the JSON-RPC message (`result` or `error`).
pub type Reply = Result<Value, LinkError>;

/// A one-shot slot a supervisor thread fills and a worker's task awaits.
#[derive(Default)]
struct Slot {
    /// The answer, the waiting task, and the notifications about the request that came first
    /// (progress, with the client's token restored; a server→client request when the slot
    /// `relays`).
    state: Mutex<(Option<Reply>, Option<Waker>, Vec<Value>)>,
    /// A [`Call`]: its client is on an event stream and can answer server→client requests, and
    /// takes notes as they come rather than with the answer.
    relays: bool,
}

impl Slot {
    fn fill(&self, reply: Reply) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if !self.relays {
                let notes = std::mem::take(&mut s.2);
                s.0 = Some(reply.map(|mut answer| {
                    if !notes.is_empty() {
                        answer[super::NOTES] = Value::Array(notes);
                    }
                    answer
                }));
            } else {
                s.0 = Some(reply);
            }
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// A note about the request (woken at once when the slot relays).
    fn note(&self, note: Value) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.2.push(note);
            if self.relays {
                s.1.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What a [`Call`] yields: notes as they come, then the answer.
pub enum CallEvent {
    Note(Value),
    Answer(Reply),
}

/// A request in flight on a link whose client is on an event stream (see [`Link::call`]).
/// Dropped before its answer, the link forgets it.
pub struct Call {
    link: Arc<Link>,
    id: u64,
    slot: Arc<Slot>,
    done: bool,
    origin: String,
}

impl Call {
    /// The next note, or the answer (then the call is over).
    pub async fn next(&mut self) -> CallEvent {
        if self.done {
            return CallEvent::Answer(Err(LinkError::Ended));
        }
        let event = std::future::poll_fn(|cx| {
            let mut s = self
                .slot
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !s.2.is_empty() {
                return Poll::Ready(CallEvent::Note(s.2.remove(0)));
            }
            if let Some(reply) = s.0.take() {
                return Poll::Ready(CallEvent::Answer(reply));
            }
            s.1 = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        if matches!(event, CallEvent::Answer(_)) {
            self.done = true;
        }
        event
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let mut inner = self.link.lock();
        let in_flight = inner.pending.remove(&self.id).is_some();
        inner.tokens.remove(&format!("mcpgate-{}", self.id));
        if inner.origins.get(&self.origin) == Some(&self.id) {
            inner.origins.remove(&self.origin);
        }
        if in_flight && !self.done {
            // The client left (or gave up) before the answer: the upstream may stop working.
            let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": self.id, "reason": "the client went away"}});
            let _ = write(&mut inner, &note);
        }
    }
}

/// A client's GET stream listening to a link: the notifications every client of the API gets
/// (`list_changed`, `resources/updated`, logging) and the gateway's own `list_changed` when the
/// link goes down or comes back. Bounded: the oldest are dropped past [`LISTENER_QUEUE`].
#[derive(Default)]
pub struct Listener {
    state: Mutex<(std::collections::VecDeque<Value>, Option<Waker>)>,
}

const LISTENER_QUEUE: usize = 256;

impl Listener {
    /// The next notification (waits as long as it takes).
    pub async fn next(&self) -> Value {
        std::future::poll_fn(|cx| {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = s.0.pop_front() {
                return Poll::Ready(v);
            }
            s.1 = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    fn push(&self, message: Value) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if s.0.len() >= LISTENER_QUEUE {
                s.0.pop_front();
            }
            s.0.push_back(message);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The notifications a client is sent when a link's names leave or rejoin the merged lists.
pub const LIST_CHANGED: [&str; 3] = [
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
];

/// Notifications of a shared upstream every listening client gets.
fn broadcast_to_clients(method: &str) -> bool {
    LIST_CHANGED.contains(&method)
        || matches!(
            method,
            "notifications/resources/updated" | "notifications/message"
        )
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

/// What the connected upstream answered to the gateway's `initialize`.
#[derive(Debug, Clone)]
pub struct InitInfo {
    pub result: Value,
}

/// What a connection holds that another thread must be able to end (a child process, a socket):
/// `hang_up` makes the supervisor's blocking read return; `reap` releases it for good.
pub trait Hangup: Send {
    fn hang_up(&mut self);
    fn reap(&mut self) {
        self.hang_up();
    }
}

/// How one transport connects, writes and reads.
pub trait Connector: Send + Sync {
    /// `stdio` / `sse`: log lines and thread names.
    fn kind(&self) -> &'static str;
    /// One life of the connection: connect, `Link::attach` its writer (which sends
    /// `initialize`), then pass each message read to `Link::dispatch` until the connection ends.
    /// `Ok`: it ended by itself (the process exited, the stream closed).
    fn run_once(&self, link: &Link) -> Result<(), String>;
}

#[derive(Default)]
struct Inner {
    /// Serialized messages for the connection's writer thread (a worker never blocks on a full
    /// pipe or a slow POST); dropping it ends the writer.
    out: Option<mpsc::Sender<Vec<u8>>>,
    conn: Option<Box<dyn Hangup>>,
    pending: HashMap<u64, Arc<Slot>>,
    /// The gateway's progress token → (the request's id, the client's token): clients of a shared
    /// link may all use token 1.
    tokens: HashMap<String, (u64, Value)>,
    next_id: u64,
    /// A streamed call's client request (`<client session>/<client id>`) → its id here, for
    /// the client's `notifications/cancelled`.
    origins: HashMap<String, u64>,
    init: Option<InitInfo>,
    restarts: u64,
}

/// One supervised shared upstream connection.
pub struct Link {
    /// `api/upstream`, for logs.
    pub label: String,
    /// The largest message (stdio line, SSE event) read; past it the connection is restarted.
    pub max_line: usize,
    connector: Box<dyn Connector>,
    inner: Mutex<Inner>,
    /// Clients' GET streams (dropped ones are pruned as messages go out). Locked after
    /// `inner` when both are.
    listeners: Mutex<Vec<std::sync::Weak<Listener>>>,
    ready: Condvar,
    stop: AtomicBool,
}

impl Link {
    /// Sends `method` and waits for its answer (the whole JSON-RPC message; progress received
    /// before it under `super::NOTES`).
    pub async fn request(&self, method: &str, params: Value) -> Reply {
        let slot = Arc::new(Slot::default());
        let id = self.send_request(method, params, &slot)?;
        let _forget = Forget { link: self, id };
        Wait(slot).await
    }

    /// Sends `method` for a client on an event stream: progress reaches it as it comes, and a
    /// server→client request the upstream sends while this is its only request in flight is
    /// taken to be about it (a shared link carries no other way to tell) and relayed to it.
    /// `origin` names the client's request (`<client session>/<client id>`) for [`Link::cancel`].
    pub fn call(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        origin: String,
    ) -> Result<Call, LinkError> {
        let slot = Arc::new(Slot {
            relays: true,
            ..Slot::default()
        });
        let id = self.send_request(method, params, &slot)?;
        self.lock().origins.insert(origin.clone(), id);
        Ok(Call {
            link: Arc::clone(self),
            id,
            slot,
            done: false,
            origin,
        })
    }

    /// The client cancelled its request `origin` (see [`Link::call`]): the upstream is told, under
    /// the link's id. `false`: no such call in flight here.
    pub fn cancel(&self, origin: &str, reason: Option<&Value>) -> bool {
        let mut inner = self.lock();
        let Some(id) = inner.origins.remove(origin) else {
            return false;
        };
        let mut params = json!({"requestId": id});
        if let Some(reason) = reason {
            params["reason"] = reason.clone();
        }
        let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params});
        write(&mut inner, &note).is_ok()
    }

    fn send_request(
        &self,
        method: &str,
        mut params: Value,
        slot: &Arc<Slot>,
    ) -> Result<u64, LinkError> {
        let mut inner = self.lock();
        if inner.init.is_none() {
            return Err(LinkError::NotRunning);
        }
        inner.next_id += 1;
        let id = inner.next_id;
        if let Some(token) = params
            .pointer_mut("/_meta/progressToken")
            .map(|t| std::mem::replace(t, Value::String(format!("mcpgate-{id}"))))
        {
            inner.tokens.insert(format!("mcpgate-{id}"), (id, token));
        }
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        inner.pending.insert(id, Arc::clone(slot));
        if let Err(e) = write(&mut inner, &message) {
            inner.pending.remove(&id);
            inner.tokens.remove(&format!("mcpgate-{id}"));
            return Err(e);
        }
        Ok(id)
    }

    /// A client's answer to a server→client request this link relayed (the upstream's own id).
    pub fn respond(&self, answer: &Value) -> Result<(), LinkError> {
        write(&mut self.lock(), answer)
    }

    /// A new listener for a client's GET stream.
    pub fn listen(&self) -> Arc<Listener> {
        let listener = Arc::new(Listener::default());
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        listeners.retain(|l| l.strong_count() > 0);
        listeners.push(Arc::downgrade(&listener));
        listener
    }

    /// Sends `message` to every listening client.
    fn broadcast(&self, message: &Value) {
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        listeners.retain(|l| match l.upgrade() {
            Some(listener) => {
                listener.push(message.clone());
                true
            }
            None => false,
        });
    }

    /// Tells the listening clients the merged lists changed (the link went down or came back).
    fn broadcast_list_changed(&self) {
        for method in LIST_CHANGED {
            self.broadcast(&json!({"jsonrpc": "2.0", "method": method}));
        }
    }

    /// A notification to the upstream (no answer).
    pub fn notify(&self, method: &str, params: Value) -> Result<(), LinkError> {
        write(
            &mut self.lock(),
            &json!({"jsonrpc": "2.0", "method": method, "params": params}),
        )
    }

    /// What the upstream answered to `initialize` (`None`: not connected).
    pub fn init(&self) -> Option<InitInfo> {
        self.lock().init.clone()
    }

    /// Waits (blocking; tests and startup only) until the upstream is initialized.
    pub fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut inner = self.lock();
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

    /// Times the connection ended and was started again.
    pub fn restarts(&self) -> u64 {
        self.lock().restarts
    }

    /// `stdio` / `sse`.
    pub fn kind(&self) -> &'static str {
        self.connector.kind()
    }

    /// Whether the link was stopped (a connector checks it before blocking).
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Installs a new connection's writer and hang-up handle and sends the gateway's own
    /// `initialize` (its answer, id 0, is handled by `dispatch`). `Ok(false)`: the link was
    /// stopped meanwhile, the connector should return.
    pub fn attach(
        &self,
        out: mpsc::Sender<Vec<u8>>,
        conn: Box<dyn Hangup>,
    ) -> Result<bool, String> {
        let mut inner = self.lock();
        inner.out = Some(out);
        inner.conn = Some(conn);
        if self.stopped() {
            return Ok(false);
        }
        // Sampling and elicitation: relayed to the client of the only call in flight (see
        // `upstream_message`), refused otherwise. Not roots: they belong to one client, and a
        // shared link serves them all.
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"sampling": {}, "elicitation": {}},
            "clientInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")},
        }});
        write(&mut inner, &init).map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Ends the current connection from another thread (its writer could not deliver): the
    /// supervisor's read returns and it reconnects.
    pub fn hang_up(&self) {
        if let Some(conn) = self.lock().conn.as_mut() {
            conn.hang_up();
        }
    }

    fn kill(&self) {
        self.stop.store(true, Ordering::Release);
        let mut inner = self.lock();
        inner.out = None;
        if let Some(conn) = inner.conn.as_mut() {
            conn.hang_up();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One message the upstream sent. `Err`: the connection must end (initialize refused or
    /// unanswered, the refusal of a server request could not be written).
    pub fn dispatch(&self, message: Value, init_deadline: Instant) -> Result<(), String> {
        let id = message.get("id").cloned();
        let is_answer = message.get("result").is_some() || message.get("error").is_some();
        let mut inner = self.lock();
        match (id, is_answer) {
            (Some(Value::Number(n)), true) if n.as_u64() == Some(0) && inner.init.is_none() => {
                let Some(result) = message.get("result").cloned() else {
                    return Err(format!("initialize refused: {}", message["error"]));
                };
                write(
                    &mut inner,
                    &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                )
                .map_err(|e| e.to_string())?;
                crate::info!("{} upstream {}: initialized", self.kind(), self.label);
                inner.init = Some(InitInfo { result });
                self.ready.notify_all();
                if inner.restarts > 0 {
                    // Back after a restart: its names return to the clients' lists.
                    self.broadcast_list_changed();
                }
            }
            (Some(id), true) => {
                if let Some(slot) = id.as_u64().and_then(|id| inner.pending.remove(&id)) {
                    slot.fill(Ok(message));
                }
            }
            (Some(_), false) | (None, _) => {
                if let Some(reply) = self.upstream_message(&mut inner, message) {
                    write(&mut inner, &reply).map_err(|e| e.to_string())?;
                }
            }
        }
        if inner.init.is_none() && Instant::now() > init_deadline {
            return Err("no answer to initialize".into());
        }
        Ok(())
    }
}

impl Link {
    /// What the gateway does with a server→client request or a notification from the upstream;
    /// `Some`: the message to send back. The one place that decides it:
    /// - a request goes to the client of the only request in flight when that client is on an
    ///   event stream ([`Link::call`]); otherwise it is refused (a shared link has no one client
    ///   to ask);
    /// - progress goes with its request, under the client's own token;
    /// - `list_changed`, `resources/updated` and logging go to every listening client;
    /// - anything else stops here.
    fn upstream_message(&self, inner: &mut Inner, message: Value) -> Option<Value> {
        if let Some(id) = message.get("id") {
            let mut pending = inner.pending.values();
            if let (Some(only), None) = (pending.next(), pending.next()) {
                if only.relays {
                    only.note(message);
                    return None;
                }
            }
            return Some(json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601,
                "message": "no client of the gateway's virtual server can answer this now"}}));
        }
        let method = message["method"].as_str().unwrap_or_default();
        if method == "notifications/progress" {
            let token = message["params"]["progressToken"]
                .as_str()
                .unwrap_or_default();
            if let Some((id, original)) = inner.tokens.get(token).cloned() {
                if let Some(slot) = inner.pending.get(&id) {
                    let mut note = message;
                    note["params"]["progressToken"] = original;
                    slot.note(note);
                }
            }
        } else if broadcast_to_clients(method) {
            self.broadcast(&message);
        }
        None
    }
}

/// Drops a waiter's entry when its task gives up (timeout, client gone).
struct Forget<'a> {
    link: &'a Link,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut inner = self.link.lock();
        inner.pending.remove(&self.id);
        inner.tokens.remove(&format!("mcpgate-{}", self.id));
    }
}

fn write(inner: &mut Inner, message: &Value) -> Result<(), LinkError> {
    let Some(out) = inner.out.as_mut() else {
        return Err(LinkError::NotRunning);
    };
    let bytes = serde_json::to_vec(message).map_err(|e| LinkError::Write(e.to_string()))?;
    out.send(bytes)
        .map_err(|_| LinkError::Write("the connection's writer has ended".into()))
}

/// The links of the running configuration, keyed by API name, upstream name and transport.
type Key = (String, String, Transport);

fn registry() -> &'static Mutex<HashMap<Key, Arc<Link>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Key, Arc<Link>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The link serving `api`'s upstream `upstream` over `transport`, if the configuration has it
/// (Streamable HTTP upstreams have none: each worker reaches them itself).
pub fn link(api: &str, upstream: &str, transport: &Transport) -> Option<Arc<Link>> {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(api.to_owned(), upstream.to_owned(), transport.clone()))
        .cloned()
}

/// The connector of a transport that has a shared link.
fn connector(transport: &Transport) -> Option<Box<dyn Connector>> {
    match transport {
        Transport::Stdio(spec) => Some(Box::new(super::stdio::StdioConnector(spec.clone()))),
        Transport::Sse { url } => Some(Box::new(super::sse::SseConnector::new(url.clone()))),
        Transport::Http { .. } => None,
    }
}

/// Starts the shared links `config` has and the registry lacks, and stops those it no longer
/// has (a reload that removed or changed them). Unchanged ones keep running.
pub fn reconcile(config: &Config) {
    let mut wanted: HashMap<Key, usize> = HashMap::new();
    for api in &config.apis {
        let Some(server) = api.virtual_server.as_deref() else {
            continue;
        };
        for u in &server.upstreams {
            if !matches!(u.transport, Transport::Http { .. }) {
                wanted.insert(
                    (api.name.clone(), u.name.clone(), u.transport.clone()),
                    server.max_line_bytes,
                );
            }
        }
    }
    let mut reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
    reg.retain(|key, link| {
        let keep = wanted.contains_key(key);
        if !keep {
            crate::info!(
                "{} upstream {}: removed by a reload, stopping it",
                link.kind(),
                link.label
            );
            link.kill();
        }
        keep
    });
    for (key, max_line) in wanted {
        if reg.contains_key(&key) {
            continue;
        }
        let Some(connector) = connector(&key.2) else {
            continue;
        };
        let link = Arc::new(Link {
            label: format!("{}/{}", key.0, key.1),
            max_line,
            connector,
            inner: Mutex::new(Inner::default()),
            listeners: Mutex::new(Vec::new()),
            ready: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let supervised = Arc::clone(&link);
        let spawned = std::thread::Builder::new()
            .name(format!("{}-{}", link.kind(), key.1))
            .spawn(move || supervise(&supervised));
        if let Err(e) = spawned {
            crate::error!(
                "{} upstream {}: cannot start its thread: {e}",
                link.kind(),
                link.label
            );
            continue;
        }
        reg.insert(key, link);
    }
}

/// Stops every shared link (gateway shutdown).
pub fn stop_all() {
    let mut reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
    for (_, link) in reg.drain() {
        link.kill();
    }
}

/// The supervisor: connect, initialize, read, reconnect with backoff, until stopped.
fn supervise(link: &Link) {
    let kind = link.kind();
    let mut backoff = BACKOFF_MIN;
    while !link.stopped() {
        let started = Instant::now();
        match link.connector.run_once(link) {
            Ok(()) => crate::warn!("{kind} upstream {}: the connection ended", link.label),
            Err(e) => crate::warn!("{kind} upstream {}: {e}", link.label),
        }
        {
            let mut inner = link.lock();
            inner.init = None;
            inner.out = None;
            if let Some(mut conn) = inner.conn.take() {
                conn.reap();
            }
            for (_, slot) in inner.pending.drain() {
                slot.fill(Err(LinkError::Ended));
            }
            inner.tokens.clear();
            inner.restarts += 1;
        }
        // Its names leave the clients' lists until it is back.
        link.broadcast_list_changed();
        if link.stopped() {
            break;
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = BACKOFF_MIN;
        }
        // Sleep in small steps so a stop is seen promptly.
        let until = Instant::now() + backoff;
        while Instant::now() < until && !link.stopped() {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
