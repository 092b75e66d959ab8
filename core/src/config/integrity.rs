//! The tool-integrity tables of an API (docs/integrity.md): `[api.cache]` (the list cache) and
//! `[api.pin]` (pinning tools and prompts against a lockfile, or trust on first use), plus the
//! command line's `--pin FILE [--trust-on-first-use] --on-tool-change POLICY`. Owns their serde
//! shape, validation and runtime form; `crate::features::integrity` applies them.
//!
//! ```toml
//! [api.cache]
//! default_ttl = "30s"        # answers without ttlMs
//! max_ttl = "5m"             # caps any ttlMs
//! default_scope = "private"  # answers without cacheScope
//!
//! [api.pin]
//! file = "mcpgate.pins.json" # relative to this file
//! on_change = "hide"         # alert | hide | block
//! ```
//!
//! The lockfile is read at every load (a reload after `mcpgate pin` updated it is how an
//! operator accepts a change); a trust-on-first-use file that does not exist yet is fine.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcpgate_policies::integrity::cache::{Scope, TtlRules};
use mcpgate_policies::integrity::pin::{Lockfile, OnChange, UpstreamPins};
use serde::Deserialize;
use toml::Spanned;

use super::{parse_duration, ConfigError, Validator};
use crate::urls::{self, Scheme};

/// `[api.cache]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserApiCache {
    pub enabled: Option<bool>,
    pub default_ttl: Option<Spanned<String>>,
    pub max_ttl: Option<Spanned<String>>,
    pub default_scope: Option<Spanned<String>>,
    pub max_entries: Option<usize>,
    pub max_bytes: Option<usize>,
}

/// `[api.pin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserApiPin {
    pub file: Option<Spanned<String>>,
    pub trust_on_first_use: Option<bool>,
    pub on_change: Option<Spanned<String>>,
    pub prompts: Option<bool>,
}

/// `default_ttl` when not given.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// `max_ttl` when not given.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(300);
/// `max_entries` when not given (per worker).
pub const DEFAULT_MAX_ENTRIES: usize = 1024;
/// `max_bytes` when not given (per worker).
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Validated `[api.cache]` (present and enabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCache {
    pub ttl: TtlRules,
    pub default_scope: Scope,
    /// Per worker.
    pub max_entries: usize,
    /// Per worker.
    pub max_bytes: usize,
}

/// An upstream's pins as the lockfile had them at load (`None`: the file has no entry for it,
/// or does not exist yet). Two loads' pins are equal only when they are the same object: the
/// engine compares contents itself when a reload brings new ones.
#[derive(Debug, Clone)]
pub struct LoadedPins(pub Arc<Option<UpstreamPins>>);

impl PartialEq for LoadedPins {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LoadedPins {}

/// Validated `[api.pin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPin {
    /// The lockfile (relative paths resolved against the config file's directory).
    pub file: PathBuf,
    /// The gateway writes what it sees first (the file is its store) instead of reading a
    /// reviewed lockfile only.
    pub tofu: bool,
    pub on_change: OnChange,
    /// Prompts are pinned too (else only tools).
    pub prompts: bool,
    /// The upstream's key in the lockfile ([`upstream_key`]).
    pub upstream_key: String,
    pub pins: LoadedPins,
}

/// The key of an upstream in a lockfile: its URL normalized (`http://host[:port]/path`), so
/// `mcpgate pin --upstream` and `[[api]] upstream` spelled differently still meet.
pub fn upstream_key(url: &str) -> Result<String, urls::UrlError> {
    let parsed = urls::parse(url)?;
    let scheme = match parsed.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    Ok(format!(
        "{scheme}://{}{}",
        parsed.authority,
        parsed.target()
    ))
}

/// What `--pin FILE`, `--trust-on-first-use` and `--on-tool-change` set on every API.
#[derive(Debug, Clone, Default)]
pub struct PinOverrides {
    pub file: Option<PathBuf>,
    pub tofu: bool,
    pub on_change: Option<String>,
}

impl Validator<'_> {
    /// `[api.cache]` of api `i`: `None` without the table or with `enabled = false`.
    pub(super) fn api_cache(
        &self,
        i: usize,
        user: Option<UserApiCache>,
    ) -> Result<Option<ApiCache>, ConfigError> {
        let Some(c) = user else {
            return Ok(None);
        };
        if c.enabled == Some(false) {
            return Ok(None);
        }
        let field = |name: &str| format!("api[{i}].cache.{name}");
        let ttl = |v: Option<Spanned<String>>, name: &str, default: Duration, zero_ok: bool| match v
        {
            None => Ok(default),
            Some(v) => match parse_duration(v.get_ref()) {
                Some(d) if zero_ok || !d.is_zero() => Ok(d),
                _ => Err(self.invalid(
                    Some(v.span()),
                    &field(name),
                    format!(
                        "`{}` is not a {}duration like \"30s\", \"5m\"",
                        v.get_ref(),
                        if zero_ok { "" } else { "positive " }
                    ),
                )),
            },
        };
        let default_ttl = ttl(c.default_ttl, "default_ttl", DEFAULT_TTL, true)?;
        let max_ttl = ttl(c.max_ttl, "max_ttl", DEFAULT_MAX_TTL, false)?;
        let default_scope = match c.default_scope {
            None => Scope::Private,
            Some(s) => Scope::parse(s.get_ref()).ok_or_else(|| {
                self.invalid(
                    Some(s.span()),
                    &field("default_scope"),
                    "expected \"public\" or \"private\"",
                )
            })?,
        };
        let positive = |v: Option<usize>, name: &str, default: usize| match v {
            None => Ok(default),
            Some(0) => Err(self.invalid(None, &field(name), "must be positive")),
            Some(n) => Ok(n),
        };
        Ok(Some(ApiCache {
            ttl: TtlRules {
                default: default_ttl,
                max: max_ttl,
            },
            default_scope,
            max_entries: positive(c.max_entries, "max_entries", DEFAULT_MAX_ENTRIES)?,
            max_bytes: positive(c.max_bytes, "max_bytes", DEFAULT_MAX_BYTES)?,
        }))
    }

    /// `[api.pin]` of api `i` (the command line's `--pin` replaces it), reading the lockfile.
    pub(super) fn api_pin(
        &self,
        i: usize,
        user: Option<UserApiPin>,
        upstream_url: &str,
        overrides: &PinOverrides,
    ) -> Result<Option<ApiPin>, ConfigError> {
        let field = |name: &str| format!("api[{i}].pin.{name}");
        let (file, tofu, on_change, prompts) = match (&overrides.file, user) {
            (Some(file), _) => {
                let on_change = match overrides.on_change.as_deref() {
                    None => OnChange::Alert,
                    Some(p) => OnChange::parse(p).ok_or_else(|| {
                        self.invalid(None, "--on-tool-change", "expected alert, hide or block")
                    })?,
                };
                (file.clone(), overrides.tofu, on_change, true)
            }
            (None, None) => {
                if overrides.on_change.is_some() || overrides.tofu {
                    return Err(self.invalid(
                        None,
                        if overrides.tofu {
                            "--trust-on-first-use"
                        } else {
                            "--on-tool-change"
                        },
                        "needs --pin FILE (or [api.pin] in the file)",
                    ));
                }
                return Ok(None);
            }
            (None, Some(p)) => {
                let Some(file) = p.file else {
                    return Err(self.invalid(
                        None,
                        &field("file"),
                        "is required: the lockfile (`mcpgate pin` writes it) or, with \
                         trust_on_first_use, the file the gateway writes",
                    ));
                };
                let on_change = match (overrides.on_change.as_deref(), p.on_change) {
                    (Some(cli), _) => OnChange::parse(cli).ok_or_else(|| {
                        self.invalid(None, "--on-tool-change", "expected alert, hide or block")
                    })?,
                    (None, None) => OnChange::Alert,
                    (None, Some(s)) => OnChange::parse(s.get_ref()).ok_or_else(|| {
                        self.invalid(
                            Some(s.span()),
                            &field("on_change"),
                            "expected \"alert\", \"hide\" or \"block\"",
                        )
                    })?,
                };
                (
                    self.relative_to_config(file.get_ref()),
                    p.trust_on_first_use.unwrap_or(false),
                    on_change,
                    p.prompts.unwrap_or(true),
                )
            }
        };
        let file_field = if overrides.file.is_some() {
            "--pin".to_string()
        } else {
            field("file")
        };
        let upstream_key = upstream_key(upstream_url)
            .map_err(|e| self.invalid(None, &format!("api[{i}].upstream"), e.to_string()))?;
        let lock = match std::fs::read_to_string(&file) {
            Ok(text) => Lockfile::parse(&text)
                .map_err(|e| self.invalid(None, &file_field, format!("{}: {e}", file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tofu => Lockfile::default(),
            Err(e) => {
                return Err(self.invalid(
                    None,
                    &file_field,
                    format!(
                        "cannot read `{}`: {e}{}",
                        file.display(),
                        if e.kind() == std::io::ErrorKind::NotFound {
                            " (write it with `mcpgate pin --upstream URL --out FILE`, or set \
                             trust_on_first_use)"
                        } else {
                            ""
                        }
                    ),
                ))
            }
        };
        let mut pins = lock.upstreams.get(&upstream_key).cloned();
        if !prompts {
            if let Some(p) = pins.as_mut() {
                p.prompts = None;
            }
        }
        Ok(Some(ApiPin {
            file,
            tofu,
            on_change,
            prompts,
            upstream_key,
            pins: LoadedPins(Arc::new(pins)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, Overrides};

    fn load(extra: &str) -> Result<crate::config::Config, ConfigError> {
        load_str(
            &format!("[[api]]\npath = \"/a\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n{extra}"),
            "test.toml",
            &Overrides::default(),
        )
    }

    #[test]
    fn cache_table_defaults_and_errors_name_the_field() {
        let cfg = load("[api.cache]\n").unwrap_or_else(|e| panic!("{e}"));
        let cache = cfg.apis[0]
            .cache
            .clone()
            .unwrap_or_else(|| panic!("no cache"));
        assert_eq!(cache.ttl.default, DEFAULT_TTL);
        assert_eq!(cache.default_scope, Scope::Private);
        let cfg = load("[api.cache]\nenabled = false\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.apis[0].cache.is_none());
        let cfg = load("[api.cache]\ndefault_ttl = \"0s\"\ndefault_scope = \"public\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let cache = cfg.apis[0]
            .cache
            .clone()
            .unwrap_or_else(|| panic!("no cache"));
        assert!(cache.ttl.default.is_zero() && cache.default_scope == Scope::Public);
        for (bad, field) in [
            ("max_ttl = \"0s\"", "api[0].cache.max_ttl"),
            ("default_ttl = \"soon\"", "api[0].cache.default_ttl"),
            ("default_scope = \"shared\"", "api[0].cache.default_scope"),
            ("max_entries = 0", "api[0].cache.max_entries"),
        ] {
            let e = load(&format!("[api.cache]\n{bad}\n"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn pin_table_reads_the_lockfile_and_names_the_field() {
        let e = load("[api.pin]\non_change = \"hide\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("api[0].pin.file"), "{e}");
        let e = load("[api.pin]\nfile = \"/nonexistent/pins.json\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("api[0].pin.file") && e.contains("mcpgate pin"),
            "{e}"
        );
        let cfg = load(
            "[api.pin]\nfile = \"/nonexistent/pins.json\"\ntrust_on_first_use = true\non_change = \"block\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let pin = cfg.apis[0].pin.clone().unwrap_or_else(|| panic!("no pin"));
        assert!(pin.tofu && pin.on_change == OnChange::Block && pin.pins.0.is_none());
        assert_eq!(pin.upstream_key, "http://127.0.0.1:3001/mcp");
        let e = load("[api.pin]\nfile = \"x\"\non_change = \"warn\"\ntrust_on_first_use = true\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("api[0].pin.on_change"), "{e}");
    }

    #[test]
    fn upstream_keys_are_normalized() {
        assert_eq!(
            upstream_key("HTTP://LocalHost:80/a/../mcp").ok().as_deref(),
            Some("http://localhost/mcp")
        );
    }
}
