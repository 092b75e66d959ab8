//! The OTLP exporter: one thread that takes the workers' span batches from a bounded queue,
//! groups them into requests of `batch_size` spans (or what arrived within `batch_interval`),
//! and POSTs them to the collector with the control-plane HTTP client
//! (`crate::engine::http_client`, on a small monoio runtime of its own: no tokio, nothing on a
//! worker). Workers never wait on it: a full queue drops the batch and counts its spans; a
//! failed export is retried with exponential backoff, then dropped and counted.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{otlp, SpanData, Value};

/// `[gateway.traces]`, validated (see `crate::config::traces`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracesConfig {
    /// The OTLP/HTTP traces URL (`…/v1/traces`).
    pub endpoint: String,
    /// Fraction of new traces kept, in millionths (clients' sampled flags are followed).
    pub sample_ppm: u32,
    pub batch_size: usize,
    pub batch_interval: Duration,
    /// Spans waiting for export, at most; past it new spans are dropped.
    pub queue_capacity: usize,
    pub headers: Vec<(String, String)>,
    /// Per export attempt.
    pub timeout: Duration,
    /// Attempts per batch (1 = no retry).
    pub max_attempts: u32,
    pub service_name: String,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct TraceStats {
    pub exported: AtomicU64,
    pub dropped: AtomicU64,
    pub export_failures: AtomicU64,
}

enum Msg {
    Spans(Vec<SpanData>),
    Stop,
}

pub struct TraceExporter {
    tx: SyncSender<Msg>,
    /// Spans handed over and not yet exported or dropped.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    pub stats: Arc<TraceStats>,
    pub config: TracesConfig,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl TraceExporter {
    pub fn start(config: TracesConfig) -> std::io::Result<TraceExporter> {
        // Batches of one span at worst: the span count below is the real bound.
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(TraceStats::default());
        let worker = ExportThread {
            rx,
            queued: Arc::clone(&queued),
            stats: Arc::clone(&stats),
            config: config.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("mcpgate-otlp".into())
            .spawn(move || worker.run())?;
        Ok(TraceExporter {
            tx,
            queued,
            capacity: config.queue_capacity,
            stats,
            config,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands spans to the exporter without ever blocking; past the queue's capacity they are
    /// dropped and counted.
    pub fn offer(&self, spans: Vec<SpanData>) {
        let n = spans.len();
        if n == 0 {
            return;
        }
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > self.capacity {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(Msg::Spans(spans)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(n, Ordering::AcqRel);
                self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }

    /// Exports what is queued (one attempt per batch) and stops the thread. Blocks: shutdown only.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Stop);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Prometheus text for the three counters.
    pub fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        for (name, help, v) in [
            (
                "mcpgate_trace_spans_exported_total",
                "Spans the OTLP collector accepted.",
                &self.stats.exported,
            ),
            (
                "mcpgate_trace_spans_dropped_total",
                "Spans dropped: export queue full, or export failed after its retries.",
                &self.stats.dropped,
            ),
            (
                "mcpgate_trace_export_failures_total",
                "OTLP export requests that failed after their retries.",
                &self.stats.export_failures,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

struct ExportThread {
    rx: Receiver<Msg>,
    queued: Arc<AtomicUsize>,
    stats: Arc<TraceStats>,
    config: TracesConfig,
}

impl ExportThread {
    fn run(self) {
        let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build();
        let mut runtime = match runtime {
            Ok(r) => r,
            Err(e) => {
                crate::error!(
                    "traces: cannot start the OTLP exporter's runtime: {e}; spans are dropped"
                );
                // Keep draining so the workers' queue accounting stays right.
                while let Ok(Msg::Spans(s)) = self.rx.recv() {
                    self.finish(s.len(), false);
                }
                return;
            }
        };
        let resource = [
            ("service.name", Value::Str(self.config.service_name.clone())),
            (
                "service.version",
                Value::Str(env!("CARGO_PKG_VERSION").into()),
            ),
            ("telemetry.sdk.name", Value::Str("mcpgate".into())),
            ("telemetry.sdk.language", Value::Str("rust".into())),
        ];
        let mut pending: Vec<SpanData> = Vec::new();
        let mut oldest: Option<Instant> = None;
        let mut stopping = false;
        loop {
            let wait = match oldest {
                Some(t) => self.config.batch_interval.saturating_sub(t.elapsed()),
                None => Duration::from_secs(3600),
            };
            match self.rx.recv_timeout(wait) {
                Ok(Msg::Spans(s)) => {
                    oldest.get_or_insert_with(Instant::now);
                    pending.extend(s);
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => stopping = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let due = oldest.is_some_and(|t| t.elapsed() >= self.config.batch_interval);
            while pending.len() >= self.config.batch_size
                || (!pending.is_empty() && (due || stopping))
            {
                let n = pending.len().min(self.config.batch_size.max(1));
                let batch: Vec<SpanData> = pending.drain(..n).collect();
                let ok = runtime.block_on(self.export(&resource, &batch, stopping));
                self.finish(batch.len(), ok);
            }
            if pending.is_empty() {
                oldest = None;
            }
            if stopping {
                return;
            }
        }
    }

    fn finish(&self, n: usize, exported: bool) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
        if exported {
            self.stats.exported.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
            self.stats.export_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One batch, with retries (none when stopping: shutdown must not hang on a dead collector).
    async fn export(&self, resource: &[(&str, Value)], spans: &[SpanData], stopping: bool) -> bool {
        let body = otlp::export_request(resource, env!("CARGO_PKG_VERSION"), spans);
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/x-protobuf")];
        headers.extend(
            self.config
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let attempts = if stopping {
            1
        } else {
            self.config.max_attempts.max(1)
        };
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=attempts {
            let result = crate::engine::http_client::request(
                "POST",
                &self.config.endpoint,
                &headers,
                &body,
                self.config.timeout,
            )
            .await;
            let retryable = match &result {
                Ok(r) if (200..300).contains(&r.status) => return true,
                // OTLP/HTTP: 429, 502, 503, 504 are worth another try; other statuses are not.
                Ok(r) => matches!(r.status, 429 | 502 | 503 | 504),
                Err(_) => true,
            };
            if attempt == attempts || !retryable {
                match result {
                    Ok(r) => crate::warn!(
                        "traces: the collector at {} answered {} to {} spans; dropped",
                        self.config.endpoint,
                        r.status,
                        spans.len()
                    ),
                    Err(e) => crate::warn!(
                        "traces: export of {} spans to {} failed: {e}; dropped",
                        spans.len(),
                        self.config.endpoint
                    ),
                }
                return false;
            }
            monoio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        false
    }
}

impl crate::observe::StatusSource for TraceExporter {
    fn metrics(&self, out: &mut String) {
        self.write_metrics(out);
    }
    fn summary(&self) -> Option<(&'static str, serde_json::Value)> {
        None
    }
}
