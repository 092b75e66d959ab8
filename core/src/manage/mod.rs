//! The management API (issue 19): REST + JSON on the admin listener, editing the config file —
//! which stays the source of truth, reviewable in git — and reloading it the way SIGHUP does.
//!
//! Every write goes the same way, under one lock: read the file and its version (a hash of its
//! bytes; a write naming another version is refused 409, so two consoles cannot overwrite each
//! other, nor a console an edit made by hand), apply the change with `toml_edit` (comments and
//! layout of untouched parts kept, see [`document`]), validate the result with the loader
//! `mcpgate check` uses (422 with its messages; the file is not touched), then — unless it is
//! a dry run — keep the old and new versions in the history, replace the file atomically,
//! reload, and append who did what to the audit log ([`store`]).
//!
//! A gateway started on the embedded default (no `--config`) has no file to edit: reads show
//! the default's APIs with `editable: false`, writes are refused 409 `no_config_file`. So are
//! writes when `--upstream` replaces the file's APIs on the command line (what would be edited
//! is not what runs).
//!
//! Pure of sockets: the admin listener (`crate::engine::admin`) parses the request and passes
//! method, path, query, body and the caller's credential; this module answers status and JSON.

pub mod diff;
pub mod document;
pub mod openapi;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::admin_auth::Credential;
use crate::config::{self, Config, ConfigSource};
use document::{Change, DocError};

/// What the admin listener passes in.
pub struct Request<'a> {
    pub method: &'a str,
    /// Percent-encoded path, without the query.
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
    /// `If-Match`, when sent: the version a write is based on.
    pub if_match: Option<&'a str>,
    pub credential: &'a Credential,
}

/// Status and JSON body.
pub type Reply = (u16, Value);

/// Reloads the running configuration from the file (the SIGHUP path); `Ok`: what was applied.
pub type Reload = Box<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Errors of the management API, each with its status and a stable `code`.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{0}")]
    NoFile(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Exists(String),
    #[error("the file changed since version {sent} was read (it is now {current}); read it again and redo the change")]
    Stale { sent: String, current: String },
    #[error("a write must name the version it is based on (`version` in the body, or If-Match)")]
    VersionRequired,
    #[error("the change does not validate; the file was not touched")]
    Invalid(Vec<String>),
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    Io(String),
}

impl ManageError {
    pub fn status(&self) -> u16 {
        match self {
            ManageError::NoFile(_) | ManageError::Exists(_) | ManageError::Stale { .. } => 409,
            ManageError::NotFound(_) => 404,
            ManageError::BadRequest(_) => 400,
            ManageError::VersionRequired => 428,
            ManageError::Invalid(_) => 422,
            ManageError::Upstream(_) => 502,
            ManageError::Forbidden(_) => 403,
            ManageError::MethodNotAllowed(_) => 405,
            ManageError::Io(_) => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ManageError::NoFile(_) => "no_config_file",
            ManageError::NotFound(_) => "not_found",
            ManageError::BadRequest(_) => "bad_request",
            ManageError::Exists(_) => "exists",
            ManageError::Stale { .. } => "stale_version",
            ManageError::VersionRequired => "version_required",
            ManageError::Invalid(_) => "invalid",
            ManageError::Upstream(_) => "upstream_unreachable",
            ManageError::Forbidden(_) => "forbidden",
            ManageError::MethodNotAllowed(_) => "method_not_allowed",
            ManageError::Io(_) => "io",
        }
    }

    pub fn reply(&self) -> Reply {
        let mut body = json!({ "error": self.to_string(), "code": self.code() });
        match self {
            ManageError::Invalid(messages) => body["messages"] = json!(messages),
            ManageError::Stale { current, .. } => body["version"] = json!(current),
            _ => {}
        }
        (self.status(), body)
    }
}

impl From<DocError> for ManageError {
    fn from(e: DocError) -> Self {
        match e {
            DocError::NotFound(_) => ManageError::NotFound(e.to_string()),
            DocError::Exists(_) => ManageError::Exists(e.to_string()),
            DocError::Syntax(_) => ManageError::Invalid(vec![e.to_string()]),
            DocError::Shape(m) => ManageError::Invalid(vec![m]),
        }
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> ManageError {
    ManageError::Io(format!("{what} {}: {e}", path.display()))
}

/// The management API of one running gateway.
pub struct Manager {
    source: ConfigSource,
    reload: Reload,
    /// Held from reading the version to the audit record of a write.
    lock: Mutex<()>,
    /// How long a live list fetch from an upstream may take.
    live_timeout: Duration,
}

/// The file as read.
struct Current {
    text: String,
    version: String,
}

impl Manager {
    pub fn new(source: ConfigSource, reload: Reload) -> Manager {
        Manager {
            source,
            reload,
            lock: Mutex::new(()),
            live_timeout: Duration::from_secs(10),
        }
    }

    fn file(&self) -> Option<&Path> {
        self.source.file.as_deref()
    }

    /// The file and its version; the embedded default when there is no file.
    fn read(&self) -> Result<Current, ManageError> {
        let text = match self.file() {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|e| io_error("cannot read", path, e))?
            }
            None => config::DEFAULT_TOML.to_string(),
        };
        let version = store::version_of(text.as_bytes());
        Ok(Current { text, version })
    }

    /// Why writes are refused, if they are.
    fn not_editable(&self) -> Option<String> {
        if self.file().is_none() {
            return Some(
                "the gateway runs on its embedded default configuration: there is no file to \
                 edit. Start it with `mcpgate run --config FILE` (copy the default from \
                 docs/configuration.md) to manage APIs"
                    .into(),
            );
        }
        let ov = &self.source.overrides;
        if ov.upstream.is_some() || !ov.named_upstreams.is_empty() || !ov.upstream_cmds.is_empty() {
            return Some(
                "--upstream / --upstream-cmd on the command line replace the file's APIs: edits \
                 to the file would not run. Restart without them to manage APIs"
                    .into(),
            );
        }
        None
    }

    fn history(&self, config: &Config) -> Option<store::History> {
        let dir = match (&config.gateway.manage.history_dir, self.file()) {
            (Some(d), _) => d.clone(),
            (None, Some(f)) => sibling(f, "history"),
            (None, None) => return None,
        };
        Some(store::History {
            dir,
            keep: config.gateway.manage.history_keep,
        })
    }

    fn audit_path(&self, config: &Config) -> Option<PathBuf> {
        match &config.gateway.manage.audit_log {
            Some(p) => Some(p.clone()),
            None => self.history(config).map(|h| h.dir.join("audit.jsonl")),
        }
    }

    /// Answers the management routes; `None`: not one of them.
    pub fn handle(&self, req: &Request<'_>, config: &Config) -> Option<Reply> {
        let path = req.path;
        if path == "/api/openapi.json" {
            return Some(match req.method {
                "GET" | "HEAD" => (200, openapi::document()),
                _ => ManageError::MethodNotAllowed("GET only").reply(),
            });
        }
        if path == "/api/session" {
            let auth = &config.gateway.admin_auth;
            return Some((
                200,
                json!({
                    "identity": req.credential.identity(auth),
                    "csrf": req.credential.csrf(auth),
                }),
            ));
        }
        let rest = path.strip_prefix("/api/manage")?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        let auth = &config.gateway.admin_auth;
        if !auth.enabled() && !auth.allow_unauthenticated {
            return Some(
                ManageError::Forbidden(
                    "the management API edits the config file: it needs the admin token \
                     ([gateway.admin_auth], MCPGATE_ADMIN_TOKEN or --admin-token-file)"
                        .into(),
                )
                .reply(),
            );
        }
        let segments: Vec<String> = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode_path)
            .collect();
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let result = match (req.method, segs.as_slice()) {
            ("GET", []) => self.status(config),
            ("GET", ["apis"]) => self.list(),
            ("POST", ["apis"]) => self.create(req, config),
            ("GET", ["apis", name]) => self.get(name),
            ("PUT", ["apis", name]) => self.update(req, config, name),
            ("DELETE", ["apis", name]) => self.delete(req, config, name),
            ("GET", ["apis", name, "live"]) => self.live_of(name),
            ("GET", ["live"]) => self.live_at(req.query),
            ("POST", ["validate"]) => self.check(req, false),
            ("POST", ["diff"]) => self.check(req, true),
            ("POST", ["deploy"]) => self.deploy_body(req, config),
            ("GET", ["history"]) => self.history_list(config),
            ("GET", ["history", id]) => self.history_get(config, id),
            ("POST", ["history", id, "rollback"]) => self.rollback(req, config, id),
            ("GET", ["audit"]) => self.audit_list(req.query, config),
            (_, [] | ["apis"] | ["apis", _] | ["apis", _, "live"] | ["live"])
            | (_, ["validate" | "diff" | "deploy" | "history" | "audit"])
            | (_, ["history", _] | ["history", _, "rollback"]) => Err(
                ManageError::MethodNotAllowed("method not allowed here (see /api/openapi.json)"),
            ),
            _ => Err(ManageError::NotFound(
                "no such management route (see /api/openapi.json)".into(),
            )),
        };
        Some(result.unwrap_or_else(|e| e.reply()))
    }

    fn status(&self, config: &Config) -> Result<Reply, ManageError> {
        let cur = self.read()?;
        let reason = self.not_editable();
        Ok((
            200,
            json!({
                "file": self.file().map(|p| p.display().to_string()),
                "version": cur.version,
                "editable": reason.is_none(),
                "reason": reason,
                "history_dir": self.history(config).map(|h| h.dir.display().to_string()),
                "history_keep": config.gateway.manage.history_keep,
                "audit_log": self.audit_path(config).map(|p| p.display().to_string()),
                "secret_marker": document::SECRET_MARKER,
            }),
        ))
    }

    fn list(&self) -> Result<Reply, ManageError> {
        let cur = self.read()?;
        let apis: Vec<Value> = document::apis(&cur.text)?
            .iter()
            .map(document::view)
            .collect();
        Ok((
            200,
            json!({ "version": cur.version, "editable": self.not_editable().is_none(), "apis": apis }),
        ))
    }

    fn find(&self, text: &str, name: &str) -> Result<Map<String, Value>, ManageError> {
        document::apis(text)?
            .into_iter()
            .find(|a| document::effective_name(a) == name)
            .ok_or_else(|| ManageError::NotFound(format!("no API named `{name}`")))
    }

    fn get(&self, name: &str) -> Result<Reply, ManageError> {
        let cur = self.read()?;
        let api = self.find(&cur.text, name)?;
        Ok((
            200,
            json!({ "version": cur.version, "api": document::view(&api) }),
        ))
    }

    fn create(&self, req: &Request<'_>, config: &Config) -> Result<Reply, ManageError> {
        let body = parse_body(req.body)?;
        let api = api_of(&body)?;
        let change = Change::Upsert { name: None, api };
        self.write(req, config, &body, vec![change], "create")
            .map(|(s, v)| {
                (
                    if s == 200 && !dry_run(req.query, &body) {
                        201
                    } else {
                        s
                    },
                    v,
                )
            })
    }

    fn update(&self, req: &Request<'_>, config: &Config, name: &str) -> Result<Reply, ManageError> {
        let body = parse_body(req.body)?;
        let api = api_of(&body)?;
        let change = Change::Upsert {
            name: Some(name.to_string()),
            api,
        };
        self.write(req, config, &body, vec![change], "update")
    }

    fn delete(&self, req: &Request<'_>, config: &Config, name: &str) -> Result<Reply, ManageError> {
        let body = if req.body.trim_ascii().is_empty() {
            json!({})
        } else {
            parse_body(req.body)?
        };
        let change = Change::Delete {
            name: name.to_string(),
        };
        self.write(req, config, &body, vec![change], "delete")
    }

    /// `POST /api/manage/deploy`: `{version, changes: [...]}`, several changes in one write.
    fn deploy_body(&self, req: &Request<'_>, config: &Config) -> Result<Reply, ManageError> {
        let body = parse_body(req.body)?;
        let changes = changes_of(&body)?;
        self.write(req, config, &body, changes, "deploy")
    }

    /// `POST /api/manage/validate` and `/diff`: the change checked against the file as it is
    /// now, nothing written. `{changes}` or `{api, name?}`.
    fn check(&self, req: &Request<'_>, _diff: bool) -> Result<Reply, ManageError> {
        let body = parse_body(req.body)?;
        let changes = changes_of(&body)?;
        let cur = self.read()?;
        let next = document::apply(&cur.text, &changes);
        let next = match next {
            Ok(t) => t,
            Err(e) => {
                let e = ManageError::from(e);
                return Ok(match e {
                    ManageError::Invalid(messages) => (
                        422,
                        json!({"valid": false, "messages": messages, "version": cur.version, "code": "invalid"}),
                    ),
                    other => other.reply(),
                });
            }
        };
        let diff = self.diff(&cur.text, &next);
        Ok(match self.validate(&next) {
            Ok(summary) => (
                200,
                json!({"valid": true, "version": cur.version, "diff": diff, "summary": summary["summary"], "warnings": summary["warnings"]}),
            ),
            Err(messages) => (
                422,
                json!({"valid": false, "version": cur.version, "diff": diff, "messages": messages, "code": "invalid"}),
            ),
        })
    }

    fn diff(&self, old: &str, new: &str) -> String {
        let name = self
            .file()
            .map_or_else(|| "config".into(), |p| p.display().to_string());
        diff::unified(
            &document::redact_text(old),
            &document::redact_text(new),
            &format!("a/{name}"),
            &format!("b/{name}"),
        )
    }

    /// The loader `mcpgate check` runs, on `text` as if it were the file: `Ok` with what check
    /// prints, or the messages.
    fn validate(&self, text: &str) -> Result<Value, Vec<String>> {
        let source = self
            .file()
            .map_or_else(|| "<embedded default>".into(), |p| p.display().to_string());
        match config::load_str(text, &source, &self.source.overrides) {
            Ok(cfg) => {
                let secret = cfg.gateway.sessions.configured;
                Ok(json!({
                    "summary": crate::startup::api_lines(&cfg),
                    "warnings": crate::startup::warnings(&cfg, cfg.gateway.admin, secret),
                }))
            }
            Err(e) => Err(vec![e.to_string()]),
        }
    }

    /// The one write path (see the module header).
    fn write(
        &self,
        req: &Request<'_>,
        config: &Config,
        body: &Value,
        changes: Vec<Change>,
        action: &str,
    ) -> Result<Reply, ManageError> {
        let dry = dry_run(req.query, body);
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.read()?;
        let expected = expected_version(req, body);
        if !dry {
            if let Some(reason) = self.not_editable() {
                return Err(ManageError::NoFile(reason));
            }
        }
        match expected {
            Some(v) if v != cur.version => {
                return Err(ManageError::Stale {
                    sent: v,
                    current: cur.version,
                })
            }
            None if !dry => return Err(ManageError::VersionRequired),
            _ => {}
        }
        let next = document::apply(&cur.text, &changes)?;
        self.commit(req, config, &cur, next, dry, action, &changes)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        req: &Request<'_>,
        config: &Config,
        cur: &Current,
        next: String,
        dry: bool,
        action: &str,
        changes: &[Change],
    ) -> Result<Reply, ManageError> {
        let diff = self.diff(&cur.text, &next);
        let summary = self.validate(&next).map_err(ManageError::Invalid)?;
        let new_version = store::version_of(next.as_bytes());
        if dry {
            return Ok((
                200,
                json!({"dry_run": true, "valid": true, "version": cur.version, "new_version": new_version, "diff": diff, "summary": summary["summary"], "warnings": summary["warnings"]}),
            ));
        }
        if next == cur.text {
            return Ok((
                200,
                json!({"changed": false, "version": cur.version, "diff": "", "reload": null}),
            ));
        }
        let Some(path) = self.file() else {
            return Err(ManageError::NoFile("no config file".into()));
        };
        let history = self.history(config);
        if let Some(h) = &history {
            // The version being replaced is kept too, so the first deploy can be rolled back.
            h.save(&cur.text)
                .map_err(|e| io_error("cannot write the history in", &h.dir, e))?;
        }
        store::write_atomic(path, next.as_bytes())
            .map_err(|e| io_error("cannot write", path, e))?;
        let history_id = match &history {
            Some(h) => Some(
                h.save(&next)
                    .map_err(|e| io_error("cannot write the history in", &h.dir, e))?,
            ),
            None => None,
        };
        let reload = (self.reload)();
        let apis: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Upsert { name: Some(n), .. } | Change::Delete { name: n } => n.clone(),
                Change::Upsert { name: None, api } => document::effective_name(api),
            })
            .collect();
        let record = json!({
            "time_ms": store::now_ms(),
            "who": req.credential.identity(&config.gateway.admin_auth),
            "action": action,
            "apis": apis,
            "from_version": cur.version,
            "to_version": new_version,
            "history_id": history_id,
            "reload": match &reload { Ok(m) => json!({"ok": true, "message": m}), Err(m) => json!({"ok": false, "message": m}) },
            "diff": diff,
        });
        if let Some(path) = self.audit_path(config) {
            if let Err(e) = store::audit(&path, &record) {
                crate::error!(
                    "management: cannot append to the audit log {}: {e}",
                    path.display()
                );
            }
        }
        crate::info!(
            "management: {action} of {} by {} ({} -> {new_version})",
            apis.join(", "),
            record["who"].as_str().unwrap_or_default(),
            cur.version
        );
        Ok((
            200,
            json!({
                "changed": true,
                "version": new_version,
                "previous_version": cur.version,
                "diff": diff,
                "history_id": history_id,
                "reload": record["reload"],
                "warnings": summary["warnings"],
            }),
        ))
    }

    fn history_list(&self, config: &Config) -> Result<Reply, ManageError> {
        let cur = self.read()?;
        let Some(h) = self.history(config) else {
            return Ok((200, json!({"version": cur.version, "entries": []})));
        };
        let entries = h.list().map_err(|e| io_error("cannot read", &h.dir, e))?;
        let entries: Vec<Value> = entries
            .iter()
            .rev()
            .map(|e| {
                let mut v = json!(e);
                v["current"] = json!(e.version == cur.version);
                v
            })
            .collect();
        Ok((200, json!({"version": cur.version, "entries": entries})))
    }

    fn history_text(&self, config: &Config, id: &str) -> Result<String, ManageError> {
        let h = self
            .history(config)
            .ok_or_else(|| ManageError::NoFile(self.not_editable().unwrap_or_default()))?;
        h.get(id)
            .map_err(|e| io_error("cannot read", &h.dir, e))?
            .ok_or_else(|| ManageError::NotFound(format!("no history entry `{id}`")))
    }

    fn history_get(&self, config: &Config, id: &str) -> Result<Reply, ManageError> {
        let cur = self.read()?;
        let text = self.history_text(config, id)?;
        Ok((
            200,
            json!({
                "id": id,
                "version": store::version_of(text.as_bytes()),
                "current_version": cur.version,
                // What a rollback to it would change.
                "diff": self.diff(&cur.text, &text),
            }),
        ))
    }

    fn rollback(&self, req: &Request<'_>, config: &Config, id: &str) -> Result<Reply, ManageError> {
        let body = if req.body.trim_ascii().is_empty() {
            json!({})
        } else {
            parse_body(req.body)?
        };
        let dry = dry_run(req.query, &body);
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(reason) = self.not_editable() {
            return Err(ManageError::NoFile(reason));
        }
        let cur = self.read()?;
        match expected_version(req, &body) {
            Some(v) if v != cur.version => {
                return Err(ManageError::Stale {
                    sent: v,
                    current: cur.version,
                })
            }
            None if !dry => return Err(ManageError::VersionRequired),
            _ => {}
        }
        let text = self.history_text(config, id)?;
        self.commit(
            req,
            config,
            &cur,
            text,
            dry,
            &format!("rollback to {id}"),
            &[],
        )
    }

    fn audit_list(&self, query: &str, config: &Config) -> Result<Reply, ManageError> {
        let limit = query_param(query, "limit")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(100)
            .clamp(1, 10_000);
        let Some(path) = self.audit_path(config) else {
            return Ok((200, json!({"records": []})));
        };
        let records =
            store::audit_tail(&path, limit).map_err(|e| io_error("cannot read", &path, e))?;
        Ok((
            200,
            json!({"file": path.display().to_string(), "records": records}),
        ))
    }

    fn live_of(&self, name: &str) -> Result<Reply, ManageError> {
        let cur = self.read()?;
        let api = self.find(&cur.text, name)?;
        let upstream = api.get("upstream").and_then(Value::as_str).ok_or_else(|| {
            ManageError::BadRequest(format!(
                "API `{name}` is a virtual server (several `[[api.upstream]]`): fetch each \
                     upstream's lists with /api/manage/live?upstream=URL"
            ))
        })?;
        self.live(upstream)
    }

    fn live_at(&self, query: &str) -> Result<Reply, ManageError> {
        let upstream = query_param(query, "upstream")
            .ok_or_else(|| ManageError::BadRequest("give ?upstream=URL".into()))?;
        self.live(&upstream)
    }

    fn live(&self, upstream: &str) -> Result<Reply, ManageError> {
        let lists = crate::features::integrity::pin_cli::live_lists(upstream, self.live_timeout)
            .map_err(|e| ManageError::Upstream(format!("{upstream}: {e}")))?;
        Ok((200, lists))
    }
}

/// `<config>.<suffix>` next to the config file.
fn sibling(file: &Path, suffix: &str) -> PathBuf {
    let name = file
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
    file.with_file_name(format!("{name}.{suffix}"))
}

fn parse_body(body: &[u8]) -> Result<Value, ManageError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ManageError::BadRequest(format!("the body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(ManageError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    Ok(v)
}

/// `{"api": {...}}`, or the API object itself.
fn api_of(body: &Value) -> Result<Map<String, Value>, ManageError> {
    let api = body.get("api").unwrap_or(body);
    let mut api = api
        .as_object()
        .cloned()
        .ok_or_else(|| ManageError::BadRequest("`api` must be a JSON object".into()))?;
    if body.get("api").is_none() {
        api.remove("version");
        api.remove("dry_run");
    }
    if !api.get("path").is_some_and(Value::is_string) {
        return Err(ManageError::Invalid(vec![
            "api.path: required (a string)".into()
        ]));
    }
    // A URL, or a virtual server's upstream tables; the loader judges the tables' contents.
    let upstream_ok = match api.get("upstream") {
        Some(Value::String(_)) => true,
        Some(Value::Array(tables)) => !tables.is_empty() && tables.iter().all(Value::is_object),
        _ => false,
    };
    if !upstream_ok {
        return Err(ManageError::Invalid(vec![
            "api.upstream: required (a URL string, or an array of upstream tables)".into(),
        ]));
    }
    Ok(api)
}

/// `{"changes": [{"op": "upsert", "name"?, "api"}, {"op": "delete", "name"}]}`, or one
/// `{"api", "name"?}` / `{"delete": NAME}`.
fn changes_of(body: &Value) -> Result<Vec<Change>, ManageError> {
    let one = |c: &Value| -> Result<Change, ManageError> {
        let name = c.get("name").and_then(Value::as_str).map(str::to_string);
        match (c.get("op").and_then(Value::as_str), c.get("delete")) {
            (Some("delete"), _) => Ok(Change::Delete {
                name: name.ok_or_else(|| ManageError::BadRequest("delete needs `name`".into()))?,
            }),
            (None, Some(Value::String(n))) => Ok(Change::Delete { name: n.clone() }),
            (Some("upsert") | None, _) => Ok(Change::Upsert {
                name,
                api: api_of(&json!({"api": c.get("api").cloned().unwrap_or(Value::Null)}))?,
            }),
            (Some(op), _) => Err(ManageError::BadRequest(format!(
                "unknown op `{op}` (upsert or delete)"
            ))),
        }
    };
    match body.get("changes") {
        Some(Value::Array(list)) => list.iter().map(one).collect(),
        Some(_) => Err(ManageError::BadRequest("`changes` must be an array".into())),
        None => Ok(vec![one(body)?]),
    }
}

fn dry_run(query: &str, body: &Value) -> bool {
    query_param(query, "dry_run").is_some_and(|v| v == "true" || v == "1")
        || body.get("dry_run").and_then(Value::as_bool) == Some(true)
}

fn expected_version(req: &Request<'_>, body: &Value) -> Option<String> {
    if let Some(v) = body.get("version").and_then(Value::as_str) {
        return Some(v.to_string());
    }
    req.if_match
        .map(|v| {
            v.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_string()
        })
        .filter(|v| !v.is_empty())
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| crate::observe::admin::percent_decode(v))
    })
}

/// `%XX` decoded in a path segment (`+` stays a plus there); invalid escapes kept literally.
fn percent_decode_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::document::{apis, apply, view, Change};
    use super::*;

    const VIRTUAL: &str = "# keep me\n[[api]]\nname = \"v\"\npath = \"/v\"\n\n\
        [[api.upstream]]\nname = \"weather\"\nurl = \"http://127.0.0.1:3001/mcp\"\n\n\
        [[api.upstream]]\nname = \"files\"\ncommand = \"node\"\nargs = [\"s.js\", \"stdio\"]\n";

    /// A virtual API read through the management API and sent back with one change keeps its
    /// `[[api.upstream]]` tables as they were, and still loads.
    #[test]
    fn a_virtual_api_round_trips_with_its_upstream_tables() {
        let shown = view(&apis(VIRTUAL).unwrap_or_default()[0]);
        let mut api = api_of(&json!({ "api": shown })).unwrap_or_else(|e| panic!("{e}"));
        api.insert("path".into(), json!("/v2"));
        let out = apply(
            VIRTUAL,
            &[Change::Upsert {
                name: Some("v".into()),
                api,
            }],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, VIRTUAL.replace("path = \"/v\"", "path = \"/v2\""));
        let loaded = crate::config::load_str(&out, "v.toml", &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.apis[0].path, "/v2");
    }

    #[test]
    fn an_upstream_must_be_a_url_or_upstream_tables() {
        for bad in [json!(null), json!(3), json!([]), json!(["http://h/mcp"])] {
            let body = json!({"api": {"path": "/a", "upstream": bad}});
            assert!(
                matches!(api_of(&body), Err(ManageError::Invalid(_))),
                "{body}"
            );
        }
    }
}
