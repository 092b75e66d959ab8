//! Per-upstream health of virtual APIs, for `/metrics` and `/api/summary`: whether each upstream
//! answered its last request (a shared stdio / SSE link: whether it is initialized), how many legs
//! failed, and how often a stdio process was restarted or an SSE stream reopened.
//! Process-wide (every worker reports here, under a mutex taken once per upstream leg of a
//! virtual API only: the pass-through path never touches it); rendered at scrape time from the
//! configuration current then, so upstreams a reload removed disappear.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::config::virtual_server::Transport;
use crate::config::Config;
use crate::observe::metrics::escape_label_value;

#[derive(Debug, Default, Clone, Copy)]
struct Health {
    up: bool,
    failures: u64,
}

fn table() -> &'static Mutex<BTreeMap<(String, String), Health>> {
    static TABLE: OnceLock<Mutex<BTreeMap<(String, String), Health>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// Notes how one leg to `upstream` of `api` ended (`ok`: it answered, even with a JSON-RPC error).
pub fn note(api: &str, upstream: &str, ok: bool) {
    let mut t = table().lock().unwrap_or_else(PoisonError::into_inner);
    let h = t.entry((api.to_owned(), upstream.to_owned())).or_default();
    h.up = ok;
    if !ok {
        h.failures += 1;
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

struct Row {
    api: String,
    upstream: String,
    /// `streamable-http`, `sse` or `stdio`.
    transport: &'static str,
    up: bool,
    failures: u64,
    restarts: Option<u64>,
}

/// Every virtual upstream of `config`, with what was noted about it.
fn rows(config: &Config) -> Vec<Row> {
    let t = table()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut rows = Vec::new();
    for api in &config.apis {
        let Some(server) = api.virtual_server.as_deref() else {
            continue;
        };
        for u in &server.upstreams {
            let h = t
                .get(&(api.name.clone(), u.name.clone()))
                .copied()
                .unwrap_or_default();
            let (up, restarts) = match &u.transport {
                Transport::Stdio(_) | Transport::Sse { .. } => {
                    let link = super::shared::link(&api.name, &u.name, &u.transport);
                    (
                        link.as_ref().is_some_and(|l| l.init().is_some()),
                        link.map(|l| l.restarts()),
                    )
                }
                Transport::Http { .. } => (h.up, None),
            };
            rows.push(Row {
                api: api.name.clone(),
                upstream: u.name.clone(),
                transport: match u.transport {
                    Transport::Http { .. } => "streamable-http",
                    Transport::Sse { .. } => "sse",
                    Transport::Stdio(_) => "stdio",
                },
                up,
                failures: h.failures,
                restarts,
            });
        }
    }
    rows
}

/// The `/metrics` families (called at scrape time with the snapshot current then).
pub fn render(config: &Config, out: &mut String) {
    let rows = rows(config);
    if rows.is_empty() {
        return;
    }
    let labels = |r: &Row| {
        format!(
            "api=\"{}\",upstream=\"{}\"",
            escape_label_value(&r.api),
            escape_label_value(&r.upstream)
        )
    };
    family(
            out,
            "mcpgate_virtual_upstream_up",
            "gauge",
            "Whether a virtual API's upstream answered its last request (stdio: its process is initialized; sse: its stream is connected and initialized).",
        );
    for r in &rows {
        let _ = writeln!(
            out,
            "mcpgate_virtual_upstream_up{{{}}} {}",
            labels(r),
            u8::from(r.up)
        );
    }
    family(
        out,
        "mcpgate_virtual_upstream_failures_total",
        "counter",
        "Requests to a virtual API's upstream that got no answer (down, timed out, malformed).",
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "mcpgate_virtual_upstream_failures_total{{{}}} {}",
            labels(r),
            r.failures
        );
    }
    family(
        out,
        "mcpgate_virtual_stdio_restarts_total",
        "counter",
        "Times a stdio upstream's process ended and was started again.",
    );
    for r in rows.iter().filter(|r| r.transport == "stdio") {
        let _ = writeln!(
            out,
            "mcpgate_virtual_stdio_restarts_total{{{}}} {}",
            labels(r),
            r.restarts.unwrap_or(0)
        );
    }
    if rows.iter().any(|r| r.transport == "sse") {
        family(
            out,
            "mcpgate_virtual_sse_reconnects_total",
            "counter",
            "Times a legacy HTTP+SSE upstream's stream ended (or could not be opened) and was opened again.",
        );
        for r in rows.iter().filter(|r| r.transport == "sse") {
            let _ = writeln!(
                out,
                "mcpgate_virtual_sse_reconnects_total{{{}}} {}",
                labels(r),
                r.restarts.unwrap_or(0)
            );
        }
    }
}

/// The `virtual_upstreams` member of `GET /api/summary`.
pub fn summary(config: &Config) -> Option<(&'static str, serde_json::Value)> {
    let rows = rows(config);
    (!rows.is_empty()).then(|| {
        (
            "virtual_upstreams",
            serde_json::Value::Array(
                rows.iter()
                    .map(|r| {
                        serde_json::json!({
                            "api": r.api, "upstream": r.upstream, "up": r.up,
                            "stdio": r.transport == "stdio", "transport": r.transport,
                            "failures": r.failures, "restarts": r.restarts,
                        })
                    })
                    .collect(),
            ),
        )
    })
}
