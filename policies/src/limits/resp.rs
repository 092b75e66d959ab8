//! A small RESP2 codec (the Redis protocol), enough for the cluster-scope limiter: commands are
//! arrays of bulk strings; replies are parsed incrementally from a buffer that may hold a partial
//! reply (`Ok(None)`: read more) or several pipelined ones (each call takes one). Bounded: a reply
//! cannot make the parser allocate more than its limits allow, whatever the peer sends.

/// Longest bulk string accepted in a reply.
pub const MAX_BULK: usize = 1 << 20;
/// Most elements in one reply array.
pub const MAX_ARRAY: usize = 1 << 16;
/// Deepest nesting of arrays.
const MAX_DEPTH: usize = 4;
/// Longest simple string / error / integer line.
const MAX_LINE: usize = 4096;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    /// `None`: the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None`: the null array.
    Array(Option<Vec<Value>>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    #[error("RESP: unknown reply type byte {0:#04x}")]
    UnknownType(u8),
    #[error("RESP: malformed {0}")]
    Malformed(&'static str),
    #[error("RESP: {0} over the limit")]
    TooLarge(&'static str),
    #[error("RESP: unexpected reply: {0}")]
    Unexpected(String),
}

/// Appends a command (an array of bulk strings).
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_decimal(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        push_decimal(out, arg.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

impl Value {
    /// The reply as a server would write it (tests, and a fake server).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Simple(s) => {
                out.push(b'+');
                out.extend_from_slice(s.as_bytes());
            }
            Value::Error(s) => {
                out.push(b'-');
                out.extend_from_slice(s.as_bytes());
            }
            Value::Int(n) => {
                out.push(b':');
                out.extend_from_slice(n.to_string().as_bytes());
            }
            Value::Bulk(None) => out.extend_from_slice(b"$-1"),
            Value::Bulk(Some(b)) => {
                out.push(b'$');
                push_decimal(out, b.len() as u64);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(b);
            }
            Value::Array(None) => out.extend_from_slice(b"*-1"),
            Value::Array(Some(items)) => {
                out.push(b'*');
                push_decimal(out, items.len() as u64);
                out.extend_from_slice(b"\r\n");
                for item in items {
                    item.encode(out);
                }
                return;
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the start of `buf`: `Ok(Some((value, bytes used)))`, `Ok(None)` when
/// `buf` holds only part of it.
pub fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    let mut pos = 0;
    match parse_at(buf, &mut pos, 0)? {
        Some(v) => Ok(Some((v, pos))),
        None => Ok(None),
    }
}

/// The line starting at `*pos` (without CRLF), advancing past it.
fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, RespError> {
    let rest = buf.get(*pos..).unwrap_or_default();
    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
        if rest.len() > MAX_LINE {
            return Err(RespError::TooLarge("line"));
        }
        return Ok(None);
    };
    if end > MAX_LINE {
        return Err(RespError::TooLarge("line"));
    }
    *pos += end + 2;
    Ok(rest.get(..end))
}

fn integer(bytes: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(RespError::Malformed("integer"))
}

fn parse_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Value>, RespError> {
    let Some(&kind) = buf.get(*pos) else {
        return Ok(None);
    };
    let start = *pos;
    *pos += 1;
    let Some(text) = line(buf, pos)? else {
        *pos = start;
        return Ok(None);
    };
    let value = match kind {
        b'+' => Value::Simple(String::from_utf8_lossy(text).into_owned()),
        b'-' => Value::Error(String::from_utf8_lossy(text).into_owned()),
        b':' => Value::Int(integer(text)?),
        b'$' => {
            let len = integer(text)?;
            if len < 0 {
                Value::Bulk(None)
            } else {
                let len = usize::try_from(len).map_err(|_| RespError::Malformed("length"))?;
                if len > MAX_BULK {
                    return Err(RespError::TooLarge("bulk string"));
                }
                let Some(body) = buf.get(*pos..*pos + len) else {
                    *pos = start;
                    return Ok(None);
                };
                match buf.get(*pos + len..*pos + len + 2) {
                    None => {
                        *pos = start;
                        return Ok(None);
                    }
                    Some(b"\r\n") => {}
                    Some(_) => return Err(RespError::Malformed("bulk string end")),
                }
                let body = body.to_vec();
                *pos += len + 2;
                Value::Bulk(Some(body))
            }
        }
        b'*' => {
            let len = integer(text)?;
            if len < 0 {
                Value::Array(None)
            } else {
                let len = usize::try_from(len).map_err(|_| RespError::Malformed("length"))?;
                if len > MAX_ARRAY {
                    return Err(RespError::TooLarge("array"));
                }
                if depth >= MAX_DEPTH {
                    return Err(RespError::TooLarge("nesting"));
                }
                // Capacity from what is actually there, not from the announced length.
                let mut items = Vec::with_capacity(len.min(64));
                for _ in 0..len {
                    match parse_at(buf, pos, depth + 1)? {
                        Some(v) => items.push(v),
                        None => {
                            *pos = start;
                            return Ok(None);
                        }
                    }
                }
                Value::Array(Some(items))
            }
        }
        other => return Err(RespError::UnknownType(other)),
    };
    Ok(Some(value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"GET", b"k\r\n"]);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$3\r\nk\r\n\r\n");
    }

    #[test]
    fn replies_parse_and_pipelined_ones_come_one_at_a_time() {
        let buf = b"+OK\r\n:-5\r\n$-1\r\n*2\r\n$1\r\na\r\n*0\r\n-NOSCRIPT No matching script\r\n";
        let mut pos = 0;
        let mut seen = Vec::new();
        while let Some((v, used)) = parse(&buf[pos..]).unwrap() {
            pos += used;
            seen.push(v);
        }
        assert_eq!(pos, buf.len());
        assert_eq!(
            seen,
            vec![
                Value::Simple("OK".into()),
                Value::Int(-5),
                Value::Bulk(None),
                Value::Array(Some(vec![
                    Value::Bulk(Some(b"a".to_vec())),
                    Value::Array(Some(vec![]))
                ])),
                Value::Error("NOSCRIPT No matching script".into()),
            ]
        );
    }

    #[test]
    fn hostile_replies_are_errors_not_allocations() {
        assert!(matches!(
            parse(b"$99999999999\r\n"),
            Err(RespError::TooLarge(_))
        ));
        assert!(matches!(
            parse(b"*99999999\r\n"),
            Err(RespError::TooLarge(_))
        ));
        assert!(matches!(parse(b"?x\r\n"), Err(RespError::UnknownType(_))));
        assert!(matches!(parse(b":abc\r\n"), Err(RespError::Malformed(_))));
        assert!(matches!(
            parse(b"$1\r\nab\r\n"),
            Err(RespError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
            Err(RespError::TooLarge("nesting"))
        ));
        assert!(matches!(
            parse(&[b'+'; MAX_LINE + 10]),
            Err(RespError::TooLarge("line"))
        ));
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            "[a-zA-Z0-9 ]{0,20}".prop_map(Value::Simple),
            "[a-zA-Z0-9 ]{0,20}".prop_map(Value::Error),
            any::<i64>().prop_map(Value::Int),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(Value::Bulk),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            proptest::option::of(proptest::collection::vec(inner, 0..6)).prop_map(Value::Array)
        })
    }

    proptest! {
        /// What is encoded parses back the same; every strict prefix says "need more".
        #[test]
        fn round_trip_and_prefixes(v in value()) {
            let mut out = Vec::new();
            v.encode(&mut out);
            prop_assert_eq!(parse(&out).unwrap(), Some((v, out.len())));
            for cut in 0..out.len() {
                prop_assert_eq!(parse(&out[..cut]).unwrap(), None);
            }
        }

        /// Arbitrary bytes never panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
