//! Host-name resolution that never blocks a worker. `getaddrinfo` (the OS resolver: the answers
//! `ToSocketAddrs` gives, `/etc/hosts` and `resolv.conf` included) can block for seconds, and a
//! worker blocked in it stalls every connection it serves; so lookups run on a small pool of
//! resolver threads, and callers wait for the answer with a timeout: a worker awaits it (the
//! resolver thread wakes the worker's task, which monoio's `sync` feature allows across threads),
//! the config loader and the upstream refresher (`crate::engine`) block on it. IP literals are
//! answered in place.
//!
//! The pool starts on first use with [`RESOLVER_THREADS`] threads and a queue of [`QUEUE`]
//! lookups: when the resolver hangs, further lookups fail at once ("resolver busy") instead of
//! piling up threads. A lookup that timed out still finishes on its thread; its answer is dropped.

use std::future::Future;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Resolver threads: two, so one slow name does not hold up every other lookup.
pub const RESOLVER_THREADS: usize = 2;
/// Lookups queued behind them before new ones are refused.
pub const QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve `{host}`: {source}")]
    Lookup {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{host}` resolves to no address")]
    NoAddress { host: String },
    #[error("resolving `{host}` took longer than {timeout:?}")]
    Timeout { host: String, timeout: Duration },
    #[error("cannot resolve `{host}`: the resolver is busy")]
    Busy { host: String },
}

type Answer = std::io::Result<Vec<SocketAddr>>;

/// Where a resolver thread leaves one answer, and how its caller learns it is there.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Default)]
struct SlotState {
    answer: Option<Answer>,
    /// The task awaiting the answer (async callers).
    waker: Option<Waker>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn complete(&self, answer: Answer) {
        let waker = {
            let mut state = self.lock();
            state.answer = Some(answer);
            state.waker.take()
        };
        self.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Blocks the calling thread until the answer or `timeout`.
    fn wait_blocking(&self, timeout: Duration) -> Option<Answer> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(answer) = state.answer.take() {
                return Some(answer);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self
                .done
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Completes with the slot's answer; forgets its waker when dropped (a timed-out wait), so a
/// late answer wakes nobody.
struct AnswerFuture(Arc<Slot>);

impl Future for AnswerFuture {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        let mut state = self.0.lock();
        if let Some(answer) = state.answer.take() {
            return Poll::Ready(answer);
        }
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for AnswerFuture {
    fn drop(&mut self) {
        self.0.lock().waker = None;
    }
}

struct Job {
    host: String,
    port: u16,
    slot: Arc<Slot>,
}

/// The resolver pool's queue; `None` when no thread could be started.
fn pool() -> Option<&'static SyncSender<Job>> {
    static POOL: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let mut started = 0;
        for i in 0..RESOLVER_THREADS {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("mcpgate-dns{i}"))
                .spawn(move || serve(&queue));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => crate::error!("cannot start a resolver thread: {e}"),
            }
        }
        (started > 0).then_some(jobs)
    })
    .as_ref()
}

fn serve(queue: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, not during the lookup.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let answer = (job.host.as_str(), job.port)
            .to_socket_addrs()
            .map(Iterator::collect);
        job.slot.complete(answer);
    }
}

/// `host` as an IP literal (IPv6 without brackets), answered without a lookup.
fn literal(host: &str, port: u16) -> Option<Vec<SocketAddr>> {
    host.parse::<IpAddr>()
        .ok()
        .map(|ip| vec![SocketAddr::new(ip, port)])
}

fn submit(host: &str, port: u16) -> Result<Arc<Slot>, ResolveError> {
    let slot = Arc::new(Slot::default());
    let job = Job {
        host: host.to_owned(),
        port,
        slot: slot.clone(),
    };
    let busy = || ResolveError::Busy {
        host: host.to_owned(),
    };
    pool().ok_or_else(busy)?.try_send(job).map_err(|_| busy())?;
    Ok(slot)
}

fn finish(host: &str, answer: Answer) -> Result<Vec<SocketAddr>, ResolveError> {
    match answer {
        Ok(addrs) if addrs.is_empty() => Err(ResolveError::NoAddress {
            host: host.to_owned(),
        }),
        Ok(addrs) => Ok(addrs),
        Err(source) => Err(ResolveError::Lookup {
            host: host.to_owned(),
            source,
        }),
    }
}

/// Resolves `host` on a resolver thread, blocking the caller (not a worker!) up to `timeout`.
pub fn resolve_blocking(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Some(addrs) = literal(host, port) {
        return Ok(addrs);
    }
    let slot = submit(host, port)?;
    match slot.wait_blocking(timeout) {
        Some(answer) => finish(host, answer),
        None => Err(ResolveError::Timeout {
            host: host.to_owned(),
            timeout,
        }),
    }
}

/// Resolves `host` on a resolver thread while the calling monoio task waits, up to `timeout`
/// (the runtime needs its timer enabled, as every worker's has).
pub async fn resolve(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Some(addrs) = literal(host, port) {
        return Ok(addrs);
    }
    let slot = submit(host, port)?;
    match monoio::time::timeout(timeout, AnswerFuture(slot)).await {
        Ok(answer) => finish(host, answer),
        Err(_) => Err(ResolveError::Timeout {
            host: host.to_owned(),
            timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_both_drivers(test: impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()>>>) {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap_or_else(|e| panic!("epoll runtime: {e}"))
            .block_on(test());
        if monoio::utils::detect_uring() {
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .enable_timer()
                .build()
                .unwrap_or_else(|e| panic!("io_uring runtime: {e}"))
                .block_on(test());
        }
    }

    #[test]
    fn literals_are_answered_in_place() {
        let addrs = resolve_blocking("::1", 8080, Duration::ZERO).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            addrs,
            vec!["[::1]:8080".parse().unwrap_or_else(|_| unreachable!())]
        );
        on_both_drivers(|| {
            Box::pin(async {
                let addrs = resolve("127.0.0.1", 1, Duration::ZERO)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(addrs.len(), 1);
            })
        });
    }

    #[test]
    fn names_are_resolved_off_the_calling_thread() {
        // `localhost` comes from /etc/hosts: no network needed.
        let addrs = resolve_blocking("localhost", 9, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9),
            "{addrs:?}"
        );
        on_both_drivers(|| {
            Box::pin(async {
                let addrs = resolve("localhost", 9, Duration::from_secs(10))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
            })
        });
    }

    #[test]
    fn empty_and_failed_answers_are_errors() {
        assert!(matches!(
            finish("h", Ok(Vec::new())),
            Err(ResolveError::NoAddress { .. })
        ));
        let refused = std::io::Error::other("no such host");
        let failed = finish("h", Err(refused));
        assert_eq!(
            failed.map_err(|e| e.to_string()).err().as_deref(),
            Some("cannot resolve `h`: no such host")
        );
    }

    #[test]
    fn an_answer_from_another_thread_wakes_the_waiting_task() {
        on_both_drivers(|| {
            Box::pin(async {
                let slot = Arc::new(Slot::default());
                let answering = slot.clone();
                let thread = std::thread::spawn(move || {
                    answering.complete(Ok(vec![SocketAddr::from(([10, 0, 0, 1], 80))]));
                });
                let answer =
                    monoio::time::timeout(Duration::from_secs(10), AnswerFuture(slot)).await;
                assert!(
                    matches!(answer, Ok(Ok(ref a)) if a.len() == 1),
                    "{answer:?}"
                );
                assert!(thread.join().is_ok());
            })
        });
    }

    #[test]
    fn an_unanswered_lookup_times_out() {
        let slot = Slot::default();
        assert!(slot.wait_blocking(Duration::from_millis(20)).is_none());
        on_both_drivers(|| {
            Box::pin(async {
                let slot = Arc::new(Slot::default());
                let waited =
                    monoio::time::timeout(Duration::from_millis(20), AnswerFuture(slot.clone()))
                        .await;
                assert!(waited.is_err());
                // The dropped wait left no waker behind for a late answer to call.
                assert!(slot.lock().waker.is_none());
                slot.complete(Ok(Vec::new()));
            })
        });
    }
}
