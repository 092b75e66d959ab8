//! The observability tables of the configuration: `[gateway.log]` (recording on/off, the
//! JSON-lines sink, ring size, label bounds, extra redactions) and `[api.log]` (payload capture and
//! the metric target allow-list of one API). Owns their serde shape, validation and runtime form;
//! `crate::features::observe` turns the runtime form into an `observe::ObserveConfig`.
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

/// What an API without an `[api.log]` table gets.
static DEFAULT_API_LOG: ApiLog = ApiLog {
    capture: false,
    capture_max_bytes: 4096,
    target_allow_list: None,
};

impl Default for ApiLog {
    fn default() -> Self {
        DEFAULT_API_LOG.clone()
    }
}

/// The gateway-wide observability settings of a snapshot (each API's own are in `Api::log`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogSettings {
    pub gateway: GatewayLog,
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

#[cfg(test)]
mod tests {
    use super::super::{load_str, Config, ConfigError, Overrides};
    use super::*;

    const GATEWAY: &str = "[gateway]\nlisten = \"127.0.0.1:0\"\n";
    const API: &str =
        "[[api]]\nname = \"a\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n";

    fn load(text: &str) -> Result<Config, ConfigError> {
        load_str(text, "test.toml", &Overrides::default())
    }

    fn err(text: &str) -> String {
        match load(text) {
            Ok(cfg) => panic!("expected an error, got {:?}", cfg.log),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn absent_tables_mean_recording_on_no_sink_no_capture() {
        let cfg = load(&format!("{GATEWAY}{API}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.log.gateway, GatewayLog::default());
        assert!(cfg.log.gateway.enabled);
        assert_eq!(cfg.log.gateway.sink, LogSink::Off);
        let api_logs: Vec<&ApiLog> = cfg.apis.iter().map(|a| &a.log).collect();
        assert_eq!(api_logs, vec![&ApiLog::default()]);
    }

    #[test]
    fn gateway_and_api_tables_are_read() {
        let text = format!(
            "{GATEWAY}[gateway.log]\nenabled = false\nsink = \"file\"\nfile = \"/tmp/x.jsonl\"\n\
             ring_capacity = 10\ntarget_labels_per_api = 5\nredact_headers = [\"x-secret-thing\"]\n\
             {API}[api.log]\ncapture = true\ncapture_max_bytes = 100\ntarget_allow_list = [\"echo\"]\n\
             [[api]]\npath = \"/two\"\nupstream = \"http://127.0.0.1:3002/mcp\"\n"
        );
        let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
        let g = &cfg.log.gateway;
        assert!(!g.enabled);
        assert_eq!(g.sink, LogSink::File(PathBuf::from("/tmp/x.jsonl")));
        assert_eq!((g.ring_capacity, g.target_labels_per_api), (10, 5));
        assert_eq!(g.redact_headers, vec!["x-secret-thing".to_string()]);
        assert_eq!(
            cfg.apis.iter().map(|a| a.log.clone()).collect::<Vec<_>>(),
            vec![
                ApiLog {
                    capture: true,
                    capture_max_bytes: 100,
                    target_allow_list: Some(vec!["echo".into()]),
                },
                ApiLog::default()
            ]
        );
    }

    #[test]
    fn sink_forms() {
        let sink = |table: &str| {
            load(&format!("{GATEWAY}[gateway.log]\n{table}\n{API}"))
                .unwrap_or_else(|e| panic!("{e}"))
                .log
                .gateway
                .sink
        };
        assert_eq!(sink("sink = \"stdout\""), LogSink::Stdout);
        assert_eq!(sink("sink = \"off\"\nfile = \"/tmp/y\""), LogSink::Off);
        assert_eq!(sink("file = \"/tmp/y\""), LogSink::File("/tmp/y".into()));
        assert_eq!(sink("ring_capacity = 3"), LogSink::Off);
    }

    #[test]
    fn errors_name_the_field_and_line() {
        let e = err(&format!("{GATEWAY}[gateway.log]\nsink = \"syslog\"\n{API}"));
        assert!(
            e.contains("test.toml:4:") && e.contains("gateway.log.sink"),
            "{e}"
        );
        let e = err(&format!("{GATEWAY}[gateway.log]\nsink = \"file\"\n{API}"));
        assert!(e.contains("gateway.log.file"), "{e}");
        let e = err(&format!("{GATEWAY}[gateway.log]\nring_capacity = 0\n{API}"));
        assert!(e.contains("gateway.log.ring_capacity"), "{e}");
        let e = err(&format!("{GATEWAY}{API}[api.log]\ncapture_max_bytes = 0\n"));
        assert!(e.contains("api[0].log.capture_max_bytes"), "{e}");
        // Tables are closed: a typo is an error, not a silently ignored key.
        let e = err(&format!("{GATEWAY}{API}[api.log]\ncaptur = true\n"));
        assert!(e.contains("captur"), "{e}");
    }

    #[test]
    fn command_line_api_gets_default_log_settings() {
        let ov = Overrides {
            upstream: Some("http://127.0.0.1:4000/mcp".into()),
            ..Overrides::default()
        };
        let text = format!("{GATEWAY}{API}[api.log]\ncapture = true\n");
        let cfg = load_str(&text, "test.toml", &ov).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.apis.len(), 1);
        assert_eq!(cfg.apis.first().map(|a| &a.log), Some(&ApiLog::default()));
    }
}
