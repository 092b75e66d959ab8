//! Binding a session id to the subject that created it (MCP security rules: session hijacking).
//! The engine mints the gateway's session id as `<payload>.<tag>`, where the payload is whatever
//! it needs to route the session (upstream session id, endpoint) and the tag is
//! HMAC-SHA256(subject ‖ payload). Any worker or replica holding the same key can check that the
//! subject presenting a session id is the one it was minted for; a mismatch is a 404, exactly as
//! for a session that does not exist. The key is derived once (HKDF) when the binder is built.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::{hkdf, hmac};

use super::error::AuthError;

/// Length of the base64url tag appended to a sealed session id.
pub const TAG_B64_LEN: usize = 43;
const HKDF_SALT: &[u8] = b"mcpgate session binding salt v1";
const HKDF_INFO: &[u8] = b"mcpgate session binding v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionKeyError {
    #[error("session secret must be at least 32 bytes")]
    TooShort,
    #[error("could not draw a random session key")]
    Random,
}

#[derive(Debug, Clone)]
pub struct SessionBinder {
    key: hmac::Key,
}

struct HmacLen;
impl hkdf::KeyType for HmacLen {
    fn len(&self) -> usize {
        32
    }
}

impl SessionBinder {
    /// From a configured secret shared by every replica (so any replica serves any session).
    pub fn from_secret(secret: &[u8]) -> Result<SessionBinder, SessionKeyError> {
        if secret.len() < 32 {
            return Err(SessionKeyError::TooShort);
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(secret);
        let mut key = [0u8; 32];
        prk.expand(&[HKDF_INFO], HmacLen)
            .and_then(|okm| okm.fill(&mut key))
            .map_err(|_| SessionKeyError::TooShort)?;
        Ok(SessionBinder {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        })
    }

    /// A random key: for a single replica with no configured secret (sessions then do not
    /// survive a restart, which MCP clients handle by re-initialising).
    pub fn random() -> Result<SessionBinder, SessionKeyError> {
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| SessionKeyError::Random)?;
        SessionBinder::from_secret(&secret)
    }

    fn tag(&self, subject: Option<&str>, payload: &str) -> hmac::Tag {
        hmac::sign(&self.key, &signed_input(subject, payload))
    }

    /// `<payload>.<tag>`. The payload must be visible ASCII (MCP session ids are 0x21–0x7E).
    pub fn seal(&self, subject: Option<&str>, payload: &str) -> String {
        let tag = self.tag(subject, payload);
        let mut sealed = String::with_capacity(payload.len() + 1 + TAG_B64_LEN);
        sealed.push_str(payload);
        sealed.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut sealed);
        sealed
    }

    /// The payload of a sealed id if it was minted for `subject`; otherwise 404.
    pub fn open<'a>(&self, subject: Option<&str>, sealed: &'a str) -> Result<&'a str, AuthError> {
        let split = sealed
            .len()
            .checked_sub(TAG_B64_LEN + 1)
            .ok_or(AuthError::SessionNotFound)?;
        let payload = sealed.get(..split).ok_or(AuthError::SessionNotFound)?;
        let rest = sealed.get(split..).ok_or(AuthError::SessionNotFound)?;
        let tag_b64 = rest.strip_prefix('.').ok_or(AuthError::SessionNotFound)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag_b64)
            .map_err(|_| AuthError::SessionNotFound)?;
        // ring's verify compares in constant time.
        hmac::verify(&self.key, &signed_input(subject, payload), &tag)
            .map_err(|_| AuthError::SessionNotFound)?;
        Ok(payload)
    }
}

/// Subject framing: a presence byte and a length prefix, so `("ab", "c…")` and `("a", "bc…")`,
/// and "no subject" versus `""`, can never produce the same input.
fn signed_input(subject: Option<&str>, payload: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + subject.map_or(0, str::len) + payload.len());
    match subject {
        None => out.push(0),
        Some(subject) => {
            out.push(1);
            out.extend_from_slice(&(subject.len() as u64).to_be_bytes());
            out.extend_from_slice(subject.as_bytes());
        }
    }
    out.extend_from_slice(payload.as_bytes());
    out
}
