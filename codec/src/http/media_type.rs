//! The `Content-Type` of a request body: JSON exchanged between systems is UTF-8 (RFC 8259
//! §8.1), and a body the gateway judges as UTF-8 must be the body the upstream decodes as UTF-8.
//!
//! An upstream that honours a declared charset (the TypeScript SDK's legacy HTTP+SSE server
//! decodes `charset=utf-7` with iconv) would read another message than the gateway judged — a
//! `ping` to the gateway can be a `tools/call` to the upstream. So a request whose body declares
//! any charset other than UTF-8, declares it twice, or whose `Content-Type` cannot be parsed
//! (RFC 9110 §8.3.1) is refused with 415, on every route, ACL or not. Several `Content-Type`
//! fields are refused too (RFC 9110 §5.3: it is not a list).

use super::writer::is_tchar;
use super::HttpError;

/// Checks the `Content-Type` field values of a request that has a body. No field at all is
/// accepted (the upstream decides what it makes of an untyped body).
pub fn check_body_charset<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<(), HttpError> {
    let Some(value) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(HttpError::UnsupportedMediaType(
            "more than one Content-Type field",
        ));
    }
    let mut charsets = 0;
    for (name, value) in parameters(value)? {
        if name.eq_ignore_ascii_case(b"charset") {
            charsets += 1;
            if !(value.eq_ignore_ascii_case(b"utf-8") || value.eq_ignore_ascii_case(b"utf8")) {
                return Err(HttpError::UnsupportedMediaType(
                    "the body must be UTF-8 (RFC 8259 section 8.1); another charset is declared",
                ));
            }
        }
    }
    if charsets > 1 {
        return Err(HttpError::UnsupportedMediaType(
            "the charset parameter appears more than once",
        ));
    }
    Ok(())
}

const MALFORMED: HttpError = HttpError::UnsupportedMediaType("malformed Content-Type");

/// One media-type parameter: name, and value with a quoted-string unescaped.
type Parameter = (Vec<u8>, Vec<u8>);

/// `type/subtype *( OWS ";" OWS [ token "=" ( token / quoted-string ) ] )`.
fn parameters(value: &[u8]) -> Result<Vec<Parameter>, HttpError> {
    let mut pos = 0;
    let token = |pos: &mut usize| {
        let start = *pos;
        while value.get(*pos).is_some_and(|&b| is_tchar(b)) {
            *pos += 1;
        }
        value.get(start..*pos).filter(|t| !t.is_empty())
    };
    let ows = |pos: &mut usize| {
        while matches!(value.get(*pos), Some(b' ' | b'\t')) {
            *pos += 1;
        }
    };
    ows(&mut pos);
    token(&mut pos).ok_or(MALFORMED)?;
    if value.get(pos) != Some(&b'/') {
        return Err(MALFORMED);
    }
    pos += 1;
    token(&mut pos).ok_or(MALFORMED)?;
    let mut params = Vec::new();
    loop {
        ows(&mut pos);
        match value.get(pos) {
            None => return Ok(params),
            Some(b';') => pos += 1,
            Some(_) => return Err(MALFORMED),
        }
        ows(&mut pos);
        if matches!(value.get(pos), None | Some(b';')) {
            // An empty parameter (`a/b;` or `a/b;;c=d`) is allowed by RFC 9110.
            continue;
        }
        let name = token(&mut pos).ok_or(MALFORMED)?.to_vec();
        if value.get(pos) != Some(&b'=') {
            return Err(MALFORMED);
        }
        pos += 1;
        let param = if value.get(pos) == Some(&b'"') {
            pos += 1;
            let mut unquoted = Vec::new();
            loop {
                match value.get(pos) {
                    None => return Err(MALFORMED),
                    Some(b'"') => {
                        pos += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let escaped = *value.get(pos + 1).ok_or(MALFORMED)?;
                        unquoted.push(escaped);
                        pos += 2;
                    }
                    Some(&b) => {
                        unquoted.push(b);
                        pos += 1;
                    }
                }
            }
            unquoted
        } else {
            token(&mut pos).ok_or(MALFORMED)?.to_vec()
        };
        params.push((name, param));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(values: &[&str]) -> Result<(), HttpError> {
        check_body_charset(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn utf8_or_no_charset_is_accepted() {
        for v in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            "application/json ; charset=\"utf-8\"",
            "application/json;charset=utf8",
            "application/json; foo=bar; charset=utf-8",
            "application/json;",
            "text/plain",
        ] {
            assert_eq!(check(&[v]), Ok(()), "{v}");
        }
        assert_eq!(check(&[]), Ok(()));
    }

    #[test]
    fn any_other_charset_or_an_unreadable_type_is_refused() {
        for v in [
            "application/json; charset=utf-7",
            "application/json; charset=UNICODE-1-1-UTF-7",
            "application/json; charset=utf-7-imap",
            "application/json; charset=\"utf-\\7\"",
            "application/json; charset=utf-16",
            "application/json; charset=latin1",
            "application/json; charset=",
            "application/json; charset=utf-8; charset=utf-7",
            "application/json; charset=utf-8; charset=utf-8",
            "application/json; charset",
            "application/json charset=utf-7",
            "application/json; charset=\"utf-8",
            "application",
            "/json",
            "",
        ] {
            assert!(
                matches!(check(&[v]), Err(HttpError::UnsupportedMediaType(_))),
                "{v}"
            );
        }
        assert!(check(&["application/json", "application/json; charset=utf-7"]).is_err());
        assert_eq!(
            HttpError::UnsupportedMediaType("x").status(),
            415,
            "the status a client gets"
        );
    }
}
