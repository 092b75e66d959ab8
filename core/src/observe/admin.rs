//! The admin API of observability as pure functions: the admin listener hands over method and
//! request target, gets back status, content type and body. `GET /` (the console and its assets),
//! `GET /manage` (the management forms),
//! `GET /metrics`, `GET /api/logs`, `GET /api/logs/{id}`, `GET /api/summary`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::hub::ObserveHub;
use super::record::{Label, Outcome, StoredRecord};
use super::shared::OTHER;
use super::tally::{SERIES_BUCKETS, SERIES_BUCKET_MS};

const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

const CONSOLE_HTML: &str = include_str!("console/index.html");
const CONSOLE_CSS: &str = include_str!("console/console.css");
const CONSOLE_JS: &str = include_str!("console/console.js");
// The management forms (crate::manage serves their API).
const MANAGE_HTML: &str = include_str!("console/manage.html");
const MANAGE_CSS: &str = include_str!("console/manage.css");
const MANAGE_JS: &str = include_str!("console/manage.js");

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
const TOP_N: usize = 10;

/// Status, content type, body.
pub type AdminResponse = (u16, &'static str, Vec<u8>);

/// Answers the observability routes; `None` means "not mine" (the admin listener goes on routing).
pub fn handle_admin(method: &str, path_and_query: &str, hub: &ObserveHub) -> Option<AdminResponse> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let route = match path {
        "/" | "/index.html" => Route::Asset(HTML, CONSOLE_HTML),
        "/console.css" => Route::Asset(CSS, CONSOLE_CSS),
        "/console.js" => Route::Asset(JS, CONSOLE_JS),
        "/manage" | "/manage.html" => Route::Asset(HTML, MANAGE_HTML),
        "/manage.css" => Route::Asset(CSS, MANAGE_CSS),
        "/manage.js" => Route::Asset(JS, MANAGE_JS),
        "/metrics" => Route::Metrics,
        "/api/logs" => Route::Logs,
        "/api/summary" => Route::Summary,
        p => match p.strip_prefix("/api/logs/") {
            Some(id) if !id.is_empty() => Route::Log(id),
            _ => return None,
        },
    };
    if method != "GET" && method != "HEAD" {
        return Some(error(405, "only GET is served here"));
    }
    Some(match route {
        Route::Asset(ct, body) => (200, ct, body.as_bytes().to_vec()),
        Route::Metrics => (
            200,
            super::metrics::CONTENT_TYPE,
            super::metrics::render(hub).into_bytes(),
        ),
        Route::Logs => match LogQuery::parse(query) {
            Ok(q) => json_response(&logs(hub, &q)),
            Err(msg) => error(400, &msg),
        },
        Route::Log(id) => match log_detail(hub, id) {
            Some(v) => json_response(&v),
            None => error(404, "no such record (it may have left the ring)"),
        },
        Route::Summary => json_response(&summary(hub, super::now_unix_ms())),
    })
}

enum Route<'a> {
    Asset(&'static str, &'static str),
    Metrics,
    Logs,
    Log(&'a str),
    Summary,
}

fn json_response(v: &impl Serialize) -> AdminResponse {
    match serde_json::to_vec(v) {
        Ok(body) => (200, JSON, body),
        Err(_) => error(500, "cannot serialize"),
    }
}

fn error(status: u16, message: &str) -> AdminResponse {
    (
        status,
        JSON,
        json!({ "error": message }).to_string().into_bytes(),
    )
}

/// Decodes `%XX` and `+` in a query component; invalid escapes are kept literally.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `status=` accepts an exact code or a class (`4xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusFilter {
    Exact(u16),
    Class(u16),
}

/// `error=` accepts `true`/`any` (any outcome but ok), `false`/`none`, or a JSON-RPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorFilter {
    Any,
    None,
    Code(i64),
}

#[derive(Debug, Default)]
pub struct LogQuery {
    api: Option<String>,
    method: Option<String>,
    target: Option<String>,
    status: Option<StatusFilter>,
    error: Option<ErrorFilter>,
    since: Option<u64>,
    until: Option<u64>,
    limit: usize,
    cursor: Option<(u64, u16, u64)>,
}

impl LogQuery {
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut q = LogQuery {
            limit: DEFAULT_LIMIT,
            ..Default::default()
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            if v.is_empty() {
                continue;
            }
            let bad = |what: &str| format!("{k}: {what}");
            match k {
                "api" => q.api = Some(v),
                "method" => q.method = Some(v),
                "target" => q.target = Some(v),
                "status" => {
                    q.status = Some(if let Some(class) = v.strip_suffix("xx") {
                        StatusFilter::Class(class.parse().map_err(|_| bad("expected 404 or 4xx"))?)
                    } else {
                        StatusFilter::Exact(v.parse().map_err(|_| bad("expected 404 or 4xx"))?)
                    })
                }
                "error" => {
                    q.error = Some(match v.as_str() {
                        "true" | "any" | "1" => ErrorFilter::Any,
                        "false" | "none" | "0" => ErrorFilter::None,
                        c => ErrorFilter::Code(
                            c.parse().map_err(|_| bad("expected any, none or a code"))?,
                        ),
                    })
                }
                "since" => q.since = Some(v.parse().map_err(|_| bad("expected unix ms"))?),
                "until" => q.until = Some(v.parse().map_err(|_| bad("expected unix ms"))?),
                "limit" => {
                    q.limit = v
                        .parse::<usize>()
                        .map_err(|_| bad("expected a number"))?
                        .clamp(1, MAX_LIMIT)
                }
                "cursor" => {
                    q.cursor = Some(parse_cursor(&v).ok_or_else(|| bad("malformed cursor"))?)
                }
                _ => {} // unknown parameters are ignored, as browsers add their own
            }
        }
        Ok(q)
    }

    fn matches(&self, s: &StoredRecord) -> bool {
        let r = &s.record;
        self.api.as_deref().is_none_or(|a| *r.api == *a)
            && self.method.as_deref().is_none_or(|m| *r.method == *m)
            && self
                .target
                .as_deref()
                .is_none_or(|t| r.target.as_deref().is_some_and(|rt| rt.contains(t)))
            && self.status.is_none_or(|f| match f {
                StatusFilter::Exact(c) => r.http_status == c,
                StatusFilter::Class(c) => r.http_status / 100 == c,
            })
            && self.error.is_none_or(|f| match f {
                ErrorFilter::Any => r.outcome() != Outcome::Ok,
                ErrorFilter::None => r.outcome() == Outcome::Ok,
                ErrorFilter::Code(c) => r.jsonrpc_error == Some(c),
            })
            && self.since.is_none_or(|t| r.time_ms >= t)
            && self.until.is_none_or(|t| r.time_ms <= t)
            && self.cursor.is_none_or(|c| s.order_key() < c)
    }
}

fn parse_cursor(s: &str) -> Option<(u64, u16, u64)> {
    let mut parts = s.split('.');
    let t = parts.next()?.parse().ok()?;
    let w = parts.next()?.parse().ok()?;
    let q = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((t, w, q))
}

fn format_cursor((t, w, q): (u64, u16, u64)) -> String {
    format!("{t}.{w}.{q}")
}

/// `GET /api/logs`: newest first; `next_cursor` fetches the following (older) page.
pub fn logs(hub: &ObserveHub, q: &LogQuery) -> serde_json::Value {
    let mut found = hub.records(|r| q.matches(r));
    found.sort_unstable_by_key(|r| std::cmp::Reverse(r.order_key()));
    let more = found.len() > q.limit;
    found.truncate(q.limit);
    let next_cursor = if more {
        found.last().map(|r| format_cursor(r.order_key()))
    } else {
        None
    };
    let records: Vec<_> = found.iter().map(|r| r.summary()).collect();
    json!({ "records": records, "next_cursor": next_cursor })
}

/// `GET /api/logs/{id}`: one record with its captured payloads.
fn log_detail(hub: &ObserveHub, id: &str) -> Option<serde_json::Value> {
    let (w, s) = id.split_once('.')?;
    let (w, s): (u16, u64) = (w.parse().ok()?, s.parse().ok()?);
    let found = hub.records(|r| r.worker == w && r.seq == s);
    let r: &Arc<StoredRecord> = found.first()?;
    serde_json::to_value(r.full()).ok()
}

#[derive(Serialize)]
struct NameCount {
    name: String,
    count: u64,
    errors: u64,
}

#[derive(Serialize)]
struct Percentiles {
    count: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn percentiles(h: &hdrhistogram::Histogram<u64>) -> Percentiles {
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

/// Which family a method's target belongs to, for the console's top lists.
fn target_family(method: &str) -> Option<&'static str> {
    if method.starts_with("tools/") {
        Some("tools")
    } else if method.starts_with("resources/") || method == "notifications/resources/updated" {
        Some("resources")
    } else if method.starts_with("prompts/") {
        Some("prompts")
    } else {
        None
    }
}

fn ranked(m: BTreeMap<String, (u64, u64)>, n: usize) -> Vec<NameCount> {
    let mut v: Vec<NameCount> = m
        .into_iter()
        .map(|(name, (count, errors))| NameCount {
            name,
            count,
            errors,
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    v.truncate(n);
    v
}

/// `GET /api/summary`: per API, what the console draws.
pub fn summary(hub: &ObserveHub, now_ms: u64) -> serde_json::Value {
    let merged = hub.merged();
    let t = &merged.tallies;

    #[derive(Default)]
    struct PerApi {
        requests: u64,
        errors: u64,
        denials: u64,
        methods: BTreeMap<String, (u64, u64)>,
        targets: BTreeMap<&'static str, BTreeMap<String, (u64, u64)>>,
        errors_by_target: BTreeMap<String, (u64, u64)>,
        errors_by_code: BTreeMap<String, (u64, u64)>,
        outcomes: BTreeMap<&'static str, u64>,
    }
    let mut apis: BTreeMap<Label, PerApi> = BTreeMap::new();
    for (k, n) in &t.requests {
        let a = apis.entry(k.api.clone()).or_default();
        let failed = k.outcome != Outcome::Ok;
        let e = if failed { *n } else { 0 };
        a.requests += n;
        a.errors += e;
        if k.outcome == Outcome::Denied {
            a.denials += n;
        }
        *a.outcomes.entry(k.outcome.as_str()).or_default() += n;
        let m = a.methods.entry(k.method.to_string()).or_default();
        m.0 += n;
        m.1 += e;
        if let Some(target) = &k.target {
            if let Some(family) = target_family(&k.method) {
                let x = a
                    .targets
                    .entry(family)
                    .or_default()
                    .entry(target.to_string())
                    .or_default();
                x.0 += n;
                x.1 += e;
            }
            if failed {
                a.errors_by_target.entry(target.to_string()).or_default().0 += n;
            }
        }
    }
    for ((api, code), n) in &t.jsonrpc_errors {
        let code = code.map_or_else(|| OTHER.to_string(), |c| c.to_string());
        apis.entry(api.clone())
            .or_default()
            .errors_by_code
            .entry(code)
            .or_default()
            .0 += n;
    }

    let newest_bucket = now_ms / SERIES_BUCKET_MS;
    let first_bucket = newest_bucket.saturating_sub(SERIES_BUCKETS - 1);
    let per_api: Vec<serde_json::Value> = apis
        .into_iter()
        .map(|(api, mut a)| {
            let points = t.series.get(&api);
            let series: Vec<_> = (first_bucket..=newest_bucket)
                .map(|b| {
                    let p = points.and_then(|p| p.get(&b)).copied().unwrap_or_default();
                    json!({ "t": b * SERIES_BUCKET_MS, "requests": p.requests, "errors": p.errors })
                })
                .collect();
            let mut all = hdrhistogram::Histogram::<u64>::new(2).ok();
            let mut by_method = Vec::new();
            for ((lat_api, method), l) in &t.latency {
                if *lat_api != api {
                    continue;
                }
                if let Some(all) = all.as_mut() {
                    let _ = all.add(&l.hist);
                }
                by_method.push(json!({ "method": &**method, "latency": percentiles(&l.hist) }));
            }
            by_method.sort_by(|x, y| x["method"].as_str().cmp(&y["method"].as_str()));
            let mut top = serde_json::Map::new();
            for family in ["tools", "resources", "prompts"] {
                let m = a.targets.remove(family).unwrap_or_default();
                top.insert(
                    family.to_string(),
                    serde_json::to_value(ranked(m, TOP_N)).unwrap_or_default(),
                );
            }
            json!({
                "api": &*api,
                "requests": a.requests,
                "errors": a.errors,
                "denials": a.denials,
                "outcomes": a.outcomes,
                "series": series,
                "methods": ranked(a.methods, usize::MAX),
                "top": top,
                "errors_by_code": ranked(a.errors_by_code, TOP_N),
                "errors_by_target": ranked(a.errors_by_target, TOP_N),
                "latency": all.as_ref().filter(|h| !h.is_empty()).map(percentiles),
                "latency_by_method": by_method,
            })
        })
        .collect();
    let mut out = json!({
        "now_ms": now_ms,
        "bucket_ms": SERIES_BUCKET_MS,
        "version": hub.config().version,
        "uptime_s": now_ms.saturating_sub(hub.inner.started_ms) / 1000,
        "exchanges_recorded": merged.recorded,
        "connections_active": merged.connections_active,
        "sse_streams_open": merged.sse_streams_open,
        "log_records_dropped": hub.log_records_dropped(),
        "apis": per_api,
    });
    for source in hub.sources() {
        if let (Some((name, value)), Some(obj)) = (source.summary(), out.as_object_mut()) {
            obj.insert(name.to_string(), value);
        }
    }
    out
}
