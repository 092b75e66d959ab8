//! Token validation cost: a cold RS256 and ES256 verification (signature + claims), and the
//! per-worker cache hit that serves every later request bearing the same token.

#[path = "../tests/auth_support.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use mcpgate_policies::auth::cache::TokenCache;
use mcpgate_policies::auth::request::StrHeaders;
use mcpgate_policies::auth::{
    verify_jwt, AlgorithmSet, AuthConfigUser, AuthRequest, AuthStep, CompileContext, JwtRules,
    KeySet, NoFiles, VerifyingKey,
};
use support::*;

fn key_set(signer: &Signer) -> KeySet {
    KeySet::new(vec![
        VerifyingKey::from_jwk(&signer.jwk(Some("k")), false).expect("jwk")
    ])
    .expect("set")
}

fn rules() -> JwtRules {
    let mut rules = JwtRules::new(
        mcpgate_policies::auth::Algorithm::ALL
            .into_iter()
            .collect::<AlgorithmSet>(),
        RESOURCE,
    );
    rules.issuer = Some(ISSUER.into());
    rules
}

fn cold(c: &mut Criterion) {
    let mut group = c.benchmark_group("auth/verify_cold");
    for (name, signer, alg) in [
        ("RS256", Signer::rsa(), "RS256"),
        ("ES256", Signer::ec("P-256"), "ES256"),
        ("EdDSA", Signer::ed25519(), "EdDSA"),
    ] {
        let keys = key_set(&signer);
        let token = signer.token(alg, Some("k"), &good_claims());
        let rules = rules();
        assert!(verify_jwt(&token, &keys, &rules, NOW).is_ok());
        group.bench_function(name, |b| {
            b.iter(|| verify_jwt(black_box(&token), &keys, &rules, NOW))
        });
    }
    group.finish();
}

fn cached(c: &mut Criterion) {
    let mut group = c.benchmark_group("auth/cached");
    let signer = Signer::rsa();
    let token = signer.token("RS256", Some("k"), &good_claims());

    // The cache alone: keyed hash of the token, map probe, equality check, Rc clone.
    let mut cache = TokenCache::new(4096);
    cache.insert(token.as_bytes(), std::rc::Rc::new(()), NOW + 600, NOW);
    group.bench_function("token_cache_get", |b| {
        b.iter(|| cache.get(black_box(token.as_bytes()), NOW))
    });

    // The whole per-request decision on a cache hit: query check, Authorization parsing, plan
    // loop, cache hit, scope check.
    let user: AuthConfigUser = toml::from_str(&format!(
        "[[plans]]\ntype = \"oauth2\"\nissuer = \"{ISSUER}\"\njwks_uri = \"{ISSUER}/jwks\"\nrequired_scopes = [\"mcp:read\"]\n"
    ))
    .expect("toml");
    let auth = user
        .compile(&CompileContext {
            public_url: Some(RESOURCE),
            files: &NoFiles,
        })
        .expect("config");
    let mut state = auth.new_worker_state();
    state.install_jwks(0, Arc::new(key_set(&signer)), NOW);
    let header = format!("Bearer {token}");
    let pairs = [
        ("host", "gw.example.com"),
        ("authorization", header.as_str()),
        ("accept", "application/json"),
    ];
    let headers = StrHeaders(&pairs);
    let request = AuthRequest {
        headers: &headers,
        query: None,
        client_cert: None,
    };
    assert!(matches!(
        auth.authenticate(&request, &mut state, NOW),
        AuthStep::Authenticated(_)
    ));
    group.bench_function("bearer_extract", |b| {
        b.iter(|| mcpgate_policies::auth::request::authorization(black_box(&headers)))
    });
    group.bench_function("authenticate_hit", |b| {
        b.iter(|| auth.authenticate(black_box(&request), &mut state, NOW))
    });
    group.finish();
}

criterion_group!(benches, cold, cached);
criterion_main!(benches);
