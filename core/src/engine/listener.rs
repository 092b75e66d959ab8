//! A worker thread: its monoio runtime (io_uring with tuned setup, or epoll, or the fusion of
//! both), optionally pinned to a core, and its accept loops over its own SO_REUSEPORT listeners
//! (one per configured listener, plain or TLS) — connection limit, periodic pool sweep, and on
//! drain: stop accepting, let in-flight requests finish within `shutdown_grace`.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, TcpStream};

use super::client::TlsClient;
use super::shared::Shared;
use super::worker::Worker;
use crate::config::Driver;
use crate::observe::ObserveHub;
use crate::tls::server::TlsAcceptor;

/// One of a worker's listening sockets, and its TLS acceptor when it speaks TLS.
pub struct WorkerListener {
    pub socket: StdListener,
    pub tls: Option<Arc<TlsAcceptor>>,
}

/// How often an idle worker looks at the draining flag (the only cross-thread signal it polls).
const DRAIN_POLL: Duration = Duration::from_millis(50);

pub fn spawn(
    id: usize,
    listeners: Vec<WorkerListener>,
    shared: Arc<Shared>,
    driver: Driver,
    pin: Option<usize>,
    hub: ObserveHub,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("mcpgate-w{id}"))
        .spawn(move || {
            if let Some(cpu) = pin {
                pin_to_cpu(cpu);
            }
            let result = match driver {
                Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                    .enable_timer()
                    .build()
                    .map(|mut rt| rt.block_on(serve(id, listeners, shared, hub))),
                Driver::Uring => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                    .uring_builder(tuned_uring())
                    .enable_timer()
                    .build()
                    .or_else(|e| {
                        crate::debug!("worker {id}: tuned io_uring refused ({e}); plain setup");
                        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                            .enable_timer()
                            .build()
                    })
                    .map(|mut rt| rt.block_on(serve(id, listeners, shared, hub))),
                Driver::Auto => monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .uring_builder(tuned_uring())
                    .enable_timer()
                    .build()
                    .or_else(|e| {
                        crate::debug!("worker {id}: tuned io_uring refused ({e}); plain setup");
                        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                            .enable_timer()
                            .build()
                    })
                    .map(|mut rt| rt.block_on(serve(id, listeners, shared, hub))),
            };
            if let Err(e) = result {
                crate::error!("worker {id}: cannot start its runtime: {e}");
            }
        })
}

/// The io_uring setup of a worker's ring. Only the worker's own thread ever submits to it
/// (`SINGLE_ISSUER`), and completions need not interrupt it: with `COOP_TASKRUN` the kernel runs
/// their task work when the worker next enters the kernel (which it does on every loop turn)
/// instead of sending it an inter-processor interrupt per completion. Kernels older than 6.0
/// refuse these flags; the caller then builds the ring without them.
fn tuned_uring() -> io_uring::Builder {
    let mut builder = io_uring::IoUring::builder();
    builder.setup_coop_taskrun().setup_single_issuer();
    builder
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only touch it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        crate::warn!(
            "cannot pin a worker to cpu {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}

async fn serve(id: usize, listeners: Vec<WorkerListener>, shared: Arc<Shared>, hub: ObserveHub) {
    let mut registered = Vec::with_capacity(listeners.len());
    for l in listeners {
        match TcpListener::from_std(l.socket) {
            Ok(socket) => registered.push((socket, l.tls)),
            Err(e) => {
                crate::error!("worker {id}: cannot register its listener: {e}");
                return;
            }
        }
    }
    let mut registered = registered.into_iter();
    let Some((listener, tls)) = registered.next() else {
        return;
    };
    let worker = Rc::new(Worker::new(shared, &hub));
    // The other listeners accept on tasks of their own, which end when the worker drains.
    for (other, other_tls) in registered {
        monoio::spawn(accept_more(id, worker.clone(), other, other_tls));
    }
    let mut last_sweep = Instant::now();
    loop {
        let accepted = monoio::select! {
            a = listener.accept() => Some(a),
            _ = wait_for_drain(&worker) => None,
        };
        let Some(accepted) = accepted else { break };
        accept(id, &worker, accepted, tls.as_ref()).await;
        if last_sweep.elapsed() > Duration::from_secs(5) {
            let idle = worker.snapshot().config.gateway.timeouts.upstream_idle;
            worker.pool.borrow_mut().sweep(idle);
            last_sweep = Instant::now();
        }
    }
    // Stop accepting at once: close this worker's socket, then let in-flight requests finish.
    drop(listener);
    let grace = worker.snapshot().config.gateway.timeouts.shutdown_grace;
    let deadline = Instant::now() + grace;
    while worker.in_flight.get() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    if worker.in_flight.get() > 0 {
        crate::warn!(
            "worker {id}: {} request(s) still in flight after the {:?} grace period; closing them",
            worker.in_flight.get(),
            grace
        );
    }
}

/// The accept loop of a worker's second and further listeners.
async fn accept_more(
    id: usize,
    worker: Rc<Worker>,
    listener: TcpListener,
    tls: Option<Arc<TlsAcceptor>>,
) {
    loop {
        let accepted = monoio::select! {
            a = listener.accept() => Some(a),
            _ = worker.drained() => None,
        };
        let Some(accepted) = accepted else { break };
        accept(id, &worker, accepted, tls.as_ref()).await;
    }
}

/// One accepted connection: refused over the worker's connection share, else served on a task
/// of its own (after its TLS handshake on a TLS listener).
async fn accept(
    id: usize,
    worker: &Rc<Worker>,
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    tls: Option<&Arc<TlsAcceptor>>,
) {
    match accepted {
        Ok((stream, peer)) => {
            let snapshot = worker.snapshot();
            let cfg = &snapshot.config;
            let share = cfg
                .gateway
                .limits
                .max_connections
                .div_ceil(cfg.gateway.workers.max(1));
            if worker.connections.get() >= share {
                crate::debug!("worker {id}: connection limit ({share}) reached, refusing {peer}");
                drop(stream);
                return;
            }
            match tls {
                None => {
                    monoio::spawn(super::conn::serve(worker.clone(), stream, peer));
                }
                Some(acceptor) => {
                    let client = TlsClient {
                        tcp: stream,
                        acceptor: acceptor.clone(),
                    };
                    monoio::spawn(super::conn::serve(worker.clone(), client, peer));
                }
            }
        }
        Err(e) => {
            // EMFILE and friends: back off instead of spinning on a failing accept.
            crate::warn!("worker {id}: accept failed: {e}");
            monoio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn wait_for_drain(worker: &Worker) {
    while !worker.draining() {
        monoio::time::sleep(DRAIN_POLL).await;
        worker.pipeline.features.observe.tick();
    }
    worker.fire_drain();
}
