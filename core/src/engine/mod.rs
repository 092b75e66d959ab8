//! The engine: binds the listeners, starts one monoio worker per core, serves the admin listener,
//! and turns signals into a graceful stop (SIGTERM/SIGINT) or a config reload (SIGHUP).
//!
//! Threads: the main thread waits for signals; each worker thread runs its own runtime with its own
//! SO_REUSEPORT listener and shares nothing mutable with the others except [`Shared`] (a config
//! snapshot behind a generation counter, and the draining flag). Besides the workers: the admin
//! thread, the resolver threads (`crate::dns`) and the upstream address refresher
//! (`dns_refresh`).

mod admin;
mod client;
mod conn;
mod deadlines;
mod dns_refresh;
mod exchange;
pub mod http_client;
pub mod io;
mod listener;
pub mod local_stream;
mod relay;
mod shared;
mod sse;
#[cfg(test)]
mod tests;
pub mod tls_io;
mod trim;
pub mod upstream;
mod worker;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

pub use shared::Shared;

use crate::config::{Config, ConfigSource, Driver};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    // The io error is part of the message (not a chained source), like the other variants, so
    // the binary's one-line error does not print it twice.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("io_uring is not available on this kernel (or blocked by seccomp); use --driver auto or epoll")]
    UringUnavailable,
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot start a worker thread: {0}")]
    Spawn(std::io::Error),
    #[error("cannot open the exchange log: {0}")]
    ExchangeLog(#[from] crate::observe::SinkError),
}

/// Runs the gateway until SIGTERM/SIGINT, then drains in-flight requests (up to `shutdown_grace`).
pub fn run(config: Config, source: ConfigSource) -> Result<(), EngineError> {
    // Handlers first, so a signal sent as soon as the ready line appears is never lost.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(EngineError::Signals)?;
    let g = config.gateway.clone();
    if g.driver == Driver::Uring && !monoio::utils::detect_uring() {
        return Err(EngineError::UringUnavailable);
    }
    raise_fd_limit();
    tune_allocator();
    // Per configured listener: one socket per worker, and its TLS acceptor (shared by workers).
    let mut bound = Vec::with_capacity(g.listeners.len());
    let mut acceptors = Vec::with_capacity(g.listeners.len());
    for l in &g.listeners {
        let sockets = bind_reuseport(l.addr, g.workers)?;
        let local = sockets
            .first()
            .and_then(|s| s.local_addr().ok())
            .unwrap_or(l.addr);
        let acceptor = l.tls.as_ref().map(|t| {
            Arc::new(crate::tls::server::TlsAcceptor::new(
                local.to_string(),
                t.settings.clone(),
                &t.loaded,
            ))
        });
        acceptors.push(acceptor.clone());
        bound.push((local, sockets, acceptor));
    }
    let local = bound.first().map_or(g.listen, |(local, _, _)| *local);
    let admin_listener = match g.admin {
        Some(addr) => Some(TcpListener::bind(addr).map_err(|source| EngineError::Bind {
            addr,
            error: source,
        })?),
        None => None,
    };
    let hub = crate::features::observe::start_hub(&config)?;
    let shared = Arc::new(Shared::new(config));
    hub.add_source(Arc::new(LimitsMetrics(Arc::clone(&shared))));
    hub.add_source(shared.integrity.clone());
    hub.add_source(Arc::new(VirtualHealth(Arc::clone(&shared))));

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Worker `id` gets socket `id` of every listener.
    let mut per_worker: Vec<Vec<listener::WorkerListener>> =
        (0..g.workers.max(1)).map(|_| Vec::new()).collect();
    for (_, sockets, acceptor) in &mut bound {
        for (id, socket) in std::mem::take(sockets).into_iter().enumerate() {
            if let Some(list) = per_worker.get_mut(id) {
                list.push(listener::WorkerListener {
                    socket,
                    tls: acceptor.clone(),
                });
            }
        }
    }
    let mut workers = Vec::with_capacity(per_worker.len());
    for (id, listeners) in per_worker.into_iter().enumerate() {
        let pin = g.pin_cpus.then_some(id % cores);
        workers.push(
            listener::spawn(id, listeners, shared.clone(), g.driver, pin, hub.clone())
                .map_err(EngineError::Spawn)?,
        );
    }
    let driver = match g.driver {
        Driver::Auto if monoio::utils::detect_uring() => "io_uring (auto)",
        Driver::Auto => "epoll (auto: io_uring unavailable)",
        Driver::Uring => "io_uring",
        Driver::Epoll => "epoll",
    };
    let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
    crate::startup::announce(
        &shared.config(),
        crate::startup::Bound {
            listen: local,
            driver,
            admin: admin_addr,
        },
    );
    // More listeners than the first (which the summary names), and the certificates loaded.
    for (i, ((addr, _, acceptor), l)) in bound.iter().zip(&g.listeners).enumerate() {
        if i > 0 {
            let tls = if acceptor.is_some() { ", tls" } else { "" };
            crate::info!(target: "mcpgate", "listening on {addr} ({driver}{tls})");
        }
        if let Some(t) = &l.tls {
            for line in &t.loaded.summary {
                crate::info!(target: "mcpgate", "tls {addr}: certificate {line}");
            }
        }
    }
    if let Some(listener) = admin_listener {
        // The management API reloads the way SIGHUP does, from the admin thread.
        let manager = {
            let shared = shared.clone();
            let source2 = source.clone();
            let acceptors = acceptors.clone();
            crate::manage::Manager::new(
                source.clone(),
                Box::new(move || reload(&shared, &source2, &acceptors)),
            )
        };
        admin::spawn(listener, shared.clone(), hub.clone(), Arc::new(manager))
            .map_err(EngineError::Spawn)?;
    }
    // Upstream host names were resolved by the loader; this thread keeps them current.
    dns_refresh::spawn(shared.clone()).map_err(EngineError::Spawn)?;
    // Certificates rotated on disk are picked up without a signal.
    crate::tls::watch::spawn(acceptors.iter().flatten().cloned().collect())
        .map_err(EngineError::Spawn)?;
    shared.set_ready();

    for signal in signals.forever() {
        match signal {
            SIGHUP => {
                // Logged inside: a bad file keeps the running configuration.
                let _ = reload(&shared, &source, &acceptors);
                // logrotate moved the file and signalled: write to a fresh one at the same path.
                hub.reopen_log();
            }
            _ => {
                crate::info!(
                    "{} received: no longer accepting, draining in-flight requests (up to {:?})",
                    if signal == SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    },
                    shared.config().gateway.timeouts.shutdown_grace
                );
                shared.start_draining();
                break;
            }
        }
    }
    for w in workers {
        if w.join().is_err() {
            crate::error!("a worker thread panicked during shutdown");
        }
    }
    // The workers' recorders flushed as they stopped; write out what the sink still holds.
    hub.shutdown();
    crate::features::virtual_server::shared::stop_all();
    crate::info!("stopped");
    Ok(())
}

/// SIGHUP (and a management deploy): build a new snapshot from the same source; a bad file keeps
/// the running config (and the running certificates). TLS listeners get the certificates just
/// read. Serialized, so a signal and a deploy cannot interleave their swaps.
fn reload(
    shared: &Shared,
    source: &ConfigSource,
    acceptors: &[Option<Arc<crate::tls::server::TlsAcceptor>>],
) -> Result<String, String> {
    static RELOADING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = RELOADING.lock().unwrap_or_else(|p| p.into_inner());
    match source.load() {
        Ok(mut new) => {
            let old = shared.config();
            // Rules that did not change keep their counts across the reload.
            crate::config::carry_over(&old, &mut new);
            let g_old = &old.gateway;
            let g_new = &new.gateway;
            let same_listeners = g_old.listeners.len() == g_new.listeners.len()
                && g_old
                    .listeners
                    .iter()
                    .zip(&g_new.listeners)
                    .all(|(a, b)| a.addr == b.addr && a.tls.is_some() == b.tls.is_some());
            if g_old.listen != g_new.listen
                || !same_listeners
                || g_old.workers != g_new.workers
                || g_old.driver != g_new.driver
                || g_old.pin_cpus != g_new.pin_cpus
                || g_old.admin != g_new.admin
            {
                crate::warn!("reload: listen, listeners (their addresses, TLS on or off), workers, driver, pin_cpus and admin take effect on restart only");
            }
            for ((acceptor, l), was) in acceptors.iter().zip(&g_new.listeners).zip(&g_old.listeners)
            {
                if let (Some(acceptor), Some(tls), true) = (acceptor, &l.tls, l.addr == was.addr) {
                    acceptor.install(tls.settings.clone(), &tls.loaded);
                    crate::info!(
                        "reload: tls {}: {}",
                        acceptor.label,
                        tls.loaded.summary.join("; ")
                    );
                }
            }
            let apis = new.apis.len();
            shared.replace_config(new);
            crate::info!(
                "reload: configuration from {} applied ({apis} API(s))",
                old.source
            );
            Ok(format!(
                "configuration from {} applied ({apis} API(s))",
                old.source
            ))
        }
        Err(e) => {
            crate::error!("reload failed, keeping the running configuration: {e}");
            Err(format!(
                "reload failed, keeping the running configuration: {e}"
            ))
        }
    }
}

/// Large buffers (a 10 MB body, a big list answer) go back to the kernel when freed. glibc raises
/// its mmap threshold dynamically after the first large free (up to 32 MB): from then on such
/// buffers come from the heap arenas and stay in the process's resident set after they are
/// freed — a gateway that relayed a few 10–13 MB bodies kept twice their size for good, in some
/// runs and not others (tests/tests/memory.rs). A fixed threshold turns the adjustment off, so
/// every allocation past it is its own mapping, unmapped when freed.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Allocations from this size on are mmapped (and unmapped when freed).
        const MMAP_THRESHOLD: libc::c_int = 256 * 1024;
        // SAFETY: mallopt only changes allocator parameters; called once, before the worker
        // threads start.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        if ok != 1 {
            crate::debug!("mallopt(M_MMAP_THRESHOLD) refused; large buffers may stay resident");
        }
    }
}

/// Raises the soft open-files limit to the hard limit: every client connection and every pooled
/// upstream connection is a descriptor, and the usual soft default (1024) is far below
/// `max_connections`.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                crate::debug!(
                    "cannot raise the open-files limit: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// One listening socket per worker on the same address (SO_REUSEPORT lets the kernel spread
/// connections across them). Port 0 is resolved by the first bind and reused for the rest.
fn bind_reuseport(addr: SocketAddr, n: usize) -> Result<Vec<TcpListener>, EngineError> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    if addr.port() != 0 {
        // SO_REUSEPORT would also let this process join another one's listeners on the port (same
        // user): the kernel would then split clients between two gateways, silently. A plain
        // bind, without the option, fails while any socket holds the port.
        probe_exclusive(addr).map_err(|source| EngineError::Bind {
            addr,
            error: source,
        })?;
    }
    for _ in 0..n.max(1) {
        let listener = bind_one(addr).map_err(|source| EngineError::Bind {
            addr,
            error: source,
        })?;
        if addr.port() == 0 {
            if let Ok(actual) = listener.local_addr() {
                addr = actual;
            }
        }
        out.push(listener);
    }
    Ok(out)
}

fn probe_exclusive(addr: SocketAddr) -> std::io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // SO_REUSEADDR still conflicts with a listener but not with TIME_WAIT left by a restart.
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())
}

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Virtual APIs' per-upstream health, rendered from the snapshot current at scrape time.
struct VirtualHealth(Arc<Shared>);

impl crate::observe::StatusSource for VirtualHealth {
    fn metrics(&self, out: &mut String) {
        crate::features::virtual_server::health::render(&self.0.config(), out);
    }

    fn summary(&self) -> Option<(&'static str, serde_json::Value)> {
        crate::features::virtual_server::health::summary(&self.0.config())
    }
}

/// The rate limits' `/metrics` families, rendered from the snapshot current at scrape time.
struct LimitsMetrics(Arc<Shared>);

impl crate::observe::StatusSource for LimitsMetrics {
    fn metrics(&self, out: &mut String) {
        crate::features::limits::metrics::render(&self.0.config(), out);
    }

    fn summary(&self) -> Option<(&'static str, serde_json::Value)> {
        None
    }
}
