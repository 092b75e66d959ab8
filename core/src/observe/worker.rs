//! The per-worker recorder. A [`WorkerObserver`] is owned by one worker thread (`Send`, not `Sync`)
//! and records into plain worker-local maps: no lock, no shared write, no syscall per exchange,
//! and no reference counting of the labels it interned (static strings). Each record is one `Arc`
//! (shared by ring and sink; in steady state a record the ring evicted, reused) plus a few hash-map
//! updates keyed by label address, whose number per flush is bounded.
//!
//! Publication: every `flush_interval_ms` (checked against the record's own timestamp, so no clock
//! read) or every `flush_batch` records, the worker moves its delta into its [`WorkerShared`] under a
//! `Mutex` taken with `try_lock`. Only two threads ever touch that mutex: this worker (≤ 10 times a
//! second) and an admin reader (per scrape/API call, holding it for a copy). If the reader holds it,
//! the worker keeps its delta and tries at the next flush: the worker never waits. The same flush
//! hands the batch to the JSON-lines sink with a non-blocking `try_send`.

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::record::{AclDecision, ExchangeRecord, Label, StoredRecord};
use super::shared::{HubInner, WorkerShared, OTHER};
use super::tally::{DeltaLabels, LabelAddr, Map, RequestKey, Tallies, SERIES_BUCKET_MS};

/// MCP methods kept as metric labels; anything else is `other` (methods come from the network).
pub const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "notifications/resources/updated",
    "notifications/resources/list_changed",
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/roots/list_changed",
    "notifications/elicitation/complete",
    "notifications/tasks/status",
];

/// Longest label the interner keeps (longer strings are cut: labels are for reading, not replay).
const MAX_LABEL_BYTES: usize = 256;
/// Distinct strings an interner remembers; past it, labels are allocated per use.
const INTERNER_CAP: usize = 4096;
/// Distinct JSON-RPC error codes per api per worker before folding into `other`.
const ERROR_CODES_CAP: usize = 32;

/// Hands out shared labels so records and tallies do not allocate a string per exchange. Each
/// label remembers whether it is a known MCP method, so folding costs one lookup, not a scan.
#[derive(Debug)]
pub struct Interner {
    map: HashMap<Label, bool, ahash::RandomState>,
    other: Label,
}

impl Default for Interner {
    fn default() -> Self {
        let mut map: HashMap<Label, bool, ahash::RandomState> = HashMap::default();
        for m in KNOWN_METHODS {
            map.insert(Label::from_static(m), true);
        }
        let other = Label::from_static(OTHER);
        map.insert(other.clone(), false);
        Self { map, other }
    }
}

impl Interner {
    pub fn label(&mut self, s: &str) -> Label {
        let s = cut(s, MAX_LABEL_BYTES);
        if let Some((l, _)) = self.map.get_key_value(s) {
            return l.clone();
        }
        if self.map.len() >= INTERNER_CAP {
            return Label::from(s);
        }
        let l = Label::leak(s);
        self.map.insert(l.clone(), false);
        l
    }

    /// The label a method gets in metrics: itself when it is a known MCP method, else `other`.
    fn method_label(&self, method: &Label) -> Label {
        match self.map.get_key_value(&**method) {
            Some((known, true)) => known.clone(),
            _ => self.other.clone(),
        }
    }
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut at = max;
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    s.get(..at).unwrap_or("")
}

/// Decrements the worker's active-connection gauge when dropped.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<WorkerShared>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decrements the worker's open-SSE-stream gauge when dropped.
#[derive(Debug)]
pub struct SseStreamGuard(Arc<WorkerShared>);

impl Drop for SseStreamGuard {
    fn drop(&mut self) {
        self.0.sse_streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The recorder a worker thread owns. Create with [`ObserveHub::worker`](super::ObserveHub::worker).
pub struct WorkerObserver {
    hub: Arc<HubInner>,
    shared: Arc<WorkerShared>,
    interner: Interner,
    delta: Tallies<LabelAddr>,
    /// The labels `delta`'s keys stand for, alive until it is absorbed.
    delta_labels: DeltaLabels,
    /// Records not yet handed to the sink.
    to_sink: Vec<Arc<StoredRecord>>,
    /// Records not yet in the published ring (longer than `to_sink` only when a reader held the lock).
    to_ring: VecDeque<Arc<StoredRecord>>,
    /// Records the ring let go of that nobody else holds: the next records are written into them.
    /// A worker allocates one record per exchange and the ring frees them a flush's worth at a
    /// time, which overflows the allocator's per-thread cache and sends every allocation down its
    /// slow path; reusing them costs neither.
    spare: Vec<Arc<StoredRecord>>,
    delta_records: u64,
    // Keyed by text, not identity: they live for the process, so labels the engine did not
    // intern must not grow them.
    targets_seen: Map<Label, HashSet<Label, ahash::RandomState>>,
    codes_seen: Map<Label, HashSet<i64, ahash::RandomState>>,
    /// Method label → its metric label, by identity (saves hashing the method text). Holds the
    /// method label too, so its address stays its own.
    method_labels: Map<LabelAddr, (Label, Label)>,
    next_seq: u64,
    last_flush_ms: u64,
    _not_sync: PhantomData<Cell<()>>,
}

impl WorkerObserver {
    pub(crate) fn new(hub: Arc<HubInner>, shared: Arc<WorkerShared>) -> Self {
        let batch = hub.config.flush_batch;
        Self {
            hub,
            shared,
            interner: Interner::default(),
            delta: Tallies::default(),
            delta_labels: DeltaLabels::default(),
            to_sink: Vec::with_capacity(batch),
            to_ring: VecDeque::with_capacity(batch),
            spare: Vec::with_capacity(batch),
            delta_records: 0,
            targets_seen: Map::default(),
            codes_seen: Map::default(),
            method_labels: Map::default(),
            next_seq: 0,
            last_flush_ms: 0,
            _not_sync: PhantomData,
        }
    }

    /// A shared label for `s` (api, method, target, subject, rule, upstream), cut to 256 bytes.
    pub fn label(&mut self, s: &str) -> Label {
        self.interner.label(s)
    }

    /// A shared label for a target (tool name, resource URI, prompt name), with credentials a URI
    /// may carry redacted first (see [`Redactor::target`](super::Redactor::target)).
    pub fn target_label(&mut self, target: &str) -> Label {
        let clean = self.hub.redactor.target(target);
        self.interner.label(&clean)
    }

    /// The redaction rules, for building a [`Capture`](super::Capture).
    pub fn redactor(&self) -> &super::Redactor {
        &self.hub.redactor
    }

    /// Counts a connection until the guard drops.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.shared
            .connections_active
            .fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.shared.clone())
    }

    /// Counts an answer cut off because the client stopped reading (`client_write` elapsed).
    pub fn client_write_timed_out(&self) {
        self.shared
            .client_write_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an open SSE stream until the guard drops.
    pub fn sse_stream_opened(&self) -> SseStreamGuard {
        self.shared.sse_streams_open.fetch_add(1, Ordering::Relaxed);
        SseStreamGuard(self.shared.clone())
    }

    /// Records one exchange. Never blocks; may publish (see the module docs).
    pub fn record(&mut self, record: ExchangeRecord) {
        self.tally(&record);
        let stored = self.stored(StoredRecord {
            worker: self.shared.index,
            seq: self.next_seq,
            record,
        });
        self.next_seq += 1;
        let time_ms = stored.record.time_ms;
        if self.hub.sink.is_some() {
            self.to_sink.push(stored.clone());
        }
        self.push_to_ring(stored);
        self.delta_records += 1;
        if self.to_ring.len() >= self.hub.config.flush_batch
            || time_ms
                >= self
                    .last_flush_ms
                    .saturating_add(self.hub.config.flush_interval_ms)
        {
            self.flush(time_ms);
        }
    }

    /// Publishes what is pending if the interval has passed. Call from a per-worker timer
    /// (100 ms–1 s) so an idle worker's last records become visible.
    pub fn tick(&mut self, now_ms: u64) {
        if (self.delta_records > 0 || !self.to_ring.is_empty() || !self.to_sink.is_empty())
            && now_ms
                >= self
                    .last_flush_ms
                    .saturating_add(self.hub.config.flush_interval_ms)
        {
            self.flush(now_ms);
        }
    }

    /// Publishes now (worker shutdown, tests).
    pub fn flush(&mut self, now_ms: u64) {
        self.last_flush_ms = now_ms;
        if let Some(sink) = &self.hub.sink {
            if !self.to_sink.is_empty() {
                let cap = self.hub.config.flush_batch;
                sink.offer(std::mem::replace(
                    &mut self.to_sink,
                    Vec::with_capacity(cap),
                ));
            }
        }
        let Ok(mut published) = self.shared.published.try_lock() else {
            return; // a reader is copying; keep the delta for the next flush
        };
        published
            .tallies
            .absorb_and_clear(&mut self.delta, &mut self.delta_labels);
        published.recorded += self.delta_records;
        self.delta_records = 0;
        let cap = self.hub.config.ring_capacity;
        let spare_cap = self.hub.config.flush_batch;
        for r in self.to_ring.drain(..) {
            if published.ring.len() >= cap {
                // Readers clone records only under this lock, so a count of one stays one.
                if let Some(old) = published.ring.pop_front() {
                    if Arc::strong_count(&old) == 1 && self.spare.len() < spare_cap {
                        self.spare.push(old);
                    }
                }
            }
            published.ring.push_back(r);
        }
    }

    /// `record` in a spare allocation when there is one nobody else holds, else a new one.
    fn stored(&mut self, record: StoredRecord) -> Arc<StoredRecord> {
        if let Some(mut slot) = self.spare.pop() {
            if let Some(free) = Arc::get_mut(&mut slot) {
                *free = record;
                return slot;
            }
        }
        Arc::new(record)
    }

    fn push_to_ring(&mut self, stored: Arc<StoredRecord>) {
        // Bounded even if a reader kept the lock across many flushes.
        if self.to_ring.len() >= self.hub.config.ring_capacity.max(1) {
            self.to_ring.pop_front();
        }
        self.to_ring.push_back(stored);
    }

    fn tally(&mut self, r: &ExchangeRecord) {
        let outcome = r.outcome();
        let api = self.delta_labels.keep(&r.api);
        let method = self.method_key(&r.method);
        let target = r.target.as_ref().map(|t| self.target_key(&r.api, t));
        *self
            .delta
            .requests
            .entry(RequestKey {
                api,
                method,
                target,
                outcome,
            })
            .or_default() += 1;
        if let Some(code) = r.jsonrpc_error {
            let code = self.bounded_code(&r.api, code);
            *self.delta.jsonrpc_errors.entry((api, code)).or_default() += 1;
        }
        if let Some(d @ (AclDecision::Deny | AclDecision::WouldDeny)) = r.acl_decision {
            let rule = r.acl_rule.as_ref().map(|l| self.delta_labels.keep(l));
            let dry_run = d == AclDecision::WouldDeny;
            *self
                .delta
                .acl_denials
                .entry((api, rule, dry_run))
                .or_default() += 1;
        }
        if let Some(f) = r.upstream_failure {
            *self.delta.upstream_errors.entry((api, f)).or_default() += 1;
        }
        if r.kind.has_latency() {
            self.delta
                .latency
                .entry((api, method))
                .or_default()
                .record(r.total_us);
        }
        let point = self
            .delta
            .series
            .entry(api)
            .or_default()
            .entry(r.time_ms / SERIES_BUCKET_MS)
            .or_default();
        point.requests += 1;
        if outcome != super::Outcome::Ok {
            point.errors += 1;
        }
    }

    /// The delta key of a method's metric label: itself when it is a known MCP method, else
    /// `other`.
    fn method_key(&mut self, method: &Label) -> LabelAddr {
        let addr = LabelAddr::of(method);
        if let Some((_, folded)) = self.method_labels.get(&addr) {
            return self.delta_labels.keep(folded);
        }
        let folded = self.interner.method_label(method);
        let key = self.delta_labels.keep(&folded);
        // Bounded like the interner: past it, fold without remembering.
        if self.method_labels.len() < INTERNER_CAP {
            self.method_labels.insert(addr, (method.clone(), folded));
        }
        key
    }

    /// The delta key of a target's metric label: itself while the worker tracks fewer than its
    /// budget of targets for the API (or already tracks it), else `other`.
    fn target_key(&mut self, api: &Label, target: &Label) -> LabelAddr {
        let cap = self.hub.config.targets_tracked_per_worker;
        // By text first: the label is cloned only to insert it. (A helper returning the entry
        // would need a second lookup: a borrow returned from `get_mut` cannot fall back to
        // `entry` on today's borrow checker.)
        let seen = match self.targets_seen.get_mut(&**api) {
            Some(seen) => seen,
            None => self.targets_seen.entry(api.clone()).or_default(),
        };
        if seen.contains(target) {
            return self.delta_labels.keep(target);
        }
        if seen.len() < cap {
            seen.insert(target.clone());
            return self.delta_labels.keep(target);
        }
        self.delta_labels.keep(&self.interner.other)
    }

    fn bounded_code(&mut self, api: &Label, code: i64) -> Option<i64> {
        let seen = match self.codes_seen.get_mut(&**api) {
            Some(seen) => seen,
            None => self.codes_seen.entry(api.clone()).or_default(),
        };
        if seen.contains(&code) || seen.len() < ERROR_CODES_CAP {
            seen.insert(code);
            Some(code)
        } else {
            None
        }
    }
}

impl Drop for WorkerObserver {
    /// A worker that stops (drain, panic unwinding) still hands over what it recorded.
    fn drop(&mut self) {
        self.flush(super::now_unix_ms());
    }
}
