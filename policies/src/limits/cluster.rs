//! Cluster scope: the decision for every cluster rule a request matched is one Redis call, a Lua
//! script (`limits.lua`) that takes each key's cost all-or-nothing with the Redis server's own
//! clock. This module builds that call (`EVALSHA`, or `EVAL` once Redis answers `NOSCRIPT`, e.g.
//! after a restart emptied its script cache) and reads its answer; the engine sends it over its
//! own connection (`core/src/features/limits/redis.rs`).

use std::sync::OnceLock;

use super::resp::{encode_command, RespError, Value};

/// The script's text.
pub const SCRIPT: &str = include_str!("limits.lua");

/// The script's SHA-1 in hex, as `EVALSHA` names it.
pub fn script_sha1() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| {
        let digest =
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, SCRIPT.as_bytes());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// The part of a Redis key that names a caller: SHA-256 of the key kind and value, 16 bytes in
/// hex. Keys may be secrets (API keys) and must not reach Redis in clear.
pub fn key_digest(tag: &str, material: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(tag.as_bytes());
    ctx.update(&[0]);
    ctx.update(material);
    ctx.finish()
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What one charge asks of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeKind {
    /// GCRA: emission interval in microseconds (≥ 1), burst.
    Rate { emission_us: u64, burst: u32 },
    /// A quota of `limit` for the period ending at `period_end_ms` (Unix ms); the period is part
    /// of the key.
    Quota { limit: u32, period_end_ms: u64 },
}

/// One key and its cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub key: String,
    pub kind: ChargeKind,
    pub cost: u32,
}

/// The script's verdict on one charge (the same fields as a node decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeOutcome {
    pub allowed: bool,
    pub remaining: u32,
    pub retry_after_ms: u64,
    pub reset_ms: u64,
}

/// Appends `EVALSHA <sha> n keys… args…` (or `EVAL <script> …` when `full`).
pub fn encode_call(out: &mut Vec<u8>, charges: &[Charge], full: bool) {
    let numbers: Vec<[String; 3]> = charges
        .iter()
        .map(|c| match c.kind {
            ChargeKind::Rate { emission_us, burst } => [
                emission_us.max(1).to_string(),
                burst.to_string(),
                c.cost.to_string(),
            ],
            ChargeKind::Quota {
                limit,
                period_end_ms,
            } => [
                limit.to_string(),
                period_end_ms.to_string(),
                c.cost.to_string(),
            ],
        })
        .collect();
    let count = charges.len().to_string();
    let mut args: Vec<&[u8]> = Vec::with_capacity(3 + charges.len() * 5);
    if full {
        args.push(b"EVAL");
        args.push(SCRIPT.as_bytes());
    } else {
        args.push(b"EVALSHA");
        args.push(script_sha1().as_bytes());
    }
    args.push(count.as_bytes());
    for c in charges {
        args.push(c.key.as_bytes());
    }
    for (c, n) in charges.iter().zip(&numbers) {
        args.push(match c.kind {
            ChargeKind::Rate { .. } => b"r",
            ChargeKind::Quota { .. } => b"q",
        });
        for x in n {
            args.push(x.as_bytes());
        }
    }
    encode_command(out, &args);
}

/// Whether a reply says Redis does not know the script (send it whole with `EVAL`).
pub fn is_noscript(reply: &Value) -> bool {
    matches!(reply, Value::Error(e) if e.starts_with("NOSCRIPT"))
}

/// Reads the script's answer for `n` charges.
pub fn parse_reply(reply: &Value, n: usize) -> Result<Vec<ChargeOutcome>, RespError> {
    let items = match reply {
        Value::Array(Some(items)) => items,
        Value::Error(e) => return Err(RespError::Unexpected(e.clone())),
        other => return Err(RespError::Unexpected(format!("{other:?}"))),
    };
    if items.len() != 1 + 4 * n {
        return Err(RespError::Unexpected(format!(
            "{} values for {n} charges",
            items.len()
        )));
    }
    let int = |i: usize| match items.get(i) {
        Some(Value::Int(v)) => Ok(*v),
        other => Err(RespError::Unexpected(format!("{other:?}"))),
    };
    (0..n)
        .map(|k| {
            let base = 1 + 4 * k;
            Ok(ChargeOutcome {
                allowed: int(base)? == 1,
                remaining: u32::try_from(int(base + 1)?.max(0)).unwrap_or(u32::MAX),
                retry_after_ms: u64::try_from(int(base + 2)?.max(0)).unwrap_or(0),
                reset_ms: u64::try_from(int(base + 3)?.max(0)).unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::limits::resp::parse;

    #[test]
    fn key_digests_hide_the_key_and_tell_kinds_apart() {
        let d = key_digest("key", b"secret-api-key");
        assert_eq!(d.len(), 32);
        assert!(!d.contains("secret"));
        assert_ne!(d, key_digest("sub", b"secret-api-key"));
        assert_eq!(d, key_digest("key", b"secret-api-key"));
    }

    #[test]
    fn sha1_is_forty_hex_digits() {
        let sha = script_sha1();
        assert_eq!(sha.len(), 40);
        assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn the_call_names_keys_then_four_args_each() {
        let charges = [
            Charge {
                key: "k1".into(),
                kind: ChargeKind::Rate {
                    emission_us: 2_000_000,
                    burst: 5,
                },
                cost: 1,
            },
            Charge {
                key: "k2".into(),
                kind: ChargeKind::Quota {
                    limit: 10,
                    period_end_ms: 99,
                },
                cost: 2,
            },
        ];
        let mut out = Vec::new();
        encode_call(&mut out, &charges, false);
        // Parse it back as a server would: an array of bulk strings.
        let (v, used) = parse(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        let Value::Array(Some(args)) = v else {
            panic!("{v:?}")
        };
        let text: Vec<String> = args
            .iter()
            .map(|a| match a {
                Value::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            text,
            [
                "EVALSHA",
                script_sha1(),
                "2",
                "k1",
                "k2",
                "r",
                "2000000",
                "5",
                "1",
                "q",
                "10",
                "99",
                "2"
            ]
        );
        let mut full = Vec::new();
        encode_call(&mut full, &charges, true);
        assert!(String::from_utf8_lossy(&full).contains("redis.call('TIME')"));
    }

    #[test]
    fn replies_are_read_and_checked() {
        let reply = Value::Array(Some(
            [0, 1, 4, 0, 2000, 0, 0, 1500, 1500]
                .into_iter()
                .map(Value::Int)
                .collect(),
        ));
        let out = parse_reply(&reply, 2).unwrap();
        assert!(out[0].allowed && out[0].remaining == 4 && out[0].reset_ms == 2000);
        assert!(!out[1].allowed && out[1].retry_after_ms == 1500);
        assert!(parse_reply(&reply, 3).is_err());
        assert!(parse_reply(&Value::Error("ERR x".into()), 1).is_err());
        assert!(is_noscript(&Value::Error(
            "NOSCRIPT No matching script".into()
        )));
    }
}
