#![no_main]
//! Key material parsing: a JWKS document (`KeySet::from_jwks_json`, what the gateway fetches from
//! an authorization server), one JWK, a PEM file, and SPKI / PKCS#1 DER (the hand-written DER
//! reader). The first byte picks the parser. Invariants: no panic; every error has a message; a
//! JWKS never yields a symmetric key; every key can name the algorithms it verifies, each of its
//! family, and none of them verifies an empty signature; a key set finds each key by its kid; and
//! the DER reader refuses every strict prefix of what it accepted (definite lengths, nothing
//! trailing).
//!
//! The body is `checks/jwk_parse.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/jwk_parse.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
