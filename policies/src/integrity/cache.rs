//! The list cache's rules and its store, without I/O or clocks of its own (the caller passes
//! `now`): what a cached `tools/list`, `prompts/list`, `resources/list` or
//! `resources/templates/list` answer is keyed on, for how long it is kept, who it may be served
//! to, and a bounded least-recently-used map holding the answers' `result` bytes.
//!
//! - **Key**: the list, the page (`cursor`), the `MCP-Protocol-Version` the client speaks, the
//!   2026-07-28 client capabilities it declares in `_meta`, and the scope: `public`, or `private`
//!   to one authorization context ([`AuthContext`]) — the 2026-07-28 rule "caches MUST NOT share
//!   `private` entries across authorization contexts".
//! - **TTL** ([`ttl_of`]): the answer's `ttlMs`, at most the configured maximum; the configured
//!   default when the server sends none; `ttlMs: 0` or a malformed one is not cached.
//! - **Scope** ([`scope_of`]): the answer's `cacheScope`; the configured default when absent; an
//!   unknown value is read as `private`.
//! - **Invalidation**: each entry carries the epoch of its list when its fetch started; a
//!   `notifications/*/list_changed` moves the epoch (the engine keeps it per upstream), and an
//!   entry of an older epoch is never served.
//! - **Bounds**: entries and bytes; past either the least recently used entries go.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use mcpgate_codec::filter::ListKind;
use mcpgate_codec::list_answer::{ListAnswer, TtlMs};

/// Who a cached answer may be served to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Anyone who may list (the ACL still filters what each one sees).
    Public,
    /// Only requests of the same authorization context.
    #[default]
    Private,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "public" => Some(Scope::Public),
            "private" => Some(Scope::Private),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Public => "public",
            Scope::Private => "private",
        }
    }
}

/// The scope of an answer: its `cacheScope`, `default` without one, `private` for a value this
/// gateway does not know (the reading that never shares too much).
pub fn scope_of(cache_scope: Option<&str>, default: Scope) -> Scope {
    match cache_scope {
        None => default,
        Some(s) => Scope::parse(s).unwrap_or(Scope::Private),
    }
}

/// How long answers are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlRules {
    /// For answers without `ttlMs`; zero: such answers are not cached.
    pub default: Duration,
    /// The longest any answer is kept, whatever its `ttlMs` says.
    pub max: Duration,
}

/// How long to keep an answer with this `ttlMs`; `None`: do not cache it.
pub fn ttl_of(ttl: TtlMs, rules: TtlRules) -> Option<Duration> {
    let keep = match ttl {
        TtlMs::Absent => rules.default,
        TtlMs::Millis(ms) => Duration::from_millis(ms),
        TtlMs::Invalid => return None,
    };
    let keep = keep.min(rules.max);
    (!keep.is_zero()).then_some(keep)
}

/// Whether an answer to a `kind` list request may be cached at all: a final result (not a
/// 2026-07-28 `input_required` step) that carries that list.
pub fn cacheable(kind: ListKind, answer: &ListAnswer) -> bool {
    answer.lists.contains(kind) && answer.result_type.as_deref() != Some("input_required")
}

/// An authorization context: a digest of who the request acts for, never the credential itself
/// (a cache entry must not keep a bearer token in memory any longer than the request did).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthContext([u8; 16]);

impl AuthContext {
    fn of(parts: &[&[u8]]) -> AuthContext {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in parts {
            // Length-prefixed: ("ab", "c") and ("a", "bc") are different contexts.
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let digest = ctx.finish();
        let mut out = [0u8; 16];
        for (o, d) in out.iter_mut().zip(digest.as_ref()) {
            *o = *d;
        }
        AuthContext(out)
    }

    /// Requests without credentials.
    pub fn anonymous() -> AuthContext {
        AuthContext::of(&[b"anonymous"])
    }

    /// A request the API's plans authenticated: the plan kind, subject and client id.
    pub fn of_principal(plan: &str, subject: Option<&str>, client_id: Option<&str>) -> AuthContext {
        AuthContext::of(&[
            b"principal",
            plan.as_bytes(),
            subject.unwrap_or_default().as_bytes(),
            client_id.unwrap_or_default().as_bytes(),
        ])
    }

    /// A request to an API without plans: its `Authorization` value, which the upstream sees
    /// and may answer differently for.
    pub fn of_credential(authorization: &[u8]) -> AuthContext {
        AuthContext::of(&[b"credential", authorization])
    }
}

/// Which entries a key may find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKey {
    Public,
    Private(AuthContext),
}

/// One list page, as clients of any scope ask for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListKey {
    pub kind: ListKind,
    pub cursor: Option<Box<str>>,
    /// The request's `MCP-Protocol-Version` (answers may differ between versions).
    pub protocol_version: Option<Box<[u8]>>,
    /// A digest of the 2026-07-28 `clientCapabilities` the request declares (0: none).
    pub capabilities: u64,
}

impl ListKey {
    fn weight(&self) -> usize {
        // The map's own overhead per entry, roughly, plus what the key holds.
        128 + self.cursor.as_deref().map_or(0, str::len)
            + self.protocol_version.as_deref().map_or(0, <[u8]>::len)
    }
}

/// Why entries left the cache, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Pushed out by the bounds (least recently used first).
    pub evicted: u64,
    /// Found past their TTL.
    pub expired: u64,
    /// Found older than their list's epoch (a `list_changed` since).
    pub invalidated: u64,
}

struct Stored {
    value: Box<[u8]>,
    expires: Instant,
    epoch: u64,
    used: u64,
    weight: usize,
}

/// A bounded map of list answers' `result` bytes (per worker, per API).
pub struct ListCache {
    map: HashMap<(ListKey, ScopeKey), Stored, ahash::RandomState>,
    /// Last use → key: the least recently used entry is the first.
    lru: BTreeMap<u64, (ListKey, ScopeKey)>,
    tick: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    stats: CacheStats,
}

impl ListCache {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        ListCache {
            map: HashMap::default(),
            lru: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes,
            stats: CacheStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// What the entries weigh (their bytes plus an estimate of the map's overhead).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    fn remove(&mut self, key: &(ListKey, ScopeKey)) -> Option<Stored> {
        let stored = self.map.remove(key)?;
        self.lru.remove(&stored.used);
        self.bytes = self.bytes.saturating_sub(stored.weight);
        Some(stored)
    }

    /// The entry for `key` if it is fresh at `now` and of `epoch`; a stale one is dropped.
    pub fn get(&mut self, key: &(ListKey, ScopeKey), now: Instant, epoch: u64) -> Option<&[u8]> {
        let (expired, invalidated) = match self.map.get(key) {
            None => return None,
            Some(s) => (now >= s.expires, s.epoch != epoch),
        };
        if expired || invalidated {
            self.remove(key);
            if invalidated {
                self.stats.invalidated += 1;
            } else {
                self.stats.expired += 1;
            }
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let stored = self.map.get_mut(key)?;
        let previous = std::mem::replace(&mut stored.used, tick);
        if let Some(k) = self.lru.remove(&previous) {
            self.lru.insert(tick, k);
        }
        self.map.get(key).map(|s| &*s.value)
    }

    /// Keeps `value` for `key` until `expires`, as of list epoch `epoch`; evicts the least
    /// recently used entries to stay within the bounds. `false`: too large to keep at all.
    pub fn insert(
        &mut self,
        key: (ListKey, ScopeKey),
        value: Box<[u8]>,
        expires: Instant,
        epoch: u64,
    ) -> bool {
        let weight = value.len() + key.0.weight();
        if weight > self.max_bytes {
            return false;
        }
        self.remove(&key);
        while !self.map.is_empty()
            && (self.map.len() >= self.max_entries || self.bytes + weight > self.max_bytes)
        {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            if let Some(stored) = self.map.remove(&oldest) {
                self.bytes = self.bytes.saturating_sub(stored.weight);
                self.stats.evicted += 1;
            }
        }
        self.tick += 1;
        self.lru.insert(self.tick, key.clone());
        self.bytes += weight;
        self.map.insert(
            key,
            Stored {
                value,
                expires,
                epoch,
                used: self.tick,
                weight,
            },
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(cursor: Option<&str>, scope: ScopeKey) -> (ListKey, ScopeKey) {
        (
            ListKey {
                kind: ListKind::Tools,
                cursor: cursor.map(Box::from),
                protocol_version: None,
                capabilities: 0,
            },
            scope,
        )
    }

    #[test]
    fn ttl_rules() {
        let rules = TtlRules {
            default: Duration::from_secs(30),
            max: Duration::from_secs(300),
        };
        assert_eq!(ttl_of(TtlMs::Absent, rules), Some(Duration::from_secs(30)));
        assert_eq!(
            ttl_of(TtlMs::Millis(1500), rules),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            ttl_of(TtlMs::Millis(10_000_000), rules),
            Some(Duration::from_secs(300))
        );
        assert_eq!(ttl_of(TtlMs::Millis(0), rules), None);
        assert_eq!(ttl_of(TtlMs::Invalid, rules), None);
        let explicit_only = TtlRules {
            default: Duration::ZERO,
            ..rules
        };
        assert_eq!(ttl_of(TtlMs::Absent, explicit_only), None);
        assert_eq!(
            ttl_of(TtlMs::Millis(5), explicit_only),
            Some(Duration::from_millis(5))
        );
    }

    #[test]
    fn scope_rules() {
        assert_eq!(scope_of(None, Scope::Public), Scope::Public);
        assert_eq!(scope_of(Some("public"), Scope::Private), Scope::Public);
        assert_eq!(scope_of(Some("private"), Scope::Public), Scope::Private);
        assert_eq!(scope_of(Some("shared"), Scope::Public), Scope::Private);
    }

    #[test]
    fn contexts_differ_by_subject_and_never_by_accident() {
        let alice = AuthContext::of_principal("api_key", Some("alice"), None);
        assert_eq!(
            alice,
            AuthContext::of_principal("api_key", Some("alice"), None)
        );
        assert_ne!(
            alice,
            AuthContext::of_principal("api_key", Some("bob"), None)
        );
        assert_ne!(alice, AuthContext::of_principal("jwt", Some("alice"), None));
        assert_ne!(
            AuthContext::of_principal("p", Some("ab"), Some("c")),
            AuthContext::of_principal("p", Some("a"), Some("bc"))
        );
        assert_ne!(
            AuthContext::of_credential(b"Bearer x"),
            AuthContext::anonymous()
        );
    }

    #[test]
    fn entries_expire_are_invalidated_and_scopes_are_apart() {
        let mut cache = ListCache::new(10, 1 << 20);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let alice = ScopeKey::Private(AuthContext::of_principal("k", Some("alice"), None));
        let bob = ScopeKey::Private(AuthContext::of_principal("k", Some("bob"), None));
        assert!(cache.insert(key(None, alice), Box::from(&b"A"[..]), t0 + ttl, 1));
        assert_eq!(cache.get(&key(None, alice), t0, 1), Some(&b"A"[..]));
        assert_eq!(cache.get(&key(None, bob), t0, 1), None);
        assert_eq!(cache.get(&key(None, ScopeKey::Public), t0, 1), None);
        assert_eq!(cache.get(&key(Some("2"), alice), t0, 1), None);
        // Another epoch: gone for good.
        assert_eq!(cache.get(&key(None, alice), t0, 2), None);
        assert_eq!(cache.get(&key(None, alice), t0, 1), None);
        assert_eq!(cache.stats().invalidated, 1);
        assert!(cache.insert(
            key(None, ScopeKey::Public),
            Box::from(&b"P"[..]),
            t0 + ttl,
            2
        ));
        assert_eq!(cache.get(&key(None, ScopeKey::Public), t0 + ttl, 2), None);
        assert_eq!(cache.stats().expired, 1);
        assert!(cache.is_empty() && cache.bytes() == 0);
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut cache = ListCache::new(2, 1 << 20);
        let t = Instant::now() + Duration::from_secs(60);
        let now = Instant::now();
        cache.insert(key(Some("a"), ScopeKey::Public), Box::from(&b"a"[..]), t, 0);
        cache.insert(key(Some("b"), ScopeKey::Public), Box::from(&b"b"[..]), t, 0);
        assert!(cache
            .get(&key(Some("a"), ScopeKey::Public), now, 0)
            .is_some());
        cache.insert(key(Some("c"), ScopeKey::Public), Box::from(&b"c"[..]), t, 0);
        assert!(cache
            .get(&key(Some("b"), ScopeKey::Public), now, 0)
            .is_none());
        assert!(cache
            .get(&key(Some("a"), ScopeKey::Public), now, 0)
            .is_some());
        assert_eq!(cache.stats().evicted, 1);
        // Too large for the byte bound: not kept, nothing evicted for it.
        let mut small = ListCache::new(10, 200);
        assert!(!small.insert(key(None, ScopeKey::Public), vec![0u8; 500].into(), t, 0));
        assert!(small.is_empty());
    }
}
