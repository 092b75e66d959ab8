#![no_main]
//! JWT (compact JWS) verification, `verify_jwt`, as a plan runs it: an HS256 key (kid `h`) and an
//! Ed25519 key (kid `e`), both accepted, issuer and audience required. The first byte picks the
//! mode. Raw mode verifies the rest as a token: whatever is accepted must carry a signature that
//! an independent check with ring accepts for the named key, and claims within the rules. Signed
//! mode takes a fuzzed header and payload (NUL-separated), signs them correctly (HS256 or EdDSA by
//! the mode byte) and verifies: a refusal may not blame the signature, the algorithm or the key
//! when the header names the signing algorithm and its kid (or none), and an acceptance again
//! needs claims within the rules (`exp` ahead, `nbf`/`iat` not beyond the clock skew, `iss`, `aud`).
//!
//! The body is `checks/jwt_verify.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/jwt_verify.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
