//! Authentication of the admin listener: `[gateway.admin_auth]`, `gateway.allow_unauthenticated_admin`,
//! and their command-line and environment counterparts (`--admin-token-file`,
//! `MCPGATE_ADMIN_TOKEN`, `--allow-unauthenticated-admin`). Validated into [`AdminAuth`], which
//! `crate::admin_auth` checks on every admin request except the probes.
//!
//! ```toml
//! [gateway]
//! admin = "0.0.0.0:9901"
//!
//! [gateway.admin_auth]
//! token_file = "/run/secrets/mcpgate-admin"     # or token_env = "ADMIN_TOKEN"
//! metrics_token_env = "SCRAPE_TOKEN"            # optional: a token that only opens /metrics
//! ```
//!
//! Only SHA-256 digests of the tokens are kept, so no snapshot, `Debug` output or log line can
//! hold one. Token files are read, and variables looked up, at every load (start, `check`,
//! SIGHUP): a reload rotates the tokens.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// The environment variable `mcpgate run` and `mcpgate check` read the admin token from.
pub const ADMIN_TOKEN_ENV: &str = "MCPGATE_ADMIN_TOKEN";
/// Shortest token accepted (bytes): short enough to paste, long enough not to guess.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted (bytes): it travels in a header.
pub const MAX_TOKEN_LEN: usize = 4096;

/// `[gateway.admin_auth]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAdminAuth {
    pub token_file: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub metrics_token_file: Option<Spanned<String>>,
    pub metrics_token_env: Option<Spanned<String>>,
}

/// `[gateway.manage]` as written: where the management API (`crate::manage`) keeps the
/// deployed versions of the config file and its audit log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserManage {
    pub history_keep: Option<Spanned<i64>>,
    pub history_dir: Option<Spanned<String>>,
    pub audit_log: Option<Spanned<String>>,
}

/// Deployed versions kept when `history_keep` is not given.
pub const DEFAULT_HISTORY_KEEP: usize = 20;

/// Validated `[gateway.manage]`. Paths are resolved against the config file's directory;
/// `None` means the default next to the config file (`crate::manage` derives it, since the
/// embedded default has no file to be next to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manage {
    pub history_keep: usize,
    pub history_dir: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
}

impl Default for Manage {
    fn default() -> Self {
        Manage {
            history_keep: DEFAULT_HISTORY_KEEP,
            history_dir: None,
            audit_log: None,
        }
    }
}

/// A token as a SHA-256 digest, with where it came from (for the startup summary).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    digest: [u8; 32],
    origin: String,
}

impl AdminToken {
    /// Checks a token; `origin` says where it came from, for messages.
    pub fn new(token: &str, origin: impl Into<String>) -> Result<AdminToken, String> {
        if token.len() < MIN_TOKEN_LEN || token.len() > MAX_TOKEN_LEN {
            return Err(format!(
                "the token must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} bytes long"
            ));
        }
        // It is sent as `Authorization: Bearer <token>` and typed into the login page.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the token must be printable ASCII without spaces (e.g. `openssl rand -hex 32`)"
                    .into(),
            );
        }
        Ok(AdminToken {
            digest: sha256(token.as_bytes()),
            origin: origin.into(),
        })
    }

    /// SHA-256 of the token: what presented tokens are compared against, and the key of the
    /// console's session cookies.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// `--admin-token-file /x`, `MCPGATE_ADMIN_TOKEN`, `gateway.admin_auth.token_env (X)`…
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdminToken(from {})", self.origin)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Validated admin authentication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminAuth {
    /// `None`: the admin listener is open (allowed on loopback, or explicitly elsewhere).
    pub token: Option<AdminToken>,
    /// A second token that opens `/metrics` only (a Prometheus scrape job's).
    pub metrics_token: Option<AdminToken>,
    /// `allow_unauthenticated_admin` / `--allow-unauthenticated-admin`.
    pub allow_unauthenticated: bool,
}

impl AdminAuth {
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }
}

/// A secret from the environment, kept out of `Debug` output.
#[derive(Clone, Default)]
pub struct SecretValue(pub String);

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(…)")
    }
}

/// What the command line and the environment say about admin authentication.
#[derive(Debug, Clone, Default)]
pub struct AdminOverrides {
    /// `--admin-token-file FILE` (relative to the working directory).
    pub token_file: Option<PathBuf>,
    /// The value of `MCPGATE_ADMIN_TOKEN`, read by the CLI.
    pub token_env: Option<SecretValue>,
    /// `--allow-unauthenticated-admin`.
    pub allow_unauthenticated: bool,
}

impl AdminOverrides {
    /// `MCPGATE_ADMIN_TOKEN` (an empty value counts as unset).
    pub fn from_env() -> AdminOverrides {
        AdminOverrides {
            token_env: std::env::var(ADMIN_TOKEN_ENV)
                .ok()
                .filter(|v| !v.is_empty())
                .map(SecretValue),
            ..AdminOverrides::default()
        }
    }
}

fn read_token_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    // Files written by `echo` or editors end with a newline that is not part of the token.
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

impl Validator<'_> {
    /// `[gateway.manage]`.
    pub(super) fn manage(&self, table: Option<UserManage>) -> Result<Manage, ConfigError> {
        let table = table.unwrap_or_default();
        let history_keep = match table.history_keep {
            None => DEFAULT_HISTORY_KEEP,
            Some(n) => match usize::try_from(*n.get_ref()) {
                Ok(v) if (1..=10_000).contains(&v) => v,
                _ => {
                    return Err(self.invalid(
                        Some(n.span()),
                        "gateway.manage.history_keep",
                        "expected 1 to 10000 deployed versions",
                    ))
                }
            },
        };
        let path =
            |v: Option<Spanned<String>>, key: &str| -> Result<Option<PathBuf>, ConfigError> {
                match v {
                    None => Ok(None),
                    Some(p) if p.get_ref().trim().is_empty() => Err(self.invalid(
                        Some(p.span()),
                        key,
                        "expected a path (leave the key out for the default)",
                    )),
                    Some(p) => Ok(Some(self.relative_to_config(p.get_ref()))),
                }
            };
        Ok(Manage {
            history_keep,
            history_dir: path(table.history_dir, "gateway.manage.history_dir")?,
            audit_log: path(table.audit_log, "gateway.manage.audit_log")?,
        })
    }

    /// One token from `file` or `env` (at most one of them) of `[gateway.admin_auth]`.
    fn token_from_table(
        &self,
        file: Option<Spanned<String>>,
        env: Option<Spanned<String>>,
        field: &str,
    ) -> Result<Option<AdminToken>, ConfigError> {
        match (file, env) {
            (None, None) => Ok(None),
            (Some(_), Some(env)) => Err(self.invalid(
                Some(env.span()),
                &format!("gateway.admin_auth.{field}_env"),
                format!("give either {field}_file or {field}_env, not both"),
            )),
            (Some(file), None) => {
                let key = format!("gateway.admin_auth.{field}_file");
                let path = self.relative_to_config(file.get_ref());
                let token = read_token_file(&path)
                    .and_then(|t| AdminToken::new(&t, format!("{key} ({})", path.display())))
                    .map_err(|m| self.invalid(Some(file.span()), &key, m))?;
                Ok(Some(token))
            }
            (None, Some(env)) => {
                let key = format!("gateway.admin_auth.{field}_env");
                let name = env.get_ref();
                let value = std::env::var(name).map_err(|_| {
                    self.invalid(
                        Some(env.span()),
                        &key,
                        format!("the environment variable `{name}` is not set"),
                    )
                })?;
                let token = AdminToken::new(&value, format!("{key} ({name})"))
                    .map_err(|m| self.invalid(Some(env.span()), &key, format!("`{name}`: {m}")))?;
                Ok(Some(token))
            }
        }
    }

    /// Admin authentication from the file, then the environment, then the command line (each
    /// overriding the one before), and the refusal to expose an open admin listener.
    pub(super) fn admin_auth(
        &self,
        table: Option<UserAdminAuth>,
        allow_unauthenticated: Option<bool>,
        admin: Option<SocketAddr>,
        admin_at: (&str, Option<std::ops::Range<usize>>),
        ov: &AdminOverrides,
    ) -> Result<AdminAuth, ConfigError> {
        let table = table.unwrap_or_default();
        let mut token = self.token_from_table(table.token_file, table.token_env, "token")?;
        let metrics_token = self.token_from_table(
            table.metrics_token_file,
            table.metrics_token_env,
            "metrics_token",
        )?;
        if let Some(value) = &ov.token_env {
            token = Some(
                AdminToken::new(&value.0, ADMIN_TOKEN_ENV)
                    .map_err(|m| self.invalid(None, ADMIN_TOKEN_ENV, m))?,
            );
        }
        if let Some(path) = &ov.token_file {
            let origin = format!("--admin-token-file {}", path.display());
            token = Some(
                read_token_file(path)
                    .and_then(|t| AdminToken::new(&t, origin))
                    .map_err(|m| self.invalid(None, "--admin-token-file", m))?,
            );
        }
        if token.is_none() && metrics_token.is_some() {
            return Err(self.invalid(
                None,
                "gateway.admin_auth.metrics_token_file",
                "a metrics token needs an admin token too (otherwise the listener is open anyway)",
            ));
        }
        let allow = ov.allow_unauthenticated || allow_unauthenticated.unwrap_or(false);
        if let (Some(addr), None, false) = (admin, &token, allow) {
            if !addr.ip().is_loopback() {
                return Err(self.invalid(
                    admin_at.1,
                    admin_at.0,
                    format!(
                        "the admin listener on {addr} (not a loopback address) would serve the \
                         console, metrics and exchange logs to anyone who can reach it: give it a \
                         token ([gateway.admin_auth] token_file or token_env, \
                         --admin-token-file, or {ADMIN_TOKEN_ENV}), or set \
                         allow_unauthenticated_admin = true (--allow-unauthenticated-admin) if \
                         something in front of it authenticates"
                    ),
                ));
            }
        }
        Ok(AdminAuth {
            token,
            metrics_token,
            allow_unauthenticated: allow,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{load_str, Config, Overrides};
    use super::*;

    const API: &str = "[[api]]\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n";
    const TOKEN: &str = "s3cret-admin-token-0123456789";

    fn load(text: &str, ov: &Overrides) -> Result<Config, String> {
        load_str(text, "test.toml", ov).map_err(|e| e.to_string())
    }

    fn scratch(name: &str, contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mcpgate-admin-cfg-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    #[test]
    fn loopback_admin_may_be_open_and_others_may_not() {
        let cfg = load(
            &format!("[gateway]\nadmin = \"127.0.0.1:9901\"\n{API}"),
            &Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!cfg.gateway.admin_auth.enabled());
        let e = load(
            &format!("[gateway]\nadmin = \"0.0.0.0:9901\"\n{API}"),
            &Overrides::default(),
        )
        .err()
        .unwrap_or_default();
        assert!(
            e.contains("gateway.admin") && e.contains("allow_unauthenticated_admin"),
            "{e}"
        );
        let cfg = load(
            &format!(
                "[gateway]\nadmin = \"0.0.0.0:9901\"\nallow_unauthenticated_admin = true\n{API}"
            ),
            &Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.gateway.admin_auth.allow_unauthenticated);
        // `--admin` on the command line is checked the same way.
        let ov = Overrides {
            admin: Some("[::]:9901".into()),
            ..Overrides::default()
        };
        assert!(load(API, &ov).is_err());
        let ov = Overrides {
            admin: Some("[::]:9901".into()),
            admin_auth: AdminOverrides {
                allow_unauthenticated: true,
                ..AdminOverrides::default()
            },
            ..Overrides::default()
        };
        assert!(load(API, &ov).is_ok());
    }

    #[test]
    fn token_sources_and_precedence() {
        let file = scratch("token", &format!("{TOKEN}\n"));
        let text = format!(
            "[gateway]\nadmin = \"0.0.0.0:9901\"\n[gateway.admin_auth]\ntoken_file = \"{}\"\n{API}",
            file.display()
        );
        let cfg = load(&text, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        let token = cfg.gateway.admin_auth.token.clone();
        assert_eq!(
            token.as_ref().map(AdminToken::digest),
            Some(&sha256(TOKEN.as_bytes())),
            "the trailing newline is not part of the token"
        );
        assert!(format!("{token:?}").contains("token_file"));
        assert!(!format!("{cfg:?}").contains(TOKEN));
        // The environment overrides the file, the command line overrides both.
        let other = "another-admin-token-abcdef";
        let ov = Overrides {
            admin_auth: AdminOverrides {
                token_env: Some(SecretValue(other.into())),
                ..AdminOverrides::default()
            },
            ..Overrides::default()
        };
        let cfg = load(&text, &ov).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cfg.gateway
                .admin_auth
                .token
                .as_ref()
                .map(AdminToken::digest),
            Some(&sha256(other.as_bytes()))
        );
        let ov = Overrides {
            admin_auth: AdminOverrides {
                token_file: Some(file.clone()),
                token_env: Some(SecretValue(other.into())),
                ..AdminOverrides::default()
            },
            ..Overrides::default()
        };
        let cfg = load(&text, &ov).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cfg.gateway
                .admin_auth
                .token
                .as_ref()
                .map(|t| t.origin().to_string()),
            Some(format!("--admin-token-file {}", file.display()))
        );
    }

    #[test]
    fn bad_tokens_and_shapes_are_refused_naming_the_field() {
        let short = scratch("short", "abc\n");
        let e = load(
            &format!(
                "[gateway.admin_auth]\ntoken_file = \"{}\"\n{API}",
                short.display()
            ),
            &Overrides::default(),
        )
        .err()
        .unwrap_or_default();
        assert!(
            e.starts_with("test.toml:2:14: gateway.admin_auth.token_file:") && e.contains("16"),
            "{e}"
        );
        let e = load(
            &format!("[gateway.admin_auth]\ntoken_env = \"MCPGATE_TEST_SURELY_UNSET_VAR\"\n{API}"),
            &Overrides::default(),
        )
        .err()
        .unwrap_or_default();
        assert!(
            e.contains("gateway.admin_auth.token_env") && e.contains("not set"),
            "{e}"
        );
        let e = load(
            &format!("[gateway.admin_auth]\ntoken_file = \"a\"\ntoken_env = \"B\"\n{API}"),
            &Overrides::default(),
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("not both"), "{e}");
        let e = load(
            &format!("[gateway.admin_auth]\ntoken = \"inline\"\n{API}"),
            &Overrides::default(),
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("unknown field `token`"), "{e}");
        let spaced = scratch("spaced", "has a space in the middle\n");
        let e = load(
            &format!(
                "[gateway.admin_auth]\ntoken_file = \"{}\"\n{API}",
                spaced.display()
            ),
            &Overrides::default(),
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("printable ASCII"), "{e}");
        let metrics = scratch("metrics", TOKEN);
        let e = load(
            &format!(
                "[gateway.admin_auth]\nmetrics_token_file = \"{}\"\n{API}",
                metrics.display()
            ),
            &Overrides::default(),
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("needs an admin token"), "{e}");
    }
}
