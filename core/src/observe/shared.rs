//! What the process-wide hub and the per-worker recorders share (so neither module needs the
//! other): the settings, the hub's inner state, and the part of a worker the hub can see.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

use super::record::{Label, StoredRecord};
use super::redact::Redactor;
use super::sink::{LogSink, SinkStats, SinkTarget};
use super::tally::{Map, Tallies};

/// The name unknown methods, targets past the cap and rare error codes fold into.
pub const OTHER: &str = "other";

/// Observability settings, fixed at start.
#[derive(Debug, Clone)]
pub struct ObserveConfig {
    /// Records kept per worker for `GET /api/logs`.
    pub ring_capacity: usize,
    /// How often a busy worker publishes (ms of record time) …
    pub flush_interval_ms: u64,
    /// … or after this many records, whichever comes first.
    pub flush_batch: usize,
    /// Where JSON lines go.
    pub sink: SinkTarget,
    /// Batches queued for the sink before dropping.
    pub sink_queue_batches: usize,
    /// Distinct `target` label values per api in `/metrics` (first seen win; rest → `other`).
    pub target_labels_per_api: usize,
    /// Per api: when present, only these targets get their own label (rest → `other`).
    pub target_allow_list: HashMap<String, Vec<String>>,
    /// Distinct targets a worker tracks per api (bounds worker memory; past it → `other`).
    /// Keep ≥ `target_labels_per_api`.
    pub targets_tracked_per_worker: usize,
    /// Header names redacted in captures besides the built-in ones.
    pub redact_headers: Vec<String>,
    /// JSON field names redacted in captures besides the built-in ones.
    pub redact_fields: Vec<String>,
    /// `mcpgate_build_info{version}`.
    pub version: String,
    /// `[gateway.traces]`: `None` keeps tracing off.
    pub traces: Option<super::trace::TracesConfig>,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        Self {
            ring_capacity: 4096,
            flush_interval_ms: 100,
            flush_batch: 256,
            sink: SinkTarget::None,
            sink_queue_batches: 1024,
            target_labels_per_api: 50,
            target_allow_list: HashMap::new(),
            targets_tracked_per_worker: 256,
            redact_headers: Vec::new(),
            redact_fields: Vec::new(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            traces: None,
        }
    }
}

pub(crate) struct HubInner {
    pub config: ObserveConfig,
    pub redactor: Redactor,
    pub sink: Option<LogSink>,
    pub sink_stats: Arc<SinkStats>,
    pub workers: Mutex<Vec<Arc<WorkerShared>>>,
    /// Per api, the targets that have their own metric label. Sticky, so counters stay monotonic.
    pub admitted: Mutex<Map<Label, HashSet<Label>>>,
    pub started_ms: u64,
    /// Features' own state for `/metrics` and `/api/summary` (see `super::hub::StatusSource`).
    pub sources: Mutex<Vec<Arc<dyn super::hub::StatusSource>>>,
    /// The OTLP exporter, when traces are on.
    pub tracer: Option<Arc<super::trace::TraceExporter>>,
}

/// What a worker publishes and a reader copies, behind the worker's own mutex.
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub tallies: Tallies,
    pub ring: VecDeque<Arc<StoredRecord>>,
    pub recorded: u64,
}

/// The part of a worker the hub can see.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub index: u16,
    pub published: Mutex<Published>,
    // Gauges are per connection/stream, not per exchange; each is written only by its worker, so
    // the cache line stays local and the reader's occasional load is the only sharing.
    pub connections_active: AtomicI64,
    pub sse_streams_open: AtomicI64,
    /// Answers cut off because the client accepted no byte within `client_write`.
    pub client_write_timeouts: AtomicI64,
}

impl WorkerShared {
    pub fn new(index: u16) -> Self {
        Self {
            index,
            published: Mutex::new(Published::default()),
            connections_active: AtomicI64::new(0),
            sse_streams_open: AtomicI64::new(0),
            client_write_timeouts: AtomicI64::new(0),
        }
    }
}
