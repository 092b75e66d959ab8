//! Verification keys and the JWS algorithms they may verify. Owns the binding of an algorithm to
//! a key family (HS* only with an HMAC secret, RS*/PS* only with RSA, ES256 only with P-256, ES384
//! only with P-384, EdDSA only with Ed25519), which is what defeats algorithm-confusion attacks:
//! a key never verifies a signature of another family, whatever the token's header claims.
//! Also owns key import: SPKI / PKCS#1 PEM for static keys, JWK (RFC 7517/7518/8037) for JWKS.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::{hmac, signature};

/// JWS algorithms accepted anywhere (RFC 7518 §3.1, RFC 8037). `none` is absent on purpose: it
/// cannot be named, so it cannot be configured or accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    Hmac,
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl Algorithm {
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// Exact, case-sensitive (RFC 7515 §4.1.1: `alg` values are case-sensitive).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|alg| alg.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn family(self) -> KeyFamily {
        match self {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyFamily::Hmac,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyFamily::Rsa,
            Algorithm::ES256 => KeyFamily::EcP256,
            Algorithm::ES384 => KeyFamily::EcP384,
            Algorithm::EdDSA => KeyFamily::Ed25519,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A small set of algorithms (a bit set: the check is on the hot path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    pub const fn empty() -> Self {
        AlgorithmSet(0)
    }
    pub fn insert(&mut self, alg: Algorithm) {
        self.0 |= alg.bit();
    }
    pub fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |alg| self.contains(*alg))
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        let mut set = AlgorithmSet::empty();
        for alg in iter {
            set.insert(alg);
        }
        set
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not PEM: expected a `-----BEGIN PUBLIC KEY-----` or `-----BEGIN RSA PUBLIC KEY-----` block")]
    NotPem,
    #[error("bad base64 in key")]
    BadBase64,
    #[error("malformed DER public key")]
    BadDer,
    #[error("unsupported key type (expected RSA, EC P-256/P-384 or Ed25519)")]
    Unsupported,
    #[error("RSA modulus must be 2048 to 8192 bits")]
    RsaSize,
    #[error("EC point must be uncompressed and of the curve's size")]
    EcPoint,
    #[error("Ed25519 public key must be 32 bytes")]
    Ed25519Size,
    #[error("HMAC secret must be at least {0} bytes")]
    HmacTooShort(usize),
    #[error("JWK: {0}")]
    Jwk(&'static str),
}

/// Minimum HMAC secret: RFC 7518 §3.2 wants a key at least as long as the hash output.
pub const MIN_HMAC_SECRET: usize = 32;

#[derive(Clone)]
struct HmacKeys {
    sha256: hmac::Key,
    sha384: Option<hmac::Key>,
    sha512: Option<hmac::Key>,
}

#[derive(Clone)]
enum Material {
    Hmac(Box<HmacKeys>),
    Rsa(signature::RsaPublicKeyComponents<Box<[u8]>>),
    EcP256(Box<[u8]>),
    EcP384(Box<[u8]>),
    Ed25519([u8; 32]),
}

/// One verification key, optionally named by `kid` and pinned to one `alg`.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<Box<str>>,
    pinned_alg: Option<Algorithm>,
    material: Material,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material (an HMAC secret is a credential).
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("family", &self.family())
            .field("pinned_alg", &self.pinned_alg)
            .finish()
    }
}

impl VerifyingKey {
    /// An HMAC secret. HS384/HS512 are enabled only when the secret is long enough for them.
    pub fn hmac(secret: &[u8]) -> Result<VerifyingKey, KeyError> {
        if secret.len() < MIN_HMAC_SECRET {
            return Err(KeyError::HmacTooShort(MIN_HMAC_SECRET));
        }
        Ok(VerifyingKey {
            kid: None,
            pinned_alg: None,
            material: Material::Hmac(Box::new(HmacKeys {
                sha256: hmac::Key::new(hmac::HMAC_SHA256, secret),
                sha384: (secret.len() >= 48).then(|| hmac::Key::new(hmac::HMAC_SHA384, secret)),
                sha512: (secret.len() >= 64).then(|| hmac::Key::new(hmac::HMAC_SHA512, secret)),
            })),
        })
    }

    /// A PEM public key: SPKI (`PUBLIC KEY`: RSA, EC P-256/P-384, Ed25519) or PKCS#1
    /// (`RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
        let (label, der) = pem_decode(pem)?;
        match label {
            "PUBLIC KEY" => VerifyingKey::from_spki_der(&der),
            "RSA PUBLIC KEY" => VerifyingKey::from_pkcs1_der(&der),
            _ => Err(KeyError::NotPem),
        }
    }

    pub fn from_spki_der(der: &[u8]) -> Result<VerifyingKey, KeyError> {
        let mut outer = Der::new(der);
        let mut spki = outer.sequence()?;
        outer.finish()?;
        let mut algorithm = spki.sequence()?;
        let key_bits = spki.bit_string()?;
        spki.finish()?;
        let oid = algorithm.oid()?;
        match oid {
            OID_RSA_ENCRYPTION => VerifyingKey::from_pkcs1_der(key_bits),
            OID_EC_PUBLIC_KEY => {
                let curve = algorithm.oid()?;
                match curve {
                    OID_P256 => VerifyingKey::ec(KeyFamily::EcP256, key_bits.to_vec()),
                    OID_P384 => VerifyingKey::ec(KeyFamily::EcP384, key_bits.to_vec()),
                    _ => Err(KeyError::Unsupported),
                }
            }
            OID_ED25519 => VerifyingKey::ed25519(key_bits),
            _ => Err(KeyError::Unsupported),
        }
    }

    /// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<VerifyingKey, KeyError> {
        let mut outer = Der::new(der);
        let mut seq = outer.sequence()?;
        outer.finish()?;
        let n = seq.unsigned_integer()?;
        let e = seq.unsigned_integer()?;
        seq.finish()?;
        VerifyingKey::rsa(n, e)
    }

    /// RSA from big-endian modulus and exponent (leading zero bytes allowed).
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<VerifyingKey, KeyError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let Some(first) = n.first() else {
            return Err(KeyError::RsaSize);
        };
        let bits = n.len() * 8 - first.leading_zeros() as usize;
        if !(2048..=8192).contains(&bits) {
            return Err(KeyError::RsaSize);
        }
        if e.is_empty() || e.len() > 4 {
            return Err(KeyError::Jwk("RSA exponent out of range"));
        }
        Ok(VerifyingKey {
            kid: None,
            pinned_alg: None,
            material: Material::Rsa(signature::RsaPublicKeyComponents {
                n: n.into(),
                e: e.into(),
            }),
        })
    }

    /// An uncompressed SEC1 point (`04 || x || y`).
    pub fn ec(family: KeyFamily, point: Vec<u8>) -> Result<VerifyingKey, KeyError> {
        let coordinate = match family {
            KeyFamily::EcP256 => 32,
            KeyFamily::EcP384 => 48,
            _ => return Err(KeyError::Unsupported),
        };
        if point.len() != 1 + 2 * coordinate || point.first() != Some(&0x04) {
            return Err(KeyError::EcPoint);
        }
        let point = point.into_boxed_slice();
        let material = if family == KeyFamily::EcP256 {
            Material::EcP256(point)
        } else {
            Material::EcP384(point)
        };
        Ok(VerifyingKey {
            kid: None,
            pinned_alg: None,
            material,
        })
    }

    pub fn ed25519(public: &[u8]) -> Result<VerifyingKey, KeyError> {
        let bytes: [u8; 32] = public.try_into().map_err(|_| KeyError::Ed25519Size)?;
        Ok(VerifyingKey {
            kid: None,
            pinned_alg: None,
            material: Material::Ed25519(bytes),
        })
    }

    pub fn with_kid(mut self, kid: impl Into<Box<str>>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Restricts the key to one algorithm (a JWK's `alg`). Refused when the family differs.
    pub fn with_pinned_alg(mut self, alg: Algorithm) -> Result<Self, KeyError> {
        if alg.family() != self.family() {
            return Err(KeyError::Jwk("`alg` does not match the key type"));
        }
        self.pinned_alg = Some(alg);
        Ok(self)
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn family(&self) -> KeyFamily {
        match self.material {
            Material::Hmac(_) => KeyFamily::Hmac,
            Material::Rsa(_) => KeyFamily::Rsa,
            Material::EcP256(_) => KeyFamily::EcP256,
            Material::EcP384(_) => KeyFamily::EcP384,
            Material::Ed25519(_) => KeyFamily::Ed25519,
        }
    }

    /// Whether this key may verify `alg` at all (family, pin, and HMAC secret length).
    pub fn usable_for(&self, alg: Algorithm) -> bool {
        if alg.family() != self.family() || self.pinned_alg.is_some_and(|pinned| pinned != alg) {
            return false;
        }
        match (&self.material, alg) {
            (Material::Hmac(keys), Algorithm::HS384) => keys.sha384.is_some(),
            (Material::Hmac(keys), Algorithm::HS512) => keys.sha512.is_some(),
            _ => true,
        }
    }

    /// Algorithms this key can verify (for defaulting a plan's allow-list from its keys).
    pub fn algorithms(&self) -> AlgorithmSet {
        Algorithm::ALL
            .into_iter()
            .filter(|alg| self.usable_for(*alg))
            .collect()
    }

    /// Verifies `signature` over `message` with `alg`. A family mismatch is a failure, never a
    /// fallback: this match is the single place that decides which primitive runs.
    pub fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
        if !self.usable_for(alg) {
            return false;
        }
        let verified = match (&self.material, alg) {
            (Material::Hmac(keys), Algorithm::HS256) => hmac::verify(&keys.sha256, message, sig),
            (Material::Hmac(keys), Algorithm::HS384) => match &keys.sha384 {
                Some(key) => hmac::verify(key, message, sig),
                None => return false,
            },
            (Material::Hmac(keys), Algorithm::HS512) => match &keys.sha512 {
                Some(key) => hmac::verify(key, message, sig),
                None => return false,
            },
            (Material::Rsa(key), _) => {
                let params: &signature::RsaParameters = match alg {
                    Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                key.verify(params, message, sig)
            }
            (Material::EcP256(point), Algorithm::ES256) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
            }
            (Material::EcP384(point), Algorithm::ES384) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
            }
            (Material::Ed25519(public), Algorithm::EdDSA) => {
                signature::UnparsedPublicKey::new(&signature::ED25519, public).verify(message, sig)
            }
            _ => return false,
        };
        verified.is_ok()
    }

    /// Imports one JWK. `allow_symmetric` admits `kty: oct` (static configuration only: a
    /// symmetric key never belongs in a JWKS published by an authorization server).
    pub fn from_jwk(
        jwk: &serde_json::Value,
        allow_symmetric: bool,
    ) -> Result<VerifyingKey, KeyError> {
        let object = jwk.as_object().ok_or(KeyError::Jwk("not a JSON object"))?;
        let text = |name: &'static str| object.get(name).and_then(|v| v.as_str());
        let bytes = |name: &'static str| -> Result<Vec<u8>, KeyError> {
            let value = text(name).ok_or(KeyError::Jwk("missing key parameter"))?;
            URL_SAFE_NO_PAD
                .decode(value)
                .map_err(|_| KeyError::BadBase64)
        };
        if let Some(usage) = object.get("use") {
            if usage.as_str() != Some("sig") {
                return Err(KeyError::Jwk("`use` is not `sig`"));
            }
        }
        if let Some(ops) = object.get("key_ops") {
            let verifies = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
            if !verifies {
                return Err(KeyError::Jwk("`key_ops` lacks `verify`"));
            }
        }
        let key = match text("kty") {
            Some("RSA") => VerifyingKey::rsa(&bytes("n")?, &bytes("e")?)?,
            Some("EC") => {
                let family = match text("crv") {
                    Some("P-256") => KeyFamily::EcP256,
                    Some("P-384") => KeyFamily::EcP384,
                    _ => return Err(KeyError::Unsupported),
                };
                let (x, y) = (bytes("x")?, bytes("y")?);
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                if x.len() != y.len() {
                    return Err(KeyError::EcPoint);
                }
                VerifyingKey::ec(family, point)?
            }
            Some("OKP") => match text("crv") {
                Some("Ed25519") => VerifyingKey::ed25519(&bytes("x")?)?,
                _ => return Err(KeyError::Unsupported),
            },
            Some("oct") if allow_symmetric => VerifyingKey::hmac(&bytes("k")?)?,
            _ => return Err(KeyError::Unsupported),
        };
        let key = match text("kid") {
            Some(kid) => key.with_kid(kid),
            None => key,
        };
        match object.get("alg") {
            None => Ok(key),
            Some(alg) => {
                let alg = alg
                    .as_str()
                    .and_then(Algorithm::from_name)
                    .ok_or(KeyError::Jwk("unsupported `alg`"))?;
                key.with_pinned_alg(alg)
            }
        }
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

/// Decodes the first PEM block: its label and DER body.
fn pem_decode(pem: &str) -> Result<(&str, Vec<u8>), KeyError> {
    let start = pem.find("-----BEGIN ").ok_or(KeyError::NotPem)?;
    let rest = pem.get(start + 11..).ok_or(KeyError::NotPem)?;
    let label_end = rest.find("-----").ok_or(KeyError::NotPem)?;
    let label = rest.get(..label_end).ok_or(KeyError::NotPem)?;
    let body_and_end = rest.get(label_end + 5..).ok_or(KeyError::NotPem)?;
    let end_marker = format!("-----END {label}-----");
    let body_end = body_and_end.find(&end_marker).ok_or(KeyError::NotPem)?;
    let body: String = body_and_end
        .get(..body_end)
        .ok_or(KeyError::NotPem)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = STANDARD.decode(body).map_err(|_| KeyError::BadBase64)?;
    Ok((label, der))
}

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// Just enough DER (definite lengths, single-byte tags) to read SPKI and PKCS#1 public keys.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Der { rest: bytes }
    }

    fn element(&mut self, expected_tag: u8) -> Result<&'a [u8], KeyError> {
        let (&tag, rest) = self.rest.split_first().ok_or(KeyError::BadDer)?;
        if tag != expected_tag {
            return Err(KeyError::BadDer);
        }
        let (&first, mut rest) = rest.split_first().ok_or(KeyError::BadDer)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 3 {
                return Err(KeyError::BadDer);
            }
            let (len_bytes, after) = rest.split_at_checked(count).ok_or(KeyError::BadDer)?;
            rest = after;
            len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        let (content, after) = rest.split_at_checked(len).ok_or(KeyError::BadDer)?;
        self.rest = after;
        Ok(content)
    }

    fn sequence(&mut self) -> Result<Der<'a>, KeyError> {
        self.element(0x30).map(Der::new)
    }

    fn oid(&mut self) -> Result<&'a [u8], KeyError> {
        self.element(0x06)
    }

    fn bit_string(&mut self) -> Result<&'a [u8], KeyError> {
        let content = self.element(0x03)?;
        match content.split_first() {
            // No unused bits: keys are whole bytes.
            Some((0, bits)) => Ok(bits),
            _ => Err(KeyError::BadDer),
        }
    }

    fn unsigned_integer(&mut self) -> Result<&'a [u8], KeyError> {
        let content = self.element(0x02)?;
        if content.first().is_none_or(|b| b & 0x80 != 0) {
            return Err(KeyError::BadDer);
        }
        Ok(content)
    }

    fn finish(&self) -> Result<(), KeyError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(KeyError::BadDer)
        }
    }
}
