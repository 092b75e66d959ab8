// mcpgate traffic console: polls api/summary and api/logs every 2 s and draws them.
// Plain DOM + SVG, no dependencies; every server string goes through textContent or esc().
"use strict";

const REFRESH_MS = 2000;
const state = { api: null, summary: null, cursor: null, pageStack: [], selected: null, failures: 0, pinned: false };
// console/#api=NAME opens that API's traffic (the management page lands here after a deploy),
// even before it has any.
const linkedApi = /^#api=(.+)$/.exec(location.hash);
if (linkedApi) { state.api = decodeURIComponent(linkedApi[1]); state.pinned = true; }
const $ = (id) => document.getElementById(id);

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function fmtInt(n) { return (n ?? 0).toLocaleString("en-US"); }
function fmtMs(ms) {
  if (ms == null) return "–";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 1000) return (ms < 10 ? ms.toFixed(1) : Math.round(ms)) + " ms";
  return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
}
function fmtBytes(b) {
  if (b == null) return "–";
  if (b < 1024) return b + " B";
  if (b < 1048576) return (b / 1024).toFixed(1) + " KB";
  return (b / 1048576).toFixed(1) + " MB";
}
function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString("en-GB", { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function fmtUptime(s) {
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  // The session cookie expired (or the token was rotated): sign in again.
  if (r.status === 401) { location.replace("login"); throw new Error("signed out"); }
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

function setLive(ok, text) {
  $("live-dot").className = "dot " + (ok ? "on" : "off");
  $("live-text").textContent = text;
}

// ---------- summary ----------

function renderFacts(s) {
  const facts = [
    ["exchanges", fmtInt(s.exchanges_recorded)],
    ["connections", fmtInt(s.connections_active)],
    ["SSE streams", fmtInt(s.sse_streams_open)],
    ["log drops", fmtInt(s.log_records_dropped)],
    ["up", fmtUptime(s.uptime_s)],
    ["v", esc(s.version)],
  ];
  $("facts").innerHTML = facts.map(([k, v]) => `<span>${k} <b>${v}</b></span>`).join("");
}

// Tool integrity (GET /api/summary's `integrity`): the API's pin findings and cache counters.
function integrityOf(s, api) {
  const all = (s.integrity && s.integrity.apis) || [];
  return all.find((x) => x.api === api) || null;
}

function integrityBadge(s, api) {
  const i = integrityOf(s, api);
  const n = i && i.pin ? i.pin.findings.length : 0;
  if (!n) return "";
  const blocked = i.pin.blocked;
  const title = `${n} tool/prompt definition(s) changed since pinned (on_change = ${i.pin.policy})`;
  return `<span class="badge${blocked ? " block" : ""}" title="${esc(title)}">${blocked ? "blocked" : "⚠ " + n}</span>`;
}

function renderIntegrity(s, api) {
  const i = integrityOf(s, api);
  $("integrity-card").classList.toggle("hidden", !i);
  if (!i) return;
  const facts = [];
  if (i.pin) facts.push(`pins: ${esc(i.pin.file)}${i.pin.trust_on_first_use ? " (trust on first use)" : ""}, on change: <b>${esc(i.pin.policy)}</b>`);
  if (i.cache) facts.push(`list cache: ${fmtInt(i.cache.hits)} hits, ${fmtInt(i.cache.misses)} misses, ${fmtInt(i.cache.evictions)} evictions, ${fmtBytes(i.cache.bytes)}`);
  $("integrity-sub").textContent = "· " + i.upstream;
  const findings = i.pin ? i.pin.findings : [];
  $("integrity").innerHTML =
    `<div class="facts">${facts.join(" · ")}</div>` +
    (findings.length === 0
      ? `<div class="none">${i.pin ? "Every tool and prompt matches its pin" : "No pins"}</div>`
      : findings
          .map((f) => `<div class="finding"><span class="what mono">${esc(f.kind)} ${esc(f.name)}</span><span class="change">${esc(f.change)}</span><pre class="diff">${esc(f.diff.join("\n"))}</pre></div>`)
          .join(""));
}

// A virtual API's upstreams (GET /api/summary's `virtual_upstreams`): up or down, failures, restarts.
function renderUpstreams(s, api) {
  const rows = (s.virtual_upstreams || []).filter((r) => r.api === api);
  $("upstreams-card").classList.toggle("hidden", rows.length === 0);
  $("upstreams").innerHTML = rows
    .map((r) => {
      const state = r.up ? `<span class="badge ok">up</span>` : `<span class="badge error">down</span>`;
      const restarts = r.restarts == null ? "" : ` · ${fmtInt(r.restarts)} restart(s)`;
      return `<tr data-upstream="${esc(r.upstream)}"><td class="mono">${esc(r.upstream)}</td><td>${esc(r.transport)}</td><td>${state}</td><td>${fmtInt(r.failures)} failed leg(s)${restarts}</td></tr>`;
    })
    .join("");
}

function renderTabs(s) {
  const names = s.apis.map((a) => a.api);
  if (!names.includes(state.api) && !state.pinned) {
    // Start on the busiest API.
    const busiest = s.apis.slice().sort((x, y) => y.requests - x.requests)[0];
    state.api = busiest ? busiest.api : null;
  }
  $("api-tabs").innerHTML = s.apis
    .map((a) => `<button data-api="${esc(a.api)}" class="${a.api === state.api ? "active" : ""}">${esc(a.api || "(unrouted)")}<span class="count">${fmtInt(a.requests)}</span>${integrityBadge(s, a.api)}</button>`)
    .join("");
  const sel = $("f-api");
  const current = sel.value;
  const wanted = ['<option value="">all</option>'].concat(names.map((n) => `<option value="${esc(n)}">${esc(n || "(unrouted)")}</option>`)).join("");
  if (sel.dataset.names !== names.join("\u0000")) {
    sel.innerHTML = wanted;
    sel.value = current;
    sel.dataset.names = names.join("\u0000");
  }
}

function kpi(label, value, unit, bad) {
  return `<div class="kpi${bad ? " bad" : ""}"><div class="label">${label}</div><div class="value">${value}${unit ? `<small>${unit}</small>` : ""}</div></div>`;
}

function renderKpis(a) {
  const rate = a.requests ? (100 * a.errors) / a.requests : 0;
  const lat = a.latency || {};
  $("kpis").innerHTML = [
    kpi("Exchanges", fmtInt(a.requests)),
    kpi("Failures", rate.toFixed(rate > 0 && rate < 10 ? 1 : 0), "%", rate > 0),
    kpi("ACL denials", fmtInt(a.denials), "", a.denials > 0),
    kpi("p50", fmtMs(lat.p50_ms)),
    kpi("p90", fmtMs(lat.p90_ms)),
    kpi("p99", fmtMs(lat.p99_ms)),
  ].join("");
}

// A round step giving about four gridlines, and the top of the axis as a whole number of steps.
function axis(v) {
  const raw = Math.max(1, v) / 4;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw));
  return { step, top: step * Math.max(1, Math.ceil(v / step)) };
}

function renderChart(a) {
  const W = 1200, H = 200, L = 44, R = 8, T = 10, B = 24;
  const pts = a.series;
  const { step, top: max } = axis(Math.max(1, ...pts.map((p) => p.requests)));
  const bw = (W - L - R) / pts.length;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  let svg = `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="traffic over time">`;
  for (let v = 0; v <= max; v += step) {
    const yy = y(v);
    svg += `<line class="axis" x1="${L}" x2="${W - R}" y1="${yy}" y2="${yy}"/>`;
    svg += `<text x="${L - 6}" y="${yy + 4}" text-anchor="end">${fmtInt(Math.round(v))}</text>`;
  }
  pts.forEach((p, i) => {
    const x = L + i * bw + 1, w = Math.max(1, bw - 2);
    const ok = p.requests - p.errors;
    const tip = `<title>${fmtTime(p.t).slice(0, 8)} · ${p.requests} exchanges, ${p.errors} failed</title>`;
    if (ok > 0) svg += `<rect class="bar-ok" x="${x}" y="${y(p.requests)}" width="${w}" height="${y(p.errors) - y(p.requests)}">${tip}</rect>`;
    if (p.errors > 0) svg += `<rect class="bar-err" x="${x}" y="${y(p.errors)}" width="${w}" height="${y(0) - y(p.errors)}">${tip}</rect>`;
    if (i % 18 === 0 || i === pts.length - 1) {
      const label = i === pts.length - 1 ? "now" : "-" + Math.round(((pts.length - 1 - i) * 10) / 60) + " min";
      svg += `<text x="${x + w / 2}" y="${H - 6}" text-anchor="middle">${label}</text>`;
    }
  });
  svg += "</svg>";
  $("chart").innerHTML = svg;
}

function bars(el, rows, opts = {}) {
  if (!rows || rows.length === 0) {
    $(el).innerHTML = `<div class="none">${opts.empty || "Nothing yet"}</div>`;
    return;
  }
  const max = Math.max(...rows.map((r) => r.count));
  $(el).innerHTML =
    `<div class="bars${opts.red ? " red" : ""}">` +
    rows
      .map((r) => {
        const okPart = opts.red ? r.count : r.count - (r.errors || 0);
        const errPart = opts.red ? 0 : r.errors || 0;
        return `<div class="bar-row"><span class="name" title="${esc(r.name)}">${esc(r.name)}</span>` +
          `<span class="n">${fmtInt(r.count)}${errPart ? `<span class="e">${fmtInt(errPart)} ${opts.errLabel || "failed"}</span>` : ""}</span>` +
          `<div class="track"><div class="fill" style="width:${(100 * okPart) / max}%"></div>` +
          `<div class="fill err" style="width:${(100 * errPart) / max}%"></div></div></div>`;
      })
      .join("") +
    "</div>";
}

function renderLatency(a) {
  const rows = a.latency_by_method || [];
  if (rows.length === 0) {
    $("latency").innerHTML = '<div class="none">No request has completed yet</div>';
    return;
  }
  $("latency").innerHTML =
    '<table><thead><tr><th>Method</th><th class="num">Count</th><th class="num">p50</th><th class="num">p90</th><th class="num">p99</th><th class="num">Max</th></tr></thead><tbody>' +
    rows
      .map((r) => `<tr><td class="mono">${esc(r.method)}</td><td class="num">${fmtInt(r.latency.count)}</td><td class="num">${fmtMs(r.latency.p50_ms)}</td><td class="num">${fmtMs(r.latency.p90_ms)}</td><td class="num">${fmtMs(r.latency.p99_ms)}</td><td class="num">${fmtMs(r.latency.max_ms)}</td></tr>`)
      .join("") +
    "</tbody></table>";
}

function renderSummary(s) {
  state.summary = s;
  renderFacts(s);
  renderTabs(s);
  const a = s.apis.find((x) => x.api === state.api);
  $("empty-title").textContent = state.pinned && !a ? `No traffic recorded yet for API ${state.api}` : "No traffic recorded yet";
  document.body.dataset.api = state.api || "";
  renderUpstreams(s, state.api);
  $("empty").classList.toggle("hidden", !!a);
  $("overview").classList.toggle("hidden", !a);
  if (!a) return;
  renderKpis(a);
  renderIntegrity(s, a.api);
  renderChart(a);
  bars("methods", a.methods, { empty: "No methods yet" });
  bars("top-tools", a.top.tools, { empty: "No tool called yet" });
  bars("top-resources", a.top.resources, { empty: "No resource read yet" });
  bars("top-prompts", a.top.prompts, { empty: "No prompt fetched yet" });
  bars("errors-code", a.errors_by_code, { red: true, empty: "No JSON-RPC error 🎉" });
  bars("errors-target", a.errors_by_target, { red: true, empty: "No failed call" });
  renderLatency(a);
}

// ---------- log ----------

function logQuery() {
  const f = new FormData($("filters"));
  const q = new URLSearchParams();
  for (const k of ["api", "method", "target", "status", "error"]) {
    const v = String(f.get(k) || "").trim();
    if (v) q.set(k, v);
  }
  const win = Number(f.get("window") || 0);
  if (win) q.set("since", String(Date.now() - win));
  q.set("limit", "50");
  if (state.cursor) q.set("cursor", state.cursor);
  return q.toString();
}

function outcomeBadge(o) {
  const label = { ok: "ok", error: "error", denied: "denied", throttled: "throttled", http_error: "http error", tool_error: "tool error", upstream_error: "upstream", timeout: "timeout" }[o] || o;
  return `<span class="badge ${esc(o)}">${esc(label)}</span>`;
}

function renderLog(page) {
  const rows = page.records || [];
  $("log-empty").classList.toggle("hidden", rows.length > 0);
  $("log-rows").innerHTML = rows
    .map((r) => {
      const err = r.jsonrpc_error != null ? ` <span class="kind">${esc(r.jsonrpc_error)}</span>` : "";
      return `<tr data-id="${esc(r.id)}" class="${r.id === state.selected ? "selected" : ""}">` +
        `<td class="mono">${fmtTime(r.time_ms)}</td><td>${esc(r.api)}</td><td class="kind">${esc(r.kind.replace("_", " "))}</td>` +
        `<td class="mono">${esc(r.method)}</td><td class="mono" title="${esc(r.target)}">${esc(r.target ?? "")}</td>` +
        `<td>${esc(r.subject ?? "")}</td><td class="num">${r.status || "–"}</td><td>${outcomeBadge(r.outcome)}${err}</td>` +
        `<td class="num">${fmtMs(r.total_us / 1000)}</td><td class="num">${fmtBytes(r.request_bytes)} / ${fmtBytes(r.response_bytes)}</td></tr>`;
    })
    .join("");
  $("log-count").textContent = rows.length ? `${rows.length} shown${page.next_cursor ? ", more below" : ""}` : "";
  $("older").classList.toggle("hidden", !page.next_cursor);
  $("older").dataset.cursor = page.next_cursor || "";
  $("newest").classList.toggle("hidden", !state.cursor);
}

function field(k, v) { return `<dt>${esc(k)}</dt><dd>${v == null || v === "" ? "–" : esc(v)}</dd>`; }

function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (_) { return text; }
}

function payloadBlock(title, body, headers) {
  let h = "";
  if (headers && headers.length) {
    h += `<h4>${title} headers</h4><pre class="payload">${headers.map((x) => esc(x.name) + ": " + esc(x.value)).join("\n")}</pre>`;
  }
  if (body) {
    h += `<h4>${title} body${body.truncated ? ` <span class="muted">· cut at ${fmtBytes(body.text.length)} of ${fmtBytes(body.original_bytes)}</span>` : ""}</h4>`;
    h += `<pre class="payload">${esc(pretty(body.text))}</pre>`;
  }
  return h;
}

async function showDetail(id) {
  state.selected = id;
  document.querySelectorAll("#log-rows tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.id === id));
  let r;
  try { r = await getJson("api/logs/" + encodeURIComponent(id)); } catch (e) {
    $("detail-body").innerHTML = `<p class="note">This exchange is no longer in memory.</p>`;
    $("detail").classList.remove("hidden");
    return;
  }
  $("detail-title").textContent = `${r.method}${r.target ? " · " + r.target : ""}`;
  let h = '<dl class="fields">' +
    field("time", new Date(r.time_ms).toISOString()) + field("api", r.api) + field("kind", r.kind) +
    field("outcome", r.outcome) + field("HTTP status", r.status || null) + field("JSON-RPC error", r.jsonrpc_error) +
    field("ACL", r.acl ? r.acl.replace("_", " ") + (r.acl_rule ? " (rule " + r.acl_rule + ")" : r.acl === "deny" ? " (implicit)" : "") : null) +
    field("Rate limit", r.limit_rule ? "throttled by " + r.limit_rule : null) +
    field("subject", r.subject) + field("session", r.session) + field("client", r.client) +
    field("upstream", r.upstream) + field("upstream failure", r.upstream_failure) +
    field("first byte", fmtMs(r.first_byte_us / 1000)) + field("complete", fmtMs(r.total_us / 1000)) +
    field("request", fmtBytes(r.request_bytes)) + field("response", fmtBytes(r.response_bytes)) + field("id", r.id) +
    "</dl>";
  if (r.capture) {
    h += payloadBlock("Request", r.capture.request_body, r.capture.request_headers);
    h += payloadBlock("Response", r.capture.response_body, r.capture.response_headers);
  } else {
    h += '<p class="note">Payload capture is off for this API (it is off by default; secrets are redacted when on).</p>';
  }
  $("detail-body").innerHTML = h;
  $("detail").classList.remove("hidden");
}

// ---------- wiring ----------

// The rate-limit rules' counters, read from /metrics (they live outside the exchange log).
const LIMIT_LINE = /^mcpgate_ratelimit_decisions_total\{api="((?:[^"\\]|\\.)*)",rule="((?:[^"\\]|\\.)*)",decision="(allowed|refused)"\} (\d+)/;
async function refreshLimits() {
  const r = await fetch("metrics", { cache: "no-store" });
  if (!r.ok) return;
  const rows = new Map();
  for (const line of (await r.text()).split("\n")) {
    const m = LIMIT_LINE.exec(line);
    if (!m) continue;
    const name = `${m[1]} · ${m[2]}`;
    const row = rows.get(name) || { name, count: 0, errors: 0 };
    row.count += Number(m[4]);
    if (m[3] === "refused") row.errors += Number(m[4]);
    rows.set(name, row);
  }
  bars("limits", [...rows.values()], { empty: "No rate limit rule", errLabel: "refused" });
}

async function refreshLog() {
  renderLog(await getJson("api/logs?" + logQuery()));
}

async function refresh() {
  try {
    const [s] = await Promise.all([getJson("api/summary"), state.cursor ? Promise.resolve() : refreshLog()]);
    renderSummary(s);
    refreshLimits().catch(() => {});
    state.failures = 0;
    setLive(true, "live · " + new Date().toLocaleTimeString("en-GB", { hour12: false }));
  } catch (e) {
    state.failures++;
    setLive(false, "gateway unreachable, retrying");
  }
}

$("api-tabs").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-api]");
  if (!b) return;
  state.api = b.dataset.api;
  state.pinned = false;
  if (state.summary) renderSummary(state.summary);
});
$("filters").addEventListener("input", () => { state.cursor = null; state.pageStack = []; refreshLog().catch(() => {}); });
$("filters").addEventListener("reset", () => setTimeout(() => { state.cursor = null; refreshLog().catch(() => {}); }, 0));
$("filters").addEventListener("submit", (e) => e.preventDefault());
$("older").addEventListener("click", () => {
  state.pageStack.push(state.cursor);
  state.cursor = $("older").dataset.cursor || null;
  refreshLog().catch(() => {});
});
$("newest").addEventListener("click", () => { state.cursor = null; state.pageStack = []; refreshLog().catch(() => {}); });
$("log-rows").addEventListener("click", (e) => {
  const tr = e.target.closest("tr[data-id]");
  if (tr) showDetail(tr.dataset.id);
});
$("detail-close").addEventListener("click", () => { $("detail").classList.add("hidden"); state.selected = null; });
document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("detail-close").click(); });

refresh();
setInterval(refresh, REFRESH_MS);
// A link such as console/#exchange=0.42 opens that exchange's detail.
const linked = /^#exchange=([0-9]+\.[0-9]+)$/.exec(location.hash);
if (linked) showDetail(linked[1]);
