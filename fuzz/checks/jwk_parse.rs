//! Key material parsing: a JWKS document (`KeySet::from_jwks_json`, what the gateway fetches from
//! an authorization server), one JWK, a PEM file, and SPKI / PKCS#1 DER (the hand-written DER
//! reader). The first byte picks the parser. Invariants: no panic; every error has a message; a
//! JWKS never yields a symmetric key; every key can name the algorithms it verifies, each of its
//! family, and none of them verifies an empty signature; a key set finds each key by its kid; and
//! the DER reader refuses every strict prefix of what it accepted (definite lengths, nothing
//! trailing).
use mcpgate_policies::auth::keys::KeyFamily;
use mcpgate_policies::auth::{KeySet, VerifyingKey};

fn assert_sane(key: &VerifyingKey) {
    let algorithms: Vec<_> = key.algorithms().iter().collect();
    assert!(
        !algorithms.is_empty(),
        "a key that verifies nothing: {key:?}"
    );
    for alg in algorithms {
        assert_eq!(alg.family(), key.family(), "{key:?} claims {alg:?}");
        assert!(key.usable_for(alg));
        assert!(
            !key.verify(alg, b"message", b""),
            "an empty signature verified"
        );
    }
}

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let single = match selector % 5 {
        0 => {
            match KeySet::from_jwks_json(rest) {
                Ok(set) => {
                    assert!(!set.is_empty());
                    for key in set.iter() {
                        assert_sane(key);
                        assert_ne!(
                            key.family(),
                            KeyFamily::Hmac,
                            "a JWKS yielded a symmetric key"
                        );
                        if let Some(kid) = key.kid() {
                            assert_eq!(set.by_kid(kid).and_then(VerifyingKey::kid), Some(kid));
                        }
                    }
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
            return;
        }
        1 => match std::str::from_utf8(rest) {
            Ok(pem) => VerifyingKey::from_pem(pem),
            Err(_) => return,
        },
        2 | 3 => {
            let parse = if selector % 5 == 2 {
                VerifyingKey::from_spki_der
            } else {
                VerifyingKey::from_pkcs1_der
            };
            let result = parse(rest);
            if result.is_ok() {
                for end in 0..rest.len() {
                    assert!(
                        parse(&rest[..end]).is_err(),
                        "prefix of {end} bytes accepted"
                    );
                }
            }
            result
        }
        _ => match serde_json::from_slice::<serde_json::Value>(rest) {
            Ok(jwk) => VerifyingKey::from_jwk(&jwk, selector & 8 != 0),
            Err(_) => return,
        },
    };
    match single {
        Ok(key) => assert_sane(&key),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
