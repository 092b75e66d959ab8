//! Test-only token minting for the auth tests (included by the `auth_*` test files with
//! `#[path]`). Keys: Ed25519 and ECDSA generated per run with ring; RSA from the fixed test key
//! under `tests/keys/` (ring cannot generate RSA keys). Test keys only.
#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

pub const RSA_PKCS8: &[u8] = include_bytes!("keys/rsa2048.pk8.der");
pub const RSA_PUBLIC_PEM: &str = include_str!("keys/rsa2048.pub.pem");
pub const RESOURCE: &str = "https://gw.example.com/mcp";
pub const ISSUER: &str = "https://as.example.com";
pub const NOW: u64 = 1_800_000_000;

pub enum Signer {
    Hmac(Vec<u8>),
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, &'static str),
    Ed(Ed25519KeyPair),
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Signer {
    pub fn rsa() -> Signer {
        Signer::Rsa(RsaKeyPair::from_pkcs8(RSA_PKCS8).expect("test RSA key"))
    }

    pub fn ec(curve: &'static str) -> Signer {
        let rng = SystemRandom::new();
        let alg = match curve {
            "P-256" => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            _ => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        };
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate EC");
        Signer::Ec(
            EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("load EC"),
            curve,
        )
    }

    pub fn ed25519() -> Signer {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate Ed25519");
        Signer::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("load Ed25519"))
    }

    pub fn hmac(secret: &[u8]) -> Signer {
        Signer::Hmac(secret.to_vec())
    }

    /// The public JWK (kty-specific members, plus kid when given).
    pub fn jwk(&self, kid: Option<&str>) -> serde_json::Value {
        let mut jwk = match self {
            Signer::Hmac(secret) => serde_json::json!({"kty": "oct", "k": b64(secret)}),
            Signer::Rsa(kp) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public());
                serde_json::json!({"kty": "RSA", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Signer::Ec(kp, curve) => {
                let point = kp.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                serde_json::json!({"kty": "EC", "crv": curve,
                    "x": b64(&point[1..1 + half]), "y": b64(&point[1 + half..])})
            }
            Signer::Ed(kp) => {
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key().as_ref())})
            }
        };
        if let Some(kid) = kid {
            jwk["kid"] = kid.into();
        }
        jwk
    }

    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Signer::Hmac(secret) => {
                let algorithm = match alg {
                    "HS256" => ring::hmac::HMAC_SHA256,
                    "HS384" => ring::hmac::HMAC_SHA384,
                    _ => ring::hmac::HMAC_SHA512,
                };
                ring::hmac::sign(&ring::hmac::Key::new(algorithm, secret), input)
                    .as_ref()
                    .to_vec()
            }
            Signer::Rsa(kp) => {
                let padding: &dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(padding, &rng, input, &mut sig).expect("RSA sign");
                sig
            }
            Signer::Ec(kp, _) => kp.sign(&rng, input).expect("EC sign").as_ref().to_vec(),
            Signer::Ed(kp) => kp.sign(input).as_ref().to_vec(),
        }
    }

    /// A compact JWS over `header` and `claims` (both JSON objects, sent as given).
    pub fn token_with_header(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> String {
        let alg = header["alg"].as_str().unwrap_or("none").to_owned();
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.sign(&alg, input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    pub fn token(&self, alg: &str, kid: Option<&str>, claims: &serde_json::Value) -> String {
        let mut header = serde_json::json!({"alg": alg, "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = kid.into();
        }
        self.token_with_header(&header, claims)
    }
}

/// Claims that pass every check at `NOW` for `RESOURCE` / `ISSUER`.
pub fn good_claims() -> serde_json::Value {
    serde_json::json!({
        "iss": ISSUER,
        "sub": "alice",
        "aud": RESOURCE,
        "exp": NOW + 600,
        "nbf": NOW - 60,
        "iat": NOW - 60,
        "client_id": "vscode",
        "scope": "mcp:read mcp:write",
    })
}

pub fn with(
    mut claims: serde_json::Value,
    key: &str,
    value: serde_json::Value,
) -> serde_json::Value {
    claims[key] = value;
    claims
}

pub fn without(mut claims: serde_json::Value, key: &str) -> serde_json::Value {
    if let Some(object) = claims.as_object_mut() {
        object.remove(key);
    }
    claims
}
