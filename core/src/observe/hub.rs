//! The process-wide side of observability: configuration, the list of workers, the JSON-lines sink,
//! and the read paths (merge of all workers, record queries, metric label admission). Nothing here
//! runs on the request path; readers lock each worker's published state briefly, one at a time.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::record::{Label, StoredRecord};
use super::redact::Redactor;
use super::shared::{HubInner, WorkerShared, OTHER};
use super::sink::{LogSink, SinkError, SinkStats};
use super::tally::{Map, Tallies};
use super::trace::TraceExporter;
use super::worker::WorkerObserver;

pub use super::shared::ObserveConfig;

/// State a feature keeps outside the exchange log that the admin API shows (the integrity
/// feature's cache counters and pin findings): read at scrape and summary time, never on the
/// request path.
pub trait StatusSource: Send + Sync {
    /// Appends Prometheus text exposition (`# HELP`, `# TYPE` and samples).
    fn metrics(&self, out: &mut String);
    /// One member of `GET /api/summary`: its name and value (`None`: nothing to show).
    fn summary(&self) -> Option<(&'static str, serde_json::Value)>;
}

/// Shared handle to observability; cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct ObserveHub {
    pub(crate) inner: Arc<HubInner>,
}

/// Everything merged across workers at one read.
pub(crate) struct Merged {
    pub tallies: Tallies,
    pub connections_active: i64,
    pub sse_streams_open: i64,
    pub client_write_timeouts: i64,
    pub recorded: u64,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding a lock leaves plain counters behind: still worth reading.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ObserveHub {
    /// Builds the hub and starts the JSON-lines writer when a sink is configured.
    pub fn start(config: ObserveConfig) -> Result<Self, SinkError> {
        let sink_stats = Arc::new(SinkStats::default());
        let sink = LogSink::start(&config.sink, config.sink_queue_batches, sink_stats.clone())?;
        let redactor = Redactor::new(&config.redact_headers, &config.redact_fields);
        let tracer = match &config.traces {
            Some(t) => Some(Arc::new(
                TraceExporter::start(t.clone()).map_err(SinkError::Spawn)?,
            )),
            None => None,
        };
        let mut sources: Vec<Arc<dyn StatusSource>> = Vec::new();
        if let Some(t) = &tracer {
            sources.push(t.clone());
        }
        Ok(Self {
            inner: Arc::new(HubInner {
                config,
                redactor,
                sink,
                sink_stats,
                workers: Mutex::new(Vec::new()),
                admitted: Mutex::new(Map::default()),
                started_ms: super::now_unix_ms(),
                sources: Mutex::new(sources),
                tracer,
            }),
        })
    }

    /// A recorder for one worker thread; call once per worker, before or after spawning it.
    pub fn worker(&self) -> WorkerObserver {
        let mut workers = relock(&self.inner.workers);
        let index = u16::try_from(workers.len()).unwrap_or(u16::MAX);
        let shared = Arc::new(WorkerShared::new(index));
        workers.push(shared.clone());
        WorkerObserver::new(self.inner.clone(), shared)
    }

    pub fn config(&self) -> &ObserveConfig {
        &self.inner.config
    }

    /// Adds a feature's state to `/metrics` and `/api/summary`.
    pub fn add_source(&self, source: Arc<dyn StatusSource>) {
        relock(&self.inner.sources).push(source);
    }

    /// The sources added, for the readers.
    pub(crate) fn sources(&self) -> Vec<Arc<dyn StatusSource>> {
        relock(&self.inner.sources).clone()
    }

    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// Reopens the JSON-lines file (call on SIGHUP).
    pub fn reopen_log(&self) {
        if let Some(s) = &self.inner.sink {
            s.reopen();
        }
    }

    /// The OTLP exporter, when traces are on.
    pub fn tracer(&self) -> Option<&Arc<TraceExporter>> {
        self.inner.tracer.as_ref()
    }

    /// Writes out what the sink and the trace exporter have queued and stops their threads.
    /// Flush workers first.
    pub fn shutdown(&self) {
        if let Some(s) = &self.inner.sink {
            s.shutdown();
        }
        if let Some(t) = &self.inner.tracer {
            t.shutdown();
        }
    }

    /// Records dropped because the sink's queue was full.
    pub fn log_records_dropped(&self) -> u64 {
        self.inner.sink_stats.dropped.load(Ordering::Relaxed)
    }

    /// Records the sink has written.
    pub fn log_records_written(&self) -> u64 {
        self.inner.sink_stats.written.load(Ordering::Relaxed)
    }

    fn workers(&self) -> Vec<Arc<WorkerShared>> {
        relock(&self.inner.workers).clone()
    }

    pub(crate) fn merged(&self) -> Merged {
        let mut m = Merged {
            tallies: Tallies::default(),
            connections_active: 0,
            sse_streams_open: 0,
            client_write_timeouts: 0,
            recorded: 0,
        };
        for w in self.workers() {
            m.connections_active += w.connections_active.load(Ordering::Relaxed);
            m.sse_streams_open += w.sse_streams_open.load(Ordering::Relaxed);
            m.client_write_timeouts += w.client_write_timeouts.load(Ordering::Relaxed);
            let published = relock(&w.published);
            m.tallies.merge(&published.tallies);
            m.recorded += published.recorded;
        }
        m
    }

    /// The records of every worker's ring that `keep` accepts.
    pub(crate) fn records(
        &self,
        mut keep: impl FnMut(&StoredRecord) -> bool,
    ) -> Vec<Arc<StoredRecord>> {
        let mut out = Vec::new();
        for w in self.workers() {
            let published = relock(&w.published);
            out.extend(published.ring.iter().filter(|r| keep(r)).cloned());
        }
        out
    }

    /// Maps each target to its metric label: admitted targets keep their name, the rest are
    /// `other`. Admission is first come (by count at the scrape that first sees them) and sticky.
    pub(crate) fn target_labels(
        &self,
        seen: &Map<Label, Vec<(Label, u64)>>,
    ) -> Map<(Label, Label), Label> {
        let other: Label = Label::from(OTHER);
        let mut admitted = relock(&self.inner.admitted);
        let mut out = Map::default();
        for (api, targets) in seen {
            let allow = self.inner.config.target_allow_list.get(&**api);
            let set = admitted.entry(api.clone()).or_default();
            let mut by_count = targets.clone();
            by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            for (t, _) in by_count {
                let own = if set.contains(&t) {
                    true
                } else if &*t == OTHER {
                    false
                } else if let Some(allow) = allow {
                    allow.iter().any(|a| **a == *t)
                } else if set.len() < self.inner.config.target_labels_per_api {
                    set.insert(t.clone());
                    true
                } else {
                    false
                };
                let label = if own { t.clone() } else { other.clone() };
                out.insert((api.clone(), t), label);
            }
        }
        out
    }
}
