//! One worker: a thread, optionally pinned to a core, running a monoio runtime (io_uring, or epoll)
//! over its own SO_REUSEPORT listener. Owns everything per-worker: the upstream pool, the pipeline
//! scratch, the config view, the connection and in-flight counters.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener as StdListener;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::observe_glue::{self, WorkerObs};
use super::shared::{ConfigView, Shared};
use super::upstream::Pool;
use crate::config::{Config, Driver};
use crate::observe::ObserveHub;
use crate::pipeline::Pipeline;

/// How often an idle worker looks at the draining flag (the only cross-thread signal it polls).
const DRAIN_POLL: Duration = Duration::from_millis(50);

pub struct Worker {
    pub shared: Arc<Shared>,
    view: RefCell<ConfigView>,
    pub pool: RefCell<Pool>,
    pub pipeline: RefCell<Pipeline>,
    pub connections: Cell<usize>,
    pub in_flight: Cell<usize>,
    /// The exchange recorder (never borrowed across an `.await`).
    pub observe: RefCell<WorkerObs>,
    drain_waiters: DrainWaiters,
}

impl Worker {
    /// The configuration for the next request (a new snapshot after a reload).
    pub fn config(&self) -> Arc<Config> {
        self.view.borrow_mut().current(&self.shared)
    }

    pub fn draining(&self) -> bool {
        self.shared.draining()
    }

    /// Completes when the gateway drains. Woken by the worker's own drain poll, so thousands of
    /// idle streams waiting on it cost no timer each.
    pub fn drained(&self) -> Drained<'_> {
        Drained {
            worker: self,
            key: None,
        }
    }
}

/// The tasks waiting in [`Worker::drained`], woken all at once when the worker sees the drain.
#[derive(Default)]
struct DrainWaiters {
    fired: Cell<bool>,
    next_key: Cell<u64>,
    wakers: RefCell<HashMap<u64, Waker>>,
}

impl DrainWaiters {
    fn fire(&self) {
        self.fired.set(true);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers.into_values() {
            waker.wake();
        }
    }
}

/// See [`Worker::drained`]; deregisters itself when dropped unfinished.
pub struct Drained<'a> {
    worker: &'a Worker,
    key: Option<u64>,
}

impl Future for Drained<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let worker = self.worker;
        let waiters = &worker.drain_waiters;
        if waiters.fired.get() || worker.draining() {
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let key = waiters.next_key.get();
                waiters.next_key.set(key.wrapping_add(1));
                key
            }
        };
        let mut wakers = waiters.wakers.borrow_mut();
        match wakers.get_mut(&key) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => w.clone_from(cx.waker()),
            None => {
                wakers.insert(key, cx.waker().clone());
            }
        }
        drop(wakers);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for Drained<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.worker.drain_waiters.wakers.borrow_mut().remove(&key);
        }
    }
}

/// Marks a request in flight for the drain on shutdown; decrements on drop, whatever the outcome.
pub struct InFlight(Rc<Worker>);

impl InFlight {
    pub fn new(worker: &Rc<Worker>) -> Self {
        worker.in_flight.set(worker.in_flight.get() + 1);
        InFlight(worker.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .set(self.0.in_flight.get().saturating_sub(1));
    }
}

pub fn spawn(
    id: usize,
    listener: StdListener,
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
                    .map(|mut rt| rt.block_on(serve(id, listener, shared, hub))),
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
                    .map(|mut rt| rt.block_on(serve(id, listener, shared, hub))),
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
                    .map(|mut rt| rt.block_on(serve(id, listener, shared, hub))),
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

async fn serve(id: usize, listener: StdListener, shared: Arc<Shared>, hub: ObserveHub) {
    let listener = match monoio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            crate::error!("worker {id}: cannot register its listener: {e}");
            return;
        }
    };
    let recording = shared.config().log.gateway.enabled;
    let worker = Rc::new(Worker {
        observe: RefCell::new(WorkerObs::new(&hub, recording)),
        view: RefCell::new(ConfigView::new(&shared)),
        shared,
        pool: RefCell::new(Pool::new()),
        pipeline: RefCell::new(Pipeline::new()),
        connections: Cell::new(0),
        in_flight: Cell::new(0),
        drain_waiters: DrainWaiters::default(),
    });
    let mut last_sweep = Instant::now();
    loop {
        let accepted = monoio::select! {
            a = listener.accept() => Some(a),
            _ = wait_for_drain(&worker) => None,
        };
        let Some(accepted) = accepted else { break };
        match accepted {
            Ok((stream, peer)) => {
                let cfg = worker.config();
                let share = cfg
                    .gateway
                    .limits
                    .max_connections
                    .div_ceil(cfg.gateway.workers.max(1));
                if worker.connections.get() >= share {
                    crate::debug!(
                        "worker {id}: connection limit ({share}) reached, refusing {peer}"
                    );
                    drop(stream);
                    continue;
                }
                monoio::spawn(super::conn::serve(worker.clone(), stream, peer));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on a failing accept.
                crate::warn!("worker {id}: accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if last_sweep.elapsed() > Duration::from_secs(5) {
            let idle = worker.config().gateway.timeouts.upstream_idle;
            worker.pool.borrow_mut().sweep(idle);
            last_sweep = Instant::now();
        }
    }
    // Stop accepting at once: close this worker's socket, then let in-flight requests finish.
    drop(listener);
    let grace = worker.config().gateway.timeouts.shutdown_grace;
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

async fn wait_for_drain(worker: &Worker) {
    while !worker.draining() {
        monoio::time::sleep(DRAIN_POLL).await;
        observe_glue::tick(worker);
    }
    worker.drain_waiters.fire();
}
