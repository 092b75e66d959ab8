// mcpgate management page: edits the config file's APIs through /api/manage (the file stays the
// source of truth; every deploy is validated by the gateway's loader, written atomically and
// reloaded). Plain DOM, no dependencies; server strings go through textContent or esc().
// Writes carry the session's CSRF token (GET api/session) and the file's version (409 when
// someone else deployed meanwhile).
"use strict";

const $ = (id) => document.getElementById(id);
const st = { version: null, editable: false, apis: [], current: null, original: null, csrf: null, live: null, marker: "********" };

// Gravitee's form: per feature, a "list" box and a "call" box, as MCP methods.
const FEATURES = {
  TOOLS: { list: ["tools/list"], call: ["tools/call"], listLabel: "tools/list", callLabel: "tools/call", live: "tools", key: "name" },
  RESOURCES: { list: ["resources/list", "resources/templates/list"], call: ["resources/read", "resources/subscribe"], listLabel: "resources/list", callLabel: "resources/read", live: "resources", key: "uri" },
  PROMPTS: { list: ["prompts/list"], call: ["prompts/get"], listLabel: "prompts/list", callLabel: "prompts/get", live: "prompts", key: "name" },
};
const METHOD_NAMES = {
  TOOLS_LIST: "tools/list", TOOLS_CALL: "tools/call", RESOURCES_LIST: "resources/list", RESOURCES_READ: "resources/read",
  RESOURCES_TEMPLATES_LIST: "resources/templates/list", RESOURCES_SUBSCRIBE: "resources/subscribe",
  PROMPTS_LIST: "prompts/list", PROMPTS_GET: "prompts/get",
};

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

async function call(method, url, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && st.csrf) headers["X-CSRF-Token"] = st.csrf;
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store", credentials: "same-origin" });
  if (r.status === 401) { location.replace("login"); throw new Error("signed out"); }
  let json = {};
  try { json = await r.json(); } catch (_) { /* not JSON */ }
  return { status: r.status, json };
}

function setStatus(text) { $("status").textContent = text; }

// ---------- APIs and history ----------

async function loadApis() {
  const { status, json } = await call("GET", "api/manage/apis");
  if (status !== 200) { showMessages([json.error || "HTTP " + status]); return; }
  st.version = json.version;
  st.apis = json.apis || [];
  $("api-list").innerHTML = st.apis
    .map((a) => `<li><button type="button" data-api="${esc(a.name)}" class="${a.name === st.current ? "active" : ""}">${esc(a.name)}<span class="path">${esc(a.path)} → ${esc(a.upstream)}</span></button></li>`)
    .join("");
}

async function loadStatus() {
  const { status, json } = await call("GET", "api/manage");
  if (status !== 200) {
    $("not-editable").textContent = json.error || "HTTP " + status;
    return;
  }
  st.editable = !!json.editable;
  st.marker = json.secret_marker || st.marker;
  $("file-facts").innerHTML = `<span>file <b>${esc(json.file || "(embedded default)")}</b></span><span>version <b id="version">${esc(json.version)}</b></span>`;
  $("not-editable").textContent = json.editable ? "" : json.reason || "";
  $("deploy").disabled = !json.editable;
}

async function loadHistory() {
  const { status, json } = await call("GET", "api/manage/history");
  if (status !== 200) return;
  $("history").innerHTML = (json.entries || [])
    .map((e) => `<li><span>${esc(new Date(e.time_ms).toLocaleString("en-GB", { hour12: false }))}<br><code>${esc(e.version.slice(7, 19))}</code></span>${e.current ? '<span class="muted">current</span>' : `<button type="button" class="ghost" data-rollback="${esc(e.id)}">Roll back</button>`}</li>`)
    .join("") || '<li class="muted">Nothing deployed from here yet.</li>';
}

// ---------- the form ----------

function methodName(m) { return METHOD_NAMES[m] || m; }

function ruleToForm(rule) {
  const methods = (rule.methods || []).map(methodName);
  let type = String(rule.type || "").toUpperCase();
  if (!FEATURES[type]) {
    type = Object.keys(FEATURES).find((t) => methods.some((m) => FEATURES[t].list.concat(FEATURES[t].call).includes(m))) || "TOOLS";
  }
  const f = FEATURES[type];
  const all = methods.length === 0; // a typed rule without methods grants all of them
  const extra = clone(rule);
  for (const k of ["type", "methods", "names", "pattern", "condition"]) delete extra[k];
  return {
    type,
    list: all || methods.some((m) => f.list.includes(m)),
    call: all || methods.some((m) => f.call.includes(m)),
    ptype: rule.names ? "LITERAL" : rule.pattern ? "EXPRESSION" : "ANY",
    pattern: rule.names ? rule.names.join(", ") : rule.pattern || "",
    condition: rule.condition || "",
    extra,
  };
}

function addRule(r) {
  const node = $("rule-template").content.firstElementChild.cloneNode(true);
  node.dataset.extra = JSON.stringify(r.extra || {});
  node.querySelector(".r-type").value = r.type;
  node.querySelector(".r-list").checked = r.list;
  node.querySelector(".r-call").checked = r.call;
  node.querySelector(".r-ptype").value = r.ptype;
  node.querySelector(".r-pattern").value = r.pattern;
  node.querySelector(".r-condition").value = r.condition;
  $("rules").appendChild(node);
  refreshRules();
}

function readRule(node) {
  return {
    type: node.querySelector(".r-type").value,
    list: node.querySelector(".r-list").checked,
    call: node.querySelector(".r-call").checked,
    ptype: node.querySelector(".r-ptype").value,
    pattern: node.querySelector(".r-pattern").value.trim(),
    condition: node.querySelector(".r-condition").value.trim(),
    extra: JSON.parse(node.dataset.extra || "{}"),
  };
}

function formToRule(r) {
  const f = FEATURES[r.type];
  const rule = Object.assign({}, r.extra, { type: r.type, methods: [].concat(r.list ? f.list : [], r.call ? f.call : []) });
  if (r.ptype === "LITERAL") rule.names = r.pattern.split(",").map((s) => s.trim()).filter(Boolean);
  if (r.ptype === "EXPRESSION") rule.pattern = r.pattern;
  if (r.condition) rule.condition = r.condition;
  return rule;
}

function ruleMatcher(r) {
  if (r.ptype === "ANY") return () => true;
  if (r.ptype === "LITERAL") {
    const names = new Set(r.pattern.split(",").map((s) => s.trim()).filter(Boolean));
    return (n) => names.has(n);
  }
  try {
    const re = new RegExp("^(?:" + r.pattern + ")$");
    return (n) => re.test(n);
  } catch (_) {
    return () => false;
  }
}

function ruleError(r) {
  if (!r.list && !r.call) return "Tick list and/or call: a rule without methods grants nothing.";
  if (r.ptype !== "ANY" && !r.pattern) return r.ptype + " needs a pattern.";
  if (r.ptype === "EXPRESSION") {
    try { new RegExp("^(?:" + r.pattern + ")$"); } catch (e) { return "Not a valid regular expression: " + e.message; }
  }
  return "";
}

// Labels, inline errors and, with the live lists loaded, what each rule lets through.
function refreshRules() {
  const nodes = Array.from($("rules").children);
  nodes.forEach((node, i) => {
    const r = readRule(node);
    const f = FEATURES[r.type];
    node.querySelector(".rule-title").textContent = "Rule " + (i + 1);
    node.querySelector(".r-list-label").textContent = f.listLabel;
    node.querySelector(".r-call-label").textContent = f.callLabel;
    node.querySelector(".r-pattern").disabled = r.ptype === "ANY";
    const err = ruleError(r);
    node.querySelector(".r-error").textContent = err;
    node.querySelector(".r-pattern").classList.toggle("invalid", !!err && r.ptype !== "ANY" && (r.list || r.call));
    const preview = node.querySelector(".r-preview");
    if (!st.live) { preview.textContent = "Load the live server to see what this rule lets through."; return; }
    const items = (st.live[f.live] || []).map((x) => x[f.key]).filter(Boolean);
    const match = ruleMatcher(r);
    const through = items.filter(match);
    const how = [r.list ? "listed" : "", r.call ? "callable" : ""].filter(Boolean).join(" and ") || "nothing";
    preview.textContent = err ? "" : `Lets through ${through.length} of ${items.length} live ${f.live} (${how})${r.condition ? " when the condition holds" : ""}: ${through.join(", ") || "none"}`;
    preview.dataset.count = String(through.length);
  });
  renderLive();
}

function renderLive() {
  if (!st.live) { $("live").innerHTML = '<p class="none">Not loaded.</p>'; return; }
  const aclOn = $("acl-enabled").checked;
  const rules = Array.from($("rules").children).map(readRule).filter((r) => !ruleError(r));
  const judge = (type, name, box) => !aclOn || rules.some((r) => r.type === type && r[box] && ruleMatcher(r)(name));
  const rows = [];
  for (const type of Object.keys(FEATURES)) {
    const f = FEATURES[type];
    for (const item of st.live[f.live] || []) {
      const name = item[f.key];
      const listed = judge(type, name, "list");
      const callable = judge(type, name, "call");
      rows.push(`<tr data-kind="${f.live}" data-name="${esc(name)}" data-listed="${listed}" data-callable="${callable}"><td>${esc(f.live)}</td><td><code>${esc(name)}</code></td><td class="${listed ? "yes" : "no"}">${listed ? "listed" : "hidden"}</td><td class="${callable ? "yes" : "no"}">${callable ? "callable" : "refused"}</td></tr>`);
    }
  }
  const errors = Object.entries(st.live.errors || {}).map(([k, v]) => `<p class="field-error">${esc(k)}: ${esc(v)}</p>`).join("");
  $("live").innerHTML = errors + `<table class="live-list" id="live-table"><thead><tr><th>Kind</th><th>Name</th><th>List</th><th>Call</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

async function loadLive() {
  const upstream = $("f-upstream").value.trim();
  const sameAsFile = st.current && st.original && st.original.upstream === upstream;
  $("live-sub").textContent = "· loading…";
  const url = sameAsFile ? "api/manage/apis/" + encodeURIComponent(st.current) + "/live" : "api/manage/live?upstream=" + encodeURIComponent(upstream);
  const { status, json } = await call("GET", url);
  if (status !== 200) {
    st.live = null;
    $("live-sub").textContent = "· " + (json.error || "HTTP " + status);
  } else {
    st.live = json;
    $("live-sub").textContent = `· ${(json.tools || []).length} tools, ${(json.prompts || []).length} prompts, ${(json.resources || []).length} resources`;
  }
  refreshRules();
}

function fieldErrors() {
  const errors = {};
  const path = $("f-path").value.trim();
  const upstream = $("f-upstream").value.trim();
  if (!path) errors.path = "Required.";
  else if (!path.startsWith("/")) errors.path = "Starts with /.";
  if (!upstream) errors.upstream = "Required.";
  else if (!/^https?:\/\/[^/\s]+/.test(upstream)) errors.upstream = "An http:// or https:// URL.";
  if ($("f-plan").value === "api_key" && !$("f-keys").value.trim()) errors.plan = "Give at least one key.";
  const limits = $("f-limits").value.trim();
  if (limits) {
    try {
      const parsed = JSON.parse(limits);
      if (typeof parsed !== "object" || parsed === null) errors.limit = "A JSON array of rules (or one rule).";
    } catch (e) {
      errors.limit = "Not JSON: " + e.message;
    }
  }
  if ($("acl-enabled").checked && !$("acl-file-note").dataset.file) {
    const bad = Array.from($("rules").children).map(readRule).map(ruleError).filter(Boolean);
    if (bad.length) errors.acl = "Fix the rules above.";
  }
  return errors;
}

function showFieldErrors(errors) {
  document.querySelectorAll(".field-error[data-for]").forEach((s) => { s.textContent = errors[s.dataset.for] || ""; });
  document.querySelectorAll("[data-field]").forEach((i) => i.classList.toggle("invalid", !!errors[i.dataset.field]));
}

function showMessages(messages, warnings) {
  $("messages").innerHTML = (messages || []).map((m) => `<li>${esc(m)}</li>`).join("") +
    (warnings || []).map((w) => `<li class="warn">warning: ${esc(w)}</li>`).join("");
}

// The loader's messages name the field (`FILE:LINE:COL: api[2].upstream: …`): shown under it too.
function placeServerMessages(messages) {
  const errors = {};
  for (const m of messages || []) {
    const at = /api\[\d+\]\.([a-z_]+)/.exec(m);
    const field = at && ({ name: "name", path: "path", upstream: "upstream", plan: "plan", acl: "acl", acl_file: "acl", limit: "limit" }[at[1]]);
    if (field && !errors[field]) errors[field] = m.replace(/^.*?api\[\d+\]\.[^:]*:\s*/, "");
  }
  showFieldErrors(errors);
}

function buildApi() {
  const api = clone(st.original) || {};
  const name = $("f-name").value.trim();
  if (name) api.name = name; else delete api.name;
  api.path = $("f-path").value.trim();
  api.upstream = $("f-upstream").value.trim();
  const plan = $("f-plan").value;
  if (plan === "none") delete api.plan;
  if (plan === "keyless") api.plan = { type: "keyless" };
  if (plan === "api_key") {
    const keys = $("f-keys").value.split("\n").map((s) => s.trim()).filter(Boolean);
    const old = api.plan && !Array.isArray(api.plan) && api.plan.type === "api_key" ? api.plan : {};
    api.plan = Object.assign({}, old, { type: "api_key", keys });
  }
  const limits = $("f-limits").value.trim();
  if (limits) api.limit = JSON.parse(limits); else delete api.limit;
  if (!$("acl-file-note").dataset.file) {
    if ($("acl-enabled").checked) {
      const acl = Object.assign({}, api.acl || {});
      delete acl.rule;
      if ($("acl-dry-run").checked) acl.dry_run = true; else delete acl.dry_run;
      acl.rule = Array.from($("rules").children).map(readRule).map(formToRule);
      if (!acl.rule.length) delete acl.rule;
      api.acl = acl;
    } else {
      delete api.acl;
    }
  }
  return api;
}

function openForm(api) {
  st.current = api ? api.name : null;
  st.original = api ? clone(api) : null;
  st.live = null;
  $("editor").classList.remove("hidden");
  $("editor-title").textContent = api ? "Edit API " + api.name : "New MCP proxy API";
  $("delete").classList.toggle("hidden", !api);
  $("f-name").value = api ? api.name : "";
  $("f-path").value = api ? api.path : "";
  $("f-upstream").value = api ? api.upstream : "";
  const plan = api && api.plan;
  const single = plan && !Array.isArray(plan) ? plan : null;
  $("f-plan-keep").hidden = true;
  if (!plan) $("f-plan").value = "none";
  else if (single && (single.type === "keyless" || single.type === "api_key") && !single.keys_file) $("f-plan").value = single.type;
  else { $("f-plan-keep").hidden = false; $("f-plan").value = "keep"; }
  $("f-keys").value = single && single.type === "api_key" ? (single.keys || []).map((k) => (typeof k === "string" ? k : st.marker)).join("\n") : "";
  $("keys-box").classList.toggle("hidden", $("f-plan").value !== "api_key");
  $("f-limits").value = api && api.limit ? JSON.stringify(api.limit, null, 2) : "";
  const file = api && api.acl_file;
  $("acl-file-note").dataset.file = file || "";
  $("acl-file-note").textContent = file ? `The ACL comes from the Gravitee JSON file ${file}; edit that file (kept as is here).` : "";
  $("acl-enabled").checked = !!(api && (api.acl || file));
  $("acl-enabled").disabled = !!file;
  $("acl-box").classList.toggle("hidden", !$("acl-enabled").checked || !!file);
  $("acl-dry-run").checked = !!(api && api.acl && api.acl.dry_run);
  $("rules").innerHTML = "";
  for (const rule of (api && api.acl && api.acl.rule) || []) addRule(ruleToForm(rule));
  showMessages([]);
  showFieldErrors({});
  $("diff").classList.add("hidden");
  refreshRules();
  document.querySelectorAll("#api-list button").forEach((b) => b.classList.toggle("active", b.dataset.api === st.current));
}

async function validate() {
  setStatus("Validating…");
  showMessages([]);
  const errors = fieldErrors();
  showFieldErrors(errors);
  if (Object.keys(errors).length) { showMessages(["Fix the fields marked in red."]); setStatus("Not valid."); return false; }
  const body = { api: buildApi() };
  if (st.current) body.name = st.current;
  const { status, json } = await call("POST", "api/manage/validate", body);
  if (status === 200) {
    showMessages([], json.warnings);
    $("diff").textContent = json.diff || "(no change)";
    $("diff").classList.remove("hidden");
    setStatus("Valid.");
    return true;
  }
  showMessages(json.messages || [json.error || "HTTP " + status]);
  placeServerMessages(json.messages);
  if (json.diff) { $("diff").textContent = json.diff; $("diff").classList.remove("hidden"); }
  setStatus("Not valid.");
  return false;
}

async function deploy(e) {
  if (e) e.preventDefault();
  setStatus("Deploying…");
  showMessages([]);
  const errors = fieldErrors();
  showFieldErrors(errors);
  if (Object.keys(errors).length) { showMessages(["Fix the fields marked in red."]); setStatus("Not deployed."); return; }
  const api = buildApi();
  const body = { version: st.version, api };
  setStatus("Deploying…");
  $("deploy").disabled = true;
  const { status, json } = st.current
    ? await call("PUT", "api/manage/apis/" + encodeURIComponent(st.current), body)
    : await call("POST", "api/manage/apis", body);
  $("deploy").disabled = !st.editable;
  if (status === 200 || status === 201) {
    if (json.reload && json.reload.ok === false) { showMessages(["Written, but the reload failed: " + json.reload.message]); setStatus("Not deployed."); return; }
    setStatus("Deployed.");
    // Land on the API's traffic view.
    location.href = "./#api=" + encodeURIComponent(api.name || api.path);
    return;
  }
  setStatus("Not deployed.");
  if (json.code === "stale_version") {
    showMessages(["The file changed since this page read it (another deploy, or an edit by hand). Reload the page to start from the current version; nothing was written."]);
  } else {
    showMessages(json.messages || [json.error || "HTTP " + status]);
    placeServerMessages(json.messages);
  }
}

async function removeApi() {
  if (!st.current || !confirm("Delete API " + st.current + " from the config file?")) return;
  const { status, json } = await call("DELETE", "api/manage/apis/" + encodeURIComponent(st.current), { version: st.version });
  if (status === 200) { location.hash = ""; location.reload(); return; }
  showMessages(json.messages || [json.error || "HTTP " + status]);
}

async function rollback(id) {
  if (!confirm("Deploy version " + id + " again?")) return;
  const { status, json } = await call("POST", "api/manage/history/" + encodeURIComponent(id) + "/rollback", { version: st.version });
  if (status === 200) { location.reload(); return; }
  showMessages(json.messages || [json.error || "HTTP " + status]);
}

// ---------- wiring ----------

$("new-api").addEventListener("click", () => { history.replaceState(null, "", "#new"); openForm(null); });
$("api-list").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-api]");
  if (!b) return;
  const api = st.apis.find((a) => a.name === b.dataset.api);
  history.replaceState(null, "", "#api=" + encodeURIComponent(b.dataset.api));
  openForm(api);
});
$("history").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-rollback]");
  if (b) rollback(b.dataset.rollback);
});
$("add-rule").addEventListener("click", () => addRule({ type: "TOOLS", list: true, call: false, ptype: "ANY", pattern: "", condition: "" }));
$("rules").addEventListener("click", (e) => {
  if (e.target.closest(".r-remove")) { e.target.closest(".rule").remove(); refreshRules(); }
});
$("rules").addEventListener("input", refreshRules);
$("rules").addEventListener("change", refreshRules);
$("acl-enabled").addEventListener("change", () => { $("acl-box").classList.toggle("hidden", !$("acl-enabled").checked); refreshRules(); });
$("f-plan").addEventListener("change", () => $("keys-box").classList.toggle("hidden", $("f-plan").value !== "api_key"));
$("api-form").addEventListener("input", (e) => { if (e.target.dataset.field) showFieldErrors(fieldErrors()); });
$("live-load").addEventListener("click", loadLive);
$("validate").addEventListener("click", validate);
$("api-form").addEventListener("submit", deploy);
$("delete").addEventListener("click", removeApi);

(async function init() {
  const s = await call("GET", "api/session");
  st.csrf = s.json.csrf || null;
  await loadStatus();
  await loadApis();
  await loadHistory();
  const linked = /^#api=(.+)$/.exec(location.hash);
  const api = linked && st.apis.find((a) => a.name === decodeURIComponent(linked[1]));
  if (api) openForm(api);
  else if (location.hash === "#new") openForm(null);
  document.body.dataset.ready = "true";
})();
