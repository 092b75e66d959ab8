//! The process-wide side of tool integrity, shared by every worker (`Arc`, behind
//! `engine::Shared`), never touched per byte:
//!
//! - per upstream, the epochs of its four lists ([`UpstreamShared`]): a `list_changed` seen on
//!   any worker's stream moves one, and every worker's cache stops serving entries of the older
//!   epoch (one atomic load per lookup);
//! - per lockfile and upstream, a [`PinBook`]: the pure `PinState` behind a mutex, a version
//!   workers compare to refresh their view, the lockfile it came from and, with trust on first
//!   use, the writes back to it (on a short-lived thread, never on a worker);
//! - per worker and API, the cache's counters (atomics only its worker writes);
//! - the `/metrics` text and the console's `integrity` summary ([`StatusSource`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mcpgate_codec::filter::ListKind;
use mcpgate_policies::integrity::pin::{
    Change, Finding, Lockfile, OnChange, PinKind, PinState, UpstreamPins,
};
use serde_json::{json, Value};

use crate::config::{ApiPin, LoadedPins};
use crate::observe::metrics::{header, sample};
use crate::observe::StatusSource;

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding a lock leaves consistent-enough data (counters, pins).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One upstream's list epochs.
#[derive(Debug, Default)]
pub struct UpstreamShared {
    epochs: [AtomicU64; 4],
}

impl UpstreamShared {
    pub fn epoch(&self, kind: ListKind) -> u64 {
        self.epochs
            .get(kind.index())
            .map_or(0, |e| e.load(Ordering::Acquire))
    }

    /// Every cached page of `kind` from this upstream is stale from now on.
    pub fn invalidate(&self, kind: ListKind) {
        if let Some(e) = self.epochs.get(kind.index()) {
            e.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// One worker's list-cache counters for one API (only that worker writes them).
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Requests that waited for another request's fetch of the same page (single flight).
    pub coalesced: AtomicU64,
    pub fills: AtomicU64,
    pub evicted: AtomicU64,
    pub expired: AtomicU64,
    pub invalidated: AtomicU64,
    pub entries: AtomicI64,
    pub bytes: AtomicI64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// A lockfile, and the writes back to it (trust on first use).
#[derive(Debug)]
pub struct PinFile {
    pub path: PathBuf,
    next: AtomicU64,
    /// Per upstream, the sequence number of the last write done: an older write that lost the
    /// race to the disk is skipped.
    written: Mutex<HashMap<String, u64>>,
}

impl PinFile {
    fn new(path: PathBuf) -> Self {
        PinFile {
            path,
            next: AtomicU64::new(1),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Writes `pins` as `upstream`'s entry of the file (its other entries kept), off the worker.
    fn persist(self: &Arc<Self>, upstream: &str, pins: UpstreamPins) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let file = Arc::clone(self);
        let upstream = upstream.to_owned();
        let spawned = std::thread::Builder::new()
            .name("mcpgate-pins".into())
            .spawn(move || file.write(seq, &upstream, pins));
        if let Err(e) = spawned {
            crate::error!(
                "integrity: cannot start the thread writing {}: {e}",
                self.path.display()
            );
        }
    }

    fn write(&self, seq: u64, upstream: &str, pins: UpstreamPins) {
        let mut written = relock(&self.written);
        if written.get(upstream).is_some_and(|w| *w > seq) {
            return;
        }
        let mut lock = match std::fs::read_to_string(&self.path) {
            Ok(text) => match Lockfile::parse(&text) {
                Ok(lock) => lock,
                Err(e) => {
                    // Never overwrite a file the operator may be editing into shape.
                    crate::error!(
                        "integrity: {} is not a valid lockfile ({e}); the pins learnt for {upstream} are not saved",
                        self.path.display()
                    );
                    return;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Lockfile::default(),
            Err(e) => {
                crate::error!("integrity: cannot read {}: {e}", self.path.display());
                return;
            }
        };
        let counts = (
            pins.tools.as_ref().map_or(0, BTreeMap::len),
            pins.prompts.as_ref().map_or(0, BTreeMap::len),
        );
        lock.upstreams.insert(upstream.to_owned(), pins);
        match write_atomically(&self.path, lock.to_text().as_bytes()) {
            Ok(()) => {
                written.insert(upstream.to_owned(), seq);
                crate::info!(
                    "integrity: trusted on first use and saved in {}: {upstream}: {} tools, {} prompts",
                    self.path.display(),
                    counts.0,
                    counts.1
                );
            }
            Err(e) => crate::error!("integrity: cannot write {}: {e}", self.path.display()),
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: a reader (or a
/// crash) never sees half a lockfile.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pins".into());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// What a worker knows of a book's findings (refreshed when the book's version moves).
#[derive(Debug, Clone, Default)]
pub struct PinView {
    pub version: u64,
    pub flagged: HashSet<(PinKind, String)>,
}

impl PinView {
    pub fn count(&self) -> usize {
        self.flagged.len()
    }
    pub fn is_flagged(&self, kind: PinKind, name: &str) -> bool {
        !self.flagged.is_empty() && self.flagged.contains(&(kind, name.to_owned()))
    }
}

/// One upstream's pins from one lockfile, shared by every worker and API using them.
#[derive(Debug)]
pub struct PinBook {
    pub upstream: String,
    file: Arc<PinFile>,
    tofu: bool,
    state: Mutex<PinState>,
    /// Moves whenever the findings (or the pins) change.
    version: AtomicU64,
    /// The loaded pins last applied (a reload brings another object).
    applied: Mutex<Option<Arc<Option<UpstreamPins>>>>,
    /// Findings raised, per kind and change (`[kind][new, changed]`).
    raised: [[AtomicU64; 2]; 2],
}

/// The pins an upstream is held to: the lockfile's entry; without one, nothing with trust on
/// first use (learnt from the first listing), else both kinds pinned empty (every definition
/// is new: a lockfile that forgot an upstream fails closed).
fn effective_pins(loaded: &Option<UpstreamPins>, tofu: bool, prompts: bool) -> UpstreamPins {
    let mut pins = match loaded {
        Some(p) => p.clone(),
        None if tofu => UpstreamPins::default(),
        None => UpstreamPins::empty_pinned(),
    };
    if !prompts {
        pins.prompts = None;
    }
    pins
}

impl PinBook {
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    pub fn view(&self) -> PinView {
        // Version first: a change racing with this read moves it again, and the worker reads
        // the findings once more at its next request.
        let version = self.version();
        let state = relock(&self.state);
        PinView {
            version,
            flagged: state.findings().map(|f| (f.kind, f.name.clone())).collect(),
        }
    }

    /// A snapshot's pins (each load reads the lockfile again): applied once per load, by the
    /// first worker that prepares the snapshot.
    fn apply_loaded(&self, loaded: &LoadedPins, prompts: bool) {
        let mut applied = relock(&self.applied);
        if applied.as_ref().is_some_and(|a| Arc::ptr_eq(a, &loaded.0)) {
            return;
        }
        let first = applied.is_none();
        *applied = Some(Arc::clone(&loaded.0));
        drop(applied);
        if first {
            return;
        }
        let pins = effective_pins(&loaded.0, self.tofu, prompts);
        let mut state = relock(&self.state);
        if state.replace_pins(pins) {
            crate::info!(
                "integrity: {}: pins reloaded from {}; {} definition(s) still differ",
                self.upstream,
                self.file.path.display(),
                state.finding_count()
            );
        }
        drop(state);
        self.bump();
    }

    /// One list answer's entries of `kind`: compared, findings logged and counted, learnt pins
    /// saved. `api`: for the log line.
    pub fn observe(&self, api: &str, kind: PinKind, entries: &[(String, Value)], last_page: bool) {
        let mut state = relock(&self.state);
        let outcome = state.observe(kind, entries, last_page);
        let learnt = outcome.learned.then(|| state.pins().clone());
        let count = state.finding_count();
        drop(state);
        if let Some(pins) = learnt {
            self.file.persist(&self.upstream, pins);
        }
        if outcome.new_findings.is_empty() {
            return;
        }
        for f in &outcome.new_findings {
            let column = match f.change {
                Change::New => 0,
                Change::Changed => 1,
            };
            if let Some(c) = self.raised.get(f.kind.index()).and_then(|r| r.get(column)) {
                add(c, 1);
            }
            crate::warn!(
                "integrity: api {api}: upstream {}: {} `{}` is {} since it was pinned ({}); {} flagged:\n    {}",
                self.upstream,
                f.kind.label(),
                f.name,
                match f.change {
                    Change::New => "new",
                    Change::Changed => "changed",
                },
                self.file.path.display(),
                count,
                f.diff.join("\n    ")
            );
        }
        self.bump();
    }

    fn findings_json(&self) -> Vec<Value> {
        let state = relock(&self.state);
        state
            .findings()
            .map(|f: &Finding| {
                json!({
                    "kind": f.kind.label(),
                    "name": f.name,
                    "change": f.change.as_str(),
                    "digest": f.digest,
                    "diff": f.diff,
                })
            })
            .collect()
    }

    fn finding_count(&self) -> usize {
        relock(&self.state).finding_count()
    }
}

/// What the admin API shows for one API.
#[derive(Debug, Clone)]
struct Binding {
    upstream: String,
    book: Option<(Arc<PinBook>, OnChange)>,
    cache: bool,
}

/// The process-wide integrity state (see the module docs).
#[derive(Debug, Default)]
pub struct Registry {
    upstreams: Mutex<HashMap<String, Arc<UpstreamShared>>>,
    files: Mutex<HashMap<PathBuf, Arc<PinFile>>>,
    books: Mutex<HashMap<(PathBuf, String), Arc<PinBook>>>,
    /// Per worker and API name, its cache counters (summed at scrape time).
    counters: Mutex<Vec<(String, Arc<CacheCounters>)>>,
    bindings: Mutex<BTreeMap<String, Binding>>,
}

impl Registry {
    pub fn upstream(&self, key: &str) -> Arc<UpstreamShared> {
        Arc::clone(relock(&self.upstreams).entry(key.to_owned()).or_default())
    }

    /// The book of `pin`'s lockfile and upstream, created on first use, its pins brought up to
    /// this load's.
    pub fn book(&self, pin: &ApiPin) -> Arc<PinBook> {
        let path = std::fs::canonicalize(&pin.file).unwrap_or_else(|_| pin.file.clone());
        let file = Arc::clone(
            relock(&self.files)
                .entry(path.clone())
                .or_insert_with(|| Arc::new(PinFile::new(pin.file.clone()))),
        );
        let book = Arc::clone(
            relock(&self.books)
                .entry((path, pin.upstream_key.clone()))
                .or_insert_with(|| {
                    Arc::new(PinBook {
                        upstream: pin.upstream_key.clone(),
                        file,
                        tofu: pin.tofu,
                        state: Mutex::new(PinState::new(
                            effective_pins(&pin.pins.0, pin.tofu, pin.prompts),
                            pin.tofu,
                        )),
                        version: AtomicU64::new(1),
                        applied: Mutex::new(None),
                        raised: Default::default(),
                    })
                }),
        );
        book.apply_loaded(&pin.pins, pin.prompts);
        book
    }

    /// A new counter set for one worker's state of `api` (kept for the process's life: the
    /// counters are monotonic across reloads).
    pub fn counters(&self, api: &str) -> Arc<CacheCounters> {
        let mut all = relock(&self.counters);
        // One worker prepares each snapshot once; reuse a set nobody else holds any more (an
        // older snapshot's), so reloads do not grow the list.
        if let Some((_, c)) = all
            .iter()
            .find(|(name, c)| name == api && Arc::strong_count(c) == 1)
        {
            return Arc::clone(c);
        }
        let c = Arc::new(CacheCounters::default());
        all.push((api.to_owned(), Arc::clone(&c)));
        c
    }

    /// What the console shows for `api` (latest snapshot wins).
    pub fn bind(
        &self,
        api: &str,
        upstream: &str,
        book: Option<(Arc<PinBook>, OnChange)>,
        cache: bool,
    ) {
        relock(&self.bindings).insert(
            api.to_owned(),
            Binding {
                upstream: upstream.to_owned(),
                book,
                cache,
            },
        );
    }

    fn cache_totals(&self) -> BTreeMap<String, [u64; 7]> {
        let mut totals: BTreeMap<String, [u64; 7]> = BTreeMap::new();
        for (api, c) in relock(&self.counters).iter() {
            let t = totals.entry(api.clone()).or_default();
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let gauge = |a: &AtomicI64| u64::try_from(a.load(Ordering::Relaxed)).unwrap_or(0);
            for (slot, v) in t.iter_mut().zip([
                load(&c.hits),
                load(&c.misses),
                load(&c.coalesced),
                load(&c.evicted),
                load(&c.expired),
                load(&c.invalidated),
                gauge(&c.bytes),
            ]) {
                *slot += v;
            }
        }
        totals
    }
}

impl StatusSource for Registry {
    fn metrics(&self, out: &mut String) {
        let totals = self.cache_totals();
        header(
            out,
            "mcpgate_list_cache_hits_total",
            "counter",
            "List requests (tools, prompts, resources, templates) answered from the list cache, by API.",
        );
        for (api, t) in &totals {
            sample(out, "mcpgate_list_cache_hits_total", &[("api", api)], t[0]);
        }
        header(
            out,
            "mcpgate_list_cache_misses_total",
            "counter",
            "Cacheable list requests sent to the upstream, by API.",
        );
        for (api, t) in &totals {
            sample(
                out,
                "mcpgate_list_cache_misses_total",
                &[("api", api)],
                t[1],
            );
        }
        header(
            out,
            "mcpgate_list_cache_coalesced_total",
            "counter",
            "List requests that waited for another request's fetch of the same page (single flight), by API.",
        );
        for (api, t) in &totals {
            sample(
                out,
                "mcpgate_list_cache_coalesced_total",
                &[("api", api)],
                t[2],
            );
        }
        header(
            out,
            "mcpgate_list_cache_evictions_total",
            "counter",
            "Entries that left the list cache, by API and reason (capacity, expired, invalidated by list_changed).",
        );
        for (api, t) in &totals {
            for (reason, v) in [("capacity", t[3]), ("expired", t[4]), ("invalidated", t[5])] {
                sample(
                    out,
                    "mcpgate_list_cache_evictions_total",
                    &[("api", api), ("reason", reason)],
                    v,
                );
            }
        }
        header(
            out,
            "mcpgate_list_cache_bytes",
            "gauge",
            "Bytes held by the list cache (all workers), by API.",
        );
        for (api, t) in &totals {
            sample(out, "mcpgate_list_cache_bytes", &[("api", api)], t[6]);
        }
        let books: Vec<Arc<PinBook>> = relock(&self.books).values().cloned().collect();
        header(
            out,
            "mcpgate_pin_changes_total",
            "counter",
            "Tool and prompt definitions found new or changed against their pins, by upstream, kind and change.",
        );
        let mut lines = BTreeMap::new();
        for book in &books {
            for kind in PinKind::ALL {
                for (i, change) in ["new", "changed"].into_iter().enumerate() {
                    let v = book
                        .raised
                        .get(kind.index())
                        .and_then(|r| r.get(i))
                        .map_or(0, |a| a.load(Ordering::Relaxed));
                    *lines
                        .entry((book.upstream.clone(), kind.label(), change))
                        .or_insert(0) += v;
                }
            }
        }
        for ((upstream, kind, change), v) in &lines {
            sample(
                out,
                "mcpgate_pin_changes_total",
                &[("upstream", upstream), ("kind", kind), ("change", change)],
                v,
            );
        }
        header(
            out,
            "mcpgate_pin_flagged",
            "gauge",
            "Definitions currently flagged (new or changed since pinned), by API and its on-change policy.",
        );
        for (api, b) in relock(&self.bindings).iter() {
            if let Some((book, policy)) = &b.book {
                sample(
                    out,
                    "mcpgate_pin_flagged",
                    &[("api", api), ("policy", policy.as_str())],
                    book.finding_count(),
                );
            }
        }
    }

    fn summary(&self) -> Option<(&'static str, Value)> {
        let bindings = relock(&self.bindings).clone();
        if bindings.is_empty() {
            return None;
        }
        let totals = self.cache_totals();
        let apis: Vec<Value> = bindings
            .iter()
            .map(|(api, b)| {
                let pin = b.book.as_ref().map(|(book, policy)| {
                    let findings = book.findings_json();
                    json!({
                        "policy": policy.as_str(),
                        "file": book.file.path.display().to_string(),
                        "trust_on_first_use": book.tofu,
                        "blocked": *policy == OnChange::Block && !findings.is_empty(),
                        "findings": findings,
                    })
                });
                let cache = b.cache.then(|| {
                    let t = totals.get(api).copied().unwrap_or_default();
                    json!({"hits": t[0], "misses": t[1], "coalesced": t[2],
                           "evictions": t[3] + t[4] + t[5], "bytes": t[6]})
                });
                json!({"api": api, "upstream": b.upstream, "pin": pin, "cache": cache})
            })
            .collect();
        Some(("integrity", json!({ "apis": apis })))
    }
}
