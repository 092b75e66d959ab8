//! The observability tables of the configuration: `[gateway.log]` (recording on/off, the
//! JSON-lines sink, ring size, label bounds, extra redactions) and `[api.log]` (payload capture and
//! the metric target allow-list of one API). Owns their serde shape, validation and runtime form;
//! `crate::engine::observe_glue` turns the runtime form into an `observe::ObserveConfig`.
//!
//! ```toml
//! [gateway.log]
//! enabled = true            # false: no records, no metrics of traffic (the bench's "off")
//! sink = "file"             # "off" (default) | "stdout" | "file"
//! file = "/var/log/mcpgate/exchanges.jsonl"
//! ring_capacity = 4096      # records kept per worker for /api/logs
//!
//! [[api]]
//! ...
//! [api.log]
//! capture = true            # request/response payloads, redacted; off by default
//! capture_max_bytes = 4096
//! ```
//!
//! These settings are read at start; a reload keeps the sink and ring as they are, while the
//! per-API capture settings follow the new snapshot.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// `[gateway.log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserGatewayLog {
    pub enabled: Option<bool>,
    pub sink: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub ring_capacity: Option<usize>,
    pub target_labels_per_api: Option<usize>,
    #[serde(default)]
    pub redact_headers: Vec<String>,
    #[serde(default)]
    pub redact_fields: Vec<String>,
}

/// `[api.log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserApiLog {
    pub capture: Option<bool>,
    pub capture_max_bytes: Option<usize>,
    pub target_allow_list: Option<Vec<String>>,
}

/// Where exchange records go as JSON lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogSink {
    #[default]
    Off,
    Stdout,
    File(PathBuf),
}

/// Validated `[gateway.log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLog {
    pub enabled: bool,
    pub sink: LogSink,
    pub ring_capacity: usize,
    pub target_labels_per_api: usize,
    pub redact_headers: Vec<String>,
    pub redact_fields: Vec<String>,
}

impl Default for GatewayLog {
    fn default() -> Self {
        Self {
            enabled: true,
            sink: LogSink::Off,
            ring_capacity: 4096,
            target_labels_per_api: 50,
            redact_headers: Vec::new(),
            redact_fields: Vec::new(),
        }
    }
}

/// Validated `[api.log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLog {
    pub capture: bool,
    pub capture_max_bytes: usize,
    /// When set, only these targets get their own metric label.
    pub target_allow_list: Option<Vec<String>>,
}

impl Default for ApiLog {
    fn default() -> Self {
        Self {
            capture: false,
            capture_max_bytes: 4096,
            target_allow_list: None,
        }
    }
}

/// Everything observability reads from a snapshot: `apis[i]` belongs to `Config::apis[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogSettings {
    pub gateway: GatewayLog,
    pub apis: Vec<ApiLog>,
}

impl LogSettings {
    /// The capture settings of API `index` (defaults when out of range).
    pub fn api(&self, index: usize) -> ApiLog {
        self.apis.get(index).cloned().unwrap_or_default()
    }
}

/// Largest accepted `capture_max_bytes` (a record is kept in memory per worker ring slot).
const MAX_CAPTURE_BYTES: usize = 1024 * 1024;
/// Largest accepted `ring_capacity` per worker.
const MAX_RING_CAPACITY: usize = 1_000_000;

impl Validator<'_> {
    pub(super) fn gateway_log(
        &self,
        log: Option<UserGatewayLog>,
    ) -> Result<GatewayLog, ConfigError> {
        let Some(log) = log else {
            return Ok(GatewayLog::default());
        };
        let default = GatewayLog::default();
        let sink = match log.sink.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
            // A `file` alone is enough to mean the file sink.
            None => match &log.file {
                Some(f) if !f.get_ref().is_empty() => LogSink::File(PathBuf::from(f.get_ref())),
                _ => LogSink::Off,
            },
            Some(("off", _)) => LogSink::Off,
            Some(("stdout", _)) => LogSink::Stdout,
            Some(("file", span)) => match &log.file {
                Some(f) if !f.get_ref().is_empty() => LogSink::File(PathBuf::from(f.get_ref())),
                _ => {
                    return Err(self.invalid(
                        Some(span),
                        "gateway.log.file",
                        "sink = \"file\" needs `file = \"/path/to/exchanges.jsonl\"`",
                    ))
                }
            },
            Some((_, span)) => {
                return Err(self.invalid(
                    Some(span),
                    "gateway.log.sink",
                    "expected \"off\", \"stdout\" or \"file\"",
                ))
            }
        };
        let ring_capacity = match log.ring_capacity {
            None => default.ring_capacity,
            Some(n) if (1..=MAX_RING_CAPACITY).contains(&n) => n,
            Some(_) => {
                return Err(self.invalid(
                    None,
                    "gateway.log.ring_capacity",
                    format!("must be between 1 and {MAX_RING_CAPACITY}"),
                ))
            }
        };
        let target_labels_per_api = match log.target_labels_per_api {
            None => default.target_labels_per_api,
            Some(n) if (1..=10_000).contains(&n) => n,
            Some(_) => {
                return Err(self.invalid(
                    None,
                    "gateway.log.target_labels_per_api",
                    "must be between 1 and 10000",
                ))
            }
        };
        Ok(GatewayLog {
            enabled: log.enabled.unwrap_or(true),
            sink,
            ring_capacity,
            target_labels_per_api,
            redact_headers: log.redact_headers,
            redact_fields: log.redact_fields,
        })
    }

    pub(super) fn api_log(&self, i: usize, log: Option<UserApiLog>) -> Result<ApiLog, ConfigError> {
        let Some(log) = log else {
            return Ok(ApiLog::default());
        };
        let capture_max_bytes = match log.capture_max_bytes {
            None => ApiLog::default().capture_max_bytes,
            Some(n) if (1..=MAX_CAPTURE_BYTES).contains(&n) => n,
            Some(_) => {
                return Err(self.invalid(
                    None,
                    &format!("api[{i}].log.capture_max_bytes"),
                    format!("must be between 1 and {MAX_CAPTURE_BYTES}"),
                ))
            }
        };
        Ok(ApiLog {
            capture: log.capture.unwrap_or(false),
            capture_max_bytes,
            target_allow_list: log.target_allow_list,
        })
    }
}
