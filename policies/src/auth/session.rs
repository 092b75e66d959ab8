//! The session ids the gateway hands out on APIs with plans (MCP security rules: session
//! hijacking). The id is opaque: `base64url(key id ‖ nonce ‖ AES-256-GCM(payload))`, with the
//! subject that created the session as associated data. The payload is whatever the engine needs
//! to route the session (the upstream's session id); the client never sees it. Any worker or
//! replica holding the same key opens it and checks that the subject presenting it is the one it
//! was minted for; a mismatch, a tampered id or an unknown key is a 404, exactly as for a session
//! that does not exist.
//!
//! Keys are derived once (HKDF-SHA256) when the binder is built, never per request. Rotation: a
//! binder seals with its current key and opens with the current one or any previous one it was
//! given (the key id byte picks it), so sessions minted before a rotation keep working until the
//! previous secret is retired.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

use super::error::AuthError;

/// Shortest secret accepted (bytes).
pub const MIN_SECRET_LEN: usize = 32;
/// Longest sealed id a client may present (bytes of base64url): a bound before any decoding.
const MAX_SEALED_LEN: usize = 4096;
const HKDF_SALT: &[u8] = b"mcpgate session id salt v2";
const HKDF_INFO_KEY: &[u8] = b"mcpgate session id aead key v2";
const HKDF_INFO_ID: &[u8] = b"mcpgate session id key id v2";
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionKeyError {
    #[error("session secret must be at least {MIN_SECRET_LEN} bytes")]
    TooShort,
    #[error("could not draw a random session key")]
    Random,
}

/// One AEAD key and the byte that names it in a sealed id.
struct SessionKey {
    id: u8,
    key: LessSafeKey,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl SessionKey {
    fn derive(secret: &[u8]) -> Result<SessionKey, SessionKeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SessionKeyError::TooShort);
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(secret);
        let mut key = [0u8; 32];
        let mut id = [0u8; 1];
        prk.expand(&[HKDF_INFO_KEY], Len(32))
            .and_then(|okm| okm.fill(&mut key))
            .and_then(|()| prk.expand(&[HKDF_INFO_ID], Len(1)))
            .and_then(|okm| okm.fill(&mut id))
            .map_err(|_| SessionKeyError::TooShort)?;
        let key = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| SessionKeyError::TooShort)?;
        Ok(SessionKey {
            id: id[0],
            key: LessSafeKey::new(key),
        })
    }
}

#[derive(Debug)]
pub struct SessionBinder {
    current: SessionKey,
    /// Keys of retired secrets, still accepted when opening.
    previous: Vec<SessionKey>,
    rng: SystemRandom,
}

impl SessionBinder {
    /// From a configured secret shared by every replica (so any replica serves any session).
    pub fn from_secret(secret: &[u8]) -> Result<SessionBinder, SessionKeyError> {
        Self::with_previous(secret, &[])
    }

    /// Seals with `current`; also opens ids sealed with any of `previous` (rotation).
    pub fn with_previous(
        current: &[u8],
        previous: &[&[u8]],
    ) -> Result<SessionBinder, SessionKeyError> {
        Ok(SessionBinder {
            current: SessionKey::derive(current)?,
            previous: previous
                .iter()
                .map(|secret| SessionKey::derive(secret))
                .collect::<Result<_, _>>()?,
            rng: SystemRandom::new(),
        })
    }

    /// A random key: for a single replica with no configured secret (sessions then do not
    /// survive a restart, which MCP clients handle by re-initialising).
    pub fn random() -> Result<SessionBinder, SessionKeyError> {
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| SessionKeyError::Random)?;
        SessionBinder::from_secret(&secret)
    }

    /// The opaque id for `payload` (the upstream's session id) minted for `subject`.
    pub fn seal(&self, subject: Option<&str>, payload: &str) -> Result<String, SessionKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| SessionKeyError::Random)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + payload.len() + TAG_LEN);
        sealed.push(self.current.id);
        sealed.extend_from_slice(&nonce);
        let mut in_out = payload.as_bytes().to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(subject)),
                &mut in_out,
            )
            .map_err(|_| SessionKeyError::Random)?;
        sealed.extend_from_slice(&in_out);
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The payload of a sealed id if it was minted for `subject` with a key this binder holds;
    /// otherwise 404.
    pub fn open(&self, subject: Option<&str>, sealed: &str) -> Result<String, AuthError> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(AuthError::SessionNotFound);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| AuthError::SessionNotFound)?;
        let (&id, rest) = raw.split_first().ok_or(AuthError::SessionNotFound)?;
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(AuthError::SessionNotFound);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = associated_data(subject);
        // The id byte narrows the keys to try (two secrets may share one; the tag decides).
        for key in std::iter::once(&self.current)
            .chain(&self.previous)
            .filter(|k| k.id == id)
        {
            let Ok(nonce) = Nonce::try_assume_unique_for_key(nonce) else {
                break;
            };
            let mut in_out = ciphertext.to_vec();
            if let Ok(payload) = key.key.open_in_place(nonce, Aad::from(&aad), &mut in_out) {
                return String::from_utf8(payload.to_vec()).map_err(|_| AuthError::SessionNotFound);
            }
        }
        Err(AuthError::SessionNotFound)
    }
}

/// Subject framing: a presence byte and a length prefix, so "no subject" and `""`, or two
/// subjects, can never produce the same associated data.
fn associated_data(subject: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + subject.map_or(0, str::len));
    match subject {
        None => out.push(0),
        Some(subject) => {
            out.push(1);
            out.extend_from_slice(&(subject.len() as u64).to_be_bytes());
            out.extend_from_slice(subject.as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"0123456789abcdef0123456789abcdef-a";
    const B: &[u8] = b"0123456789abcdef0123456789abcdef-b";

    fn binder(secret: &[u8]) -> SessionBinder {
        SessionBinder::from_secret(secret).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_sealed_id_is_opaque_and_opens_for_its_subject_only() {
        let b = binder(A);
        let sealed = b
            .seal(Some("alice"), "upstream-session-1234")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!sealed.contains("upstream"), "{sealed}");
        assert!(
            sealed.bytes().all(|c| (0x21..=0x7e).contains(&c)),
            "{sealed}"
        );
        assert_eq!(
            b.open(Some("alice"), &sealed).as_deref(),
            Ok("upstream-session-1234")
        );
        assert_eq!(
            b.open(Some("bob"), &sealed),
            Err(AuthError::SessionNotFound)
        );
        assert_eq!(b.open(None, &sealed), Err(AuthError::SessionNotFound));
        // Two seals of one payload differ (random nonce): ids cannot be linked.
        let again = b
            .seal(Some("alice"), "upstream-session-1234")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(sealed, again);
        let anonymous = b.seal(None, "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.open(None, &anonymous).as_deref(), Ok("x"));
        assert_eq!(
            b.open(Some(""), &anonymous),
            Err(AuthError::SessionNotFound)
        );
    }

    #[test]
    fn tampered_foreign_or_garbage_ids_are_not_found() {
        let b = binder(A);
        let sealed = b
            .seal(Some("alice"), "s-1")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap_or_default();
        if let Some(last) = bytes.last_mut() {
            *last ^= 1;
        }
        let tampered = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(
            b.open(Some("alice"), &tampered),
            Err(AuthError::SessionNotFound)
        );
        assert_eq!(
            binder(B).open(Some("alice"), &sealed),
            Err(AuthError::SessionNotFound)
        );
        for garbage in ["", "a", "s-1.abc", "!!!!", &"A".repeat(5000)] {
            assert_eq!(
                b.open(Some("alice"), garbage),
                Err(AuthError::SessionNotFound)
            );
        }
    }

    #[test]
    fn rotation_opens_ids_of_the_previous_secret() {
        let old = binder(A);
        let sealed = old
            .seal(Some("alice"), "s-1")
            .unwrap_or_else(|e| panic!("{e}"));
        let rotated = SessionBinder::with_previous(B, &[A]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rotated.open(Some("alice"), &sealed).as_deref(), Ok("s-1"));
        let new = rotated
            .seal(Some("alice"), "s-2")
            .unwrap_or_else(|e| panic!("{e}"));
        // The old binder does not know the new key; once A is retired, its ids stop working.
        assert_eq!(
            old.open(Some("alice"), &new),
            Err(AuthError::SessionNotFound)
        );
        assert_eq!(
            binder(B).open(Some("alice"), &sealed),
            Err(AuthError::SessionNotFound)
        );
        assert!(matches!(
            SessionBinder::from_secret(b"short"),
            Err(SessionKeyError::TooShort)
        ));
    }
}
