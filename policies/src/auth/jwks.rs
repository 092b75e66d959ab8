//! Key sets: a JWKS document (RFC 7517 §5) parsed into keys looked up by `kid`, and the refetch
//! policy that decides when an unknown `kid` may send the engine to fetch the JWKS again (key
//! rotation) without letting a stream of made-up `kid`s turn the gateway into a request
//! amplifier against the authorization server. The engine does the fetching; this is the state.

use super::keys::{KeyError, VerifyingKey};

/// More keys than this in one JWKS is refused: real sets hold a handful.
pub const MAX_JWKS_KEYS: usize = 64;
/// Default minimum interval between two refetches triggered by unknown `kid`s.
pub const DEFAULT_MIN_REFETCH_INTERVAL_SECS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS is not JSON: {0}")]
    Json(String),
    #[error("JWKS has no `keys` array")]
    NoKeys,
    #[error("JWKS has more than {MAX_JWKS_KEYS} keys")]
    TooManyKeys,
    #[error("JWKS has no usable signature key")]
    NoUsableKey,
    #[error("two keys share the kid {0:?}")]
    DuplicateKid(String),
}

/// Keys a plan verifies with. Small; lookups scan (a handful of keys beats hashing the `kid`).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    pub fn new(keys: Vec<VerifyingKey>) -> Result<KeySet, JwksError> {
        for (i, key) in keys.iter().enumerate() {
            if let Some(kid) = key.kid() {
                if keys
                    .iter()
                    .skip(i + 1)
                    .any(|other| other.kid() == Some(kid))
                {
                    return Err(JwksError::DuplicateKid(kid.to_owned()));
                }
            }
        }
        Ok(KeySet { keys })
    }

    /// Parses a JWKS published by an authorization server. Keys that are not signature keys or
    /// of a type we do not implement are skipped (RFC 7517 §5 asks for that), symmetric keys
    /// included; the set is refused only when nothing usable is left.
    pub fn from_jwks_json(document: &[u8]) -> Result<KeySet, JwksError> {
        KeySet::from_jwks_json_with(document, false).map(|(set, _skipped)| set)
    }

    /// As [`KeySet::from_jwks_json`], also returning why each skipped key was skipped (for the
    /// engine's log), and optionally admitting `oct` keys (static configuration only).
    pub fn from_jwks_json_with(
        document: &[u8],
        allow_symmetric: bool,
    ) -> Result<(KeySet, Vec<KeyError>), JwksError> {
        let value: serde_json::Value =
            serde_json::from_slice(document).map_err(|e| JwksError::Json(e.to_string()))?;
        let keys = value
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or(JwksError::NoKeys)?;
        if keys.len() > MAX_JWKS_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let mut usable = Vec::with_capacity(keys.len());
        let mut skipped = Vec::new();
        for jwk in keys {
            match VerifyingKey::from_jwk(jwk, allow_symmetric) {
                Ok(key) => usable.push(key),
                Err(why) => skipped.push(why),
            }
        }
        if usable.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok((KeySet::new(usable)?, skipped))
    }

    pub fn by_kid(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|key| key.kid() == Some(kid))
    }

    pub fn iter(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.iter()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// When may the engine fetch the JWKS again? At most once per `min_interval` when a token names
/// an unknown `kid` (or when no set was ever loaded); failed fetches count as fetches so an
/// unreachable authorization server is not hammered either.
#[derive(Debug, Clone)]
pub struct RefetchPolicy {
    min_interval_secs: u64,
    last_attempt: Option<u64>,
}

impl RefetchPolicy {
    pub fn new(min_interval_secs: u64) -> Self {
        RefetchPolicy {
            min_interval_secs,
            last_attempt: None,
        }
    }

    /// Whether a fetch may start at `now`. Does not record anything: call
    /// [`RefetchPolicy::record_attempt`] when the fetch actually starts.
    pub fn may_refetch(&self, now: u64) -> bool {
        match self.last_attempt {
            None => true,
            Some(last) => now.saturating_sub(last) >= self.min_interval_secs || now < last,
        }
    }

    pub fn record_attempt(&mut self, now: u64) {
        self.last_attempt = Some(now);
    }

    /// `may_refetch` and `record_attempt` in one step: `true` means "go fetch now".
    pub fn try_begin(&mut self, now: u64) -> bool {
        let allowed = self.may_refetch(now);
        if allowed {
            self.record_attempt(now);
        }
        allowed
    }

    pub fn last_attempt(&self) -> Option<u64> {
        self.last_attempt
    }
}

impl Default for RefetchPolicy {
    fn default() -> Self {
        RefetchPolicy::new(DEFAULT_MIN_REFETCH_INTERVAL_SECS)
    }
}
