//! The gateway's own log lines (not the exchange log, which is `crate::observe`): the `tracing`
//! crate with a `tracing-subscriber` formatter on stderr. Every line has a UTC timestamp, a
//! level and a target (the module that wrote it; `mcpgate` for the startup summary), as text or
//! as one JSON object per line.
//!
//! - Level: `MCPGATE_LOG`, `RUST_LOG`-style directives (`debug`, `warn`,
//!   `info,mcpgate_core::engine=debug`); default `info`. An unreadable value keeps `info` and
//!   says so.
//! - Format: `mcpgate --log-format text|json` or `MCPGATE_LOG_FORMAT`; default `text`. It is
//!   not a key of the config file because the process logs before the file is read (the file's
//!   own errors and warnings are log lines too).
//!
//! The `crate::info!` / `warn!` / `error!` / `debug!` macros are thin wrappers over tracing's,
//! kept so call sites read the same; the target is the calling module. Callers never pass
//! tokens, `Authorization` values or session ids.

use std::fmt;

use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// Re-exported for the macros below (`$crate::log::__tracing::info!`), so crates using them need
/// no `tracing` dependency of their own.
#[doc(hidden)]
pub use tracing as __tracing;

/// The environment variable holding the level directives.
pub const LEVEL_ENV: &str = "MCPGATE_LOG";
/// The environment variable choosing the line format when `--log-format` is not given.
pub const FORMAT_ENV: &str = "MCPGATE_LOG_FORMAT";

/// The four levels the gateway writes at (tracing's `TRACE` is not used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn tracing(self) -> tracing::Level {
        match self {
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        }
    }
}

/// Whether a line at `level` may be written by some target: a cheap global check for callers
/// that would otherwise build a line's arguments for nothing (the per-request debug line).
#[inline]
pub fn enabled(level: Level) -> bool {
    LevelFilter::current() >= level.tracing()
}

/// How each line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `2026-11-27T10:00:00.123456Z  INFO mcpgate: listening on 127.0.0.1:8080 (...)`
    #[default]
    Text,
    /// `{"timestamp":"…","level":"INFO","message":"listening on …","target":"mcpgate"}`
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Text => "text",
            Format::Json => "json",
        })
    }
}

/// The filter for a `MCPGATE_LOG` value; `Err` carries the reason (the caller falls back to
/// `info`). `warning` is accepted for `warn`, as the hand-written logger did.
pub fn filter_from(directives: &str) -> Result<EnvFilter, String> {
    let directives = directives.trim();
    let directives = if directives.eq_ignore_ascii_case("warning") {
        "warn"
    } else {
        directives
    };
    EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse(directives)
        .map_err(|e| e.to_string())
}

/// Installs the global subscriber: level from `MCPGATE_LOG`, the given format (`None`: from
/// `MCPGATE_LOG_FORMAT`, else text). Later calls do nothing (tests, or a library user that
/// installed its own subscriber first).
pub fn init(format: Option<Format>) {
    let mut complaints = Vec::new();
    let format = format.unwrap_or_else(|| match std::env::var(FORMAT_ENV) {
        Ok(v) => Format::parse(&v).unwrap_or_else(|| {
            complaints.push(format!(
                "{FORMAT_ENV}={v:?} is not text or json; using text"
            ));
            Format::Text
        }),
        Err(_) => Format::Text,
    });
    let filter = match std::env::var(LEVEL_ENV) {
        Ok(v) => filter_from(&v).unwrap_or_else(|e| {
            complaints.push(format!(
                "{LEVEL_ENV}={v:?} is not a level or RUST_LOG-style directive list ({e}); \
                 using info"
            ));
            EnvFilter::new("info")
        }),
        Err(_) => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(true);
    let installed = match format {
        Format::Text => builder.try_init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    if installed.is_ok() {
        for complaint in complaints {
            tracing::warn!(target: "mcpgate", "{complaint}");
        }
    }
}

/// Reads `MCPGATE_LOG` and `MCPGATE_LOG_FORMAT` (what `main` did before `--log-format`).
pub fn init_from_env() {
    init(None);
}

#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log::__tracing::debug!($($arg)*) }; }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log::__tracing::info!($($arg)*) }; }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log::__tracing::warn!($($arg)*) }; }
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log::__tracing::error!($($arg)*) }; }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_and_directives_parse() {
        for ok in [
            "debug",
            "INFO",
            "warn",
            "warning",
            "error",
            "trace",
            "info,mcpgate_core::engine=debug",
            "mcpgate=warn",
        ] {
            assert!(filter_from(ok).is_ok(), "{ok}");
        }
        for bad in ["info,=x=", "mcpgate_core=loud"] {
            assert!(filter_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("json"), Some(Format::Json));
        assert_eq!(Format::parse(" Text "), Some(Format::Text));
        assert_eq!(Format::parse("yaml"), None);
        assert_eq!(Format::Json.to_string(), "json");
    }

    #[test]
    fn levels_order_like_tracing() {
        // `enabled` compares against a LevelFilter, where "more verbose" is greater.
        assert!(LevelFilter::DEBUG >= Level::Info.tracing());
        assert!(LevelFilter::WARN < Level::Info.tracing());
        assert!(Level::Debug < Level::Error);
    }
}
