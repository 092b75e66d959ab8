//! The API-key plan. Keys are never kept in clear: each is stored as HMAC-SHA256 under a key
//! drawn once when the plan is built, and a presented key is hashed the same way and looked up by
//! digest. The lookup's timing therefore depends only on a keyed digest the client cannot predict
//! (nothing about the stored keys leaks through it), and the final equality is constant-time.

use std::collections::HashMap;

use ring::hmac;
use subtle::ConstantTimeEq;

use super::error::AuthError;
use super::principal::{PlanKind, Principal};

/// Shorter keys are refused at load: a guessable key is no key.
pub const MIN_API_KEY_LEN: usize = 16;
/// Longer presented values are refused before hashing.
const MAX_API_KEY_LEN: usize = 512;
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API key #{0} is shorter than {MIN_API_KEY_LEN} bytes")]
    TooShort(usize),
    #[error("API key #{0} is longer than {MAX_API_KEY_LEN} bytes")]
    TooLong(usize),
    #[error("API key #{0} is configured twice")]
    Duplicate(usize),
    #[error("no API keys configured")]
    Empty,
    #[error("could not draw a random hashing key")]
    Random,
    #[error("invalid header name {0:?}")]
    HeaderName(String),
}

type Digest = [u8; 32];

#[derive(Debug)]
pub struct ApiKeyPlan {
    header: Box<str>,
    hashing_key: hmac::Key,
    by_digest: HashMap<Digest, usize, ahash::RandomState>,
    digests: Vec<Digest>,
    subjects: Vec<Box<str>>,
}

/// One configured key and the subject requests carrying it act as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyEntry {
    pub key: String,
    pub subject: String,
}

impl ApiKeyPlan {
    /// Builds the plan with a random hashing key (ring's system RNG, drawn once here).
    pub fn new(header: &str, keys: &[ApiKeyEntry]) -> Result<ApiKeyPlan, ApiKeyError> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| ApiKeyError::Random)?;
        ApiKeyPlan::with_hashing_key(header, keys, &seed)
    }

    pub fn with_hashing_key(
        header: &str,
        keys: &[ApiKeyEntry],
        hashing_key: &[u8],
    ) -> Result<ApiKeyPlan, ApiKeyError> {
        if header.is_empty()
            || !header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(ApiKeyError::HeaderName(header.to_owned()));
        }
        if keys.is_empty() {
            return Err(ApiKeyError::Empty);
        }
        let hashing_key = hmac::Key::new(hmac::HMAC_SHA256, hashing_key);
        let mut by_digest =
            HashMap::with_capacity_and_hasher(keys.len(), ahash::RandomState::new());
        let mut digests = Vec::with_capacity(keys.len());
        let mut subjects = Vec::with_capacity(keys.len());
        for (i, entry) in keys.iter().enumerate() {
            if entry.key.len() < MIN_API_KEY_LEN {
                return Err(ApiKeyError::TooShort(i));
            }
            if entry.key.len() > MAX_API_KEY_LEN {
                return Err(ApiKeyError::TooLong(i));
            }
            let digest = digest_of(&hashing_key, entry.key.as_bytes());
            if by_digest.insert(digest, i).is_some() {
                return Err(ApiKeyError::Duplicate(i));
            }
            digests.push(digest);
            subjects.push(entry.subject.as_str().into());
        }
        Ok(ApiKeyPlan {
            header: header.to_ascii_lowercase().into(),
            hashing_key,
            by_digest,
            digests,
            subjects,
        })
    }

    /// The header carrying the key (lowercase).
    pub fn header(&self) -> &str {
        &self.header
    }

    pub fn check(&self, presented: &[u8]) -> Result<Principal, AuthError> {
        if presented.is_empty() || presented.len() > MAX_API_KEY_LEN {
            return Err(AuthError::InvalidApiKey);
        }
        let digest = digest_of(&self.hashing_key, presented);
        let index = *self
            .by_digest
            .get(&digest)
            .ok_or(AuthError::InvalidApiKey)?;
        let stored = self.digests.get(index).ok_or(AuthError::InvalidApiKey)?;
        if !bool::from(stored.ct_eq(&digest)) {
            return Err(AuthError::InvalidApiKey);
        }
        let mut principal = Principal::anonymous();
        principal.subject = self.subjects.get(index).cloned();
        principal.plan = PlanKind::ApiKey;
        Ok(principal)
    }
}

fn digest_of(key: &hmac::Key, value: &[u8]) -> Digest {
    let tag = hmac::sign(key, value);
    let mut digest = [0u8; 32];
    digest.copy_from_slice(tag.as_ref());
    digest
}

/// Parses a keys file: one key per line, optionally preceded by a subject and whitespace
/// (`alice 3f9c…`); blank lines and `#` comments ignored. A key without a subject acts as
/// `api-key-<line>`.
pub fn parse_keys_file(text: &str) -> Vec<ApiKeyEntry> {
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut fields = line.split_whitespace();
            let first = fields.next()?;
            Some(match fields.next() {
                Some(key) => ApiKeyEntry {
                    key: key.to_owned(),
                    subject: first.to_owned(),
                },
                None => ApiKeyEntry {
                    key: first.to_owned(),
                    subject: format!("api-key-{}", n + 1),
                },
            })
        })
        .collect()
}
