//! Observability: the exchange log (per-worker ring + JSON-lines sink), Prometheus metrics, the
//! admin API behind the console, and the console itself. Owns everything recorded about traffic.
//!
//! Hot path (design §4): a worker owns a [`WorkerObserver`] and calls [`WorkerObserver::record`]
//! once per JSON-RPC exchange. That touches only worker-local memory; publication to readers and
//! hand-off to the sink happen in batches (see [`worker`]). Readers ([`handle_admin`]) merge the
//! workers' published state when asked.
//!
//! Wiring, in order: [`ObserveHub::start`] once; [`ObserveHub::worker`] per worker thread;
//! [`WorkerObserver::connection_opened`] / [`WorkerObserver::sse_stream_opened`] guards;
//! [`WorkerObserver::record`] per exchange; [`WorkerObserver::tick`] from a per-worker timer;
//! [`ObserveHub::reopen_log`] on SIGHUP; [`handle_admin`] in the admin listener;
//! [`WorkerObserver::flush`] then [`ObserveHub::shutdown`] at exit. `docs/observability.md` has
//! the details.

pub mod admin;
pub mod exchange;
pub mod hub;
pub mod metrics;
pub mod record;
pub mod redact;
pub mod shared;
pub mod sink;
pub mod tally;
pub mod trace;
pub mod worker;

#[cfg(test)]
mod console_dev;
#[cfg(test)]
mod tests;

pub use admin::{handle_admin, AdminResponse};
pub use hub::{ObserveConfig, ObserveHub, StatusSource};
pub use record::{
    AclDecision, ExchangeKind, ExchangeRecord, Label, Outcome, SessionTag, UpstreamFailure,
};
pub use redact::{Capture, CapturedBody, CapturedHeaders, Redactor};
pub use sink::{SinkError, SinkTarget};
pub use worker::{ConnectionGuard, SseStreamGuard, WorkerObserver};

/// Per-API payload capture settings (the engine keeps one per API). Off by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturePolicy {
    pub enabled: bool,
    /// Cap per body, after redaction.
    pub max_bytes: usize,
}

impl Default for CapturePolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            max_bytes: 4096,
        }
    }
}

/// Wall-clock unix milliseconds for [`ExchangeRecord::time_ms`] (vDSO clock read, no syscall).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
