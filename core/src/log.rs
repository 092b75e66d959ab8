//! Leveled logging to stderr, set once from `MCPGATE_LOG` (`debug`, `info`, `warn`, `error`; default
//! `info`). Deliberately tiny: one `eprintln!` per line, no allocation when a level is off.
//! Callers never pass tokens, `Authorization` values or session ids.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Reads `MCPGATE_LOG`; unknown values keep `info` and say so.
pub fn init_from_env() {
    if let Ok(v) = std::env::var("MCPGATE_LOG") {
        let level = match v.to_ascii_lowercase().as_str() {
            "debug" | "trace" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" => Level::Error,
            _ => {
                eprintln!(
                    "mcpgate: [warn] MCPGATE_LOG={v:?} is not debug|info|warn|error; using info"
                );
                Level::Info
            }
        };
        LEVEL.store(level as u8, Ordering::Relaxed);
    }
}

#[inline]
pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

#[macro_export]
macro_rules! log_at {
    ($level:expr, $tag:literal, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            eprintln!(concat!("mcpgate: [", $tag, "] {}"), format_args!($($arg)*));
        }
    };
}
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Debug, "debug", $($arg)*) }; }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Info, "info", $($arg)*) }; }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Warn, "warn", $($arg)*) }; }
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Error, "error", $($arg)*) }; }
