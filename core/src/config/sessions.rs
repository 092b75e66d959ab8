//! `[gateway.sessions]`: the secret that seals the session ids the gateway hands out on APIs with
//! plans (`mcpgate_policies::auth::SessionBinder`: AES-256-GCM, the subject as associated data).
//! Every replica behind one balancer must share it, or a session opened on one replica is a 404 on
//! the next. Rotation: the new secret becomes `secret_*`, the old one moves to `previous_*` until
//! the sessions it sealed have ended.
//!
//! Sources, first found wins for the current secret: `secret_file`, `secret_env`, then the
//! `MCPGATE_SESSION_SECRET` environment variable; previous secrets from `previous_secret_files`,
//! `previous_secret_envs` and `MCPGATE_SESSION_SECRET_PREVIOUS`. With none, a random key drawn
//! once per process seals the ids (they survive reloads, not restarts, and no other replica
//! accepts them) and the gateway warns at start when an API has plans.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use mcpgate_policies::auth::session::{SessionBinder, MIN_SECRET_LEN};
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// The environment variable read when the file names no secret.
pub const SESSION_SECRET_ENV: &str = "MCPGATE_SESSION_SECRET";
/// Previous secrets still accepted (comma-separated) when the file names none.
pub const SESSION_SECRET_PREVIOUS_ENV: &str = "MCPGATE_SESSION_SECRET_PREVIOUS";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSessions {
    pub secret_file: Option<Spanned<String>>,
    pub secret_env: Option<Spanned<String>>,
    #[serde(default)]
    pub previous_secret_files: Vec<Spanned<String>>,
    #[serde(default)]
    pub previous_secret_envs: Vec<Spanned<String>>,
}

/// The validated form: the binder every worker seals and opens with.
#[derive(Clone)]
pub struct Sessions {
    pub binder: Arc<SessionBinder>,
    /// A secret was configured (else a per-process random key: no replica shares it).
    pub configured: bool,
}

impl PartialEq for Sessions {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.binder, &other.binder) && self.configured == other.configured
    }
}

impl Eq for Sessions {}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("configured", &self.configured)
            .finish_non_exhaustive()
    }
}

/// One key per process when none is configured, so a reload keeps the sessions it sealed.
fn process_binder() -> Result<Arc<SessionBinder>, String> {
    static RANDOM: OnceLock<Result<Arc<SessionBinder>, String>> = OnceLock::new();
    RANDOM
        .get_or_init(|| {
            SessionBinder::random()
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// A secret's bytes: the file's content or the variable's value, surrounding whitespace trimmed.
fn read_secret(source: &str, from_file: Option<&Path>) -> Result<Vec<u8>, String> {
    let value = if let Some(path) = from_file {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
    } else {
        std::env::var(source)
            .map_err(|_| format!("the environment variable {source} is not set"))?
            .into_bytes()
    };
    let trimmed = value.trim_ascii().to_vec();
    if trimmed.len() < MIN_SECRET_LEN {
        return Err(format!(
            "the secret is shorter than {MIN_SECRET_LEN} bytes (use e.g. `openssl rand -base64 48`)"
        ));
    }
    Ok(trimmed)
}

impl Validator<'_> {
    pub(super) fn sessions(&self, user: Option<UserSessions>) -> Result<Sessions, ConfigError> {
        let u = user.unwrap_or_default();
        let spanned = |s: &Spanned<String>, file: bool, field: &str| {
            let path = file.then(|| self.relative_to_config(s.get_ref()));
            read_secret(s.get_ref(), path.as_deref())
                .map_err(|m| self.invalid(Some(s.span()), field, m))
        };
        let current = match (&u.secret_file, &u.secret_env) {
            (Some(_), Some(e)) => {
                return Err(self.invalid(
                    Some(e.span()),
                    "gateway.sessions.secret_env",
                    "give secret_file or secret_env, not both",
                ))
            }
            (Some(f), None) => Some(spanned(f, true, "gateway.sessions.secret_file")?),
            (None, Some(e)) => Some(spanned(e, false, "gateway.sessions.secret_env")?),
            (None, None) => match std::env::var(SESSION_SECRET_ENV) {
                Ok(_) => Some(
                    read_secret(SESSION_SECRET_ENV, None)
                        .map_err(|m| self.invalid(None, SESSION_SECRET_ENV, m))?,
                ),
                Err(_) => None,
            },
        };
        let mut previous = Vec::new();
        for (i, f) in u.previous_secret_files.iter().enumerate() {
            previous.push(spanned(
                f,
                true,
                &format!("gateway.sessions.previous_secret_files[{i}]"),
            )?);
        }
        for (i, e) in u.previous_secret_envs.iter().enumerate() {
            previous.push(spanned(
                e,
                false,
                &format!("gateway.sessions.previous_secret_envs[{i}]"),
            )?);
        }
        if u.previous_secret_files.is_empty() && u.previous_secret_envs.is_empty() {
            if let Ok(list) = std::env::var(SESSION_SECRET_PREVIOUS_ENV) {
                for secret in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if secret.len() < MIN_SECRET_LEN {
                        return Err(self.invalid(
                            None,
                            SESSION_SECRET_PREVIOUS_ENV,
                            format!("a secret is shorter than {MIN_SECRET_LEN} bytes"),
                        ));
                    }
                    previous.push(secret.as_bytes().to_vec());
                }
            }
        }
        let Some(current) = current else {
            if !previous.is_empty() {
                return Err(self.invalid(
                    None,
                    "gateway.sessions",
                    "previous secrets are given but no current secret",
                ));
            }
            let binder = process_binder().map_err(|m| self.invalid(None, "gateway.sessions", m))?;
            return Ok(Sessions {
                binder,
                configured: false,
            });
        };
        let previous: Vec<&[u8]> = previous.iter().map(Vec::as_slice).collect();
        let binder = SessionBinder::with_previous(&current, &previous)
            .map_err(|e| self.invalid(None, "gateway.sessions", e.to_string()))?;
        Ok(Sessions {
            binder: Arc::new(binder),
            configured: true,
        })
    }
}
