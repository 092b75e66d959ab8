//! Reading credentials off a request: the `Authorization: Bearer` header (the only bearer method
//! the gateway accepts, RFC 6750 §2.1), the refusal of `access_token` in the query string
//! (RFC 6750 §2.3 is off by MCP's rules: 400 `invalid_request`, never accepted), and a small
//! header-lookup abstraction so the engine can hand over its parsed head without copying.

use smallvec::SmallVec;

use super::error::AuthError;

/// Header access the engine provides: every value of a header (names compared
/// case-insensitively), in order.
/// `'a` is the lifetime of the header bytes, which may outlive the lookup object itself.
pub trait HeaderLookup<'a> {
    fn header_values(&self, name: &str) -> SmallVec<[&'a [u8]; 2]>;
}

/// Headers as `(name, value)` string pairs (tests, simple callers).
#[derive(Debug, Clone, Copy)]
pub struct StrHeaders<'a>(pub &'a [(&'a str, &'a str)]);

impl<'a> HeaderLookup<'a> for StrHeaders<'a> {
    fn header_values(&self, name: &str) -> SmallVec<[&'a [u8]; 2]> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
            .collect()
    }
}

/// Headers as `(name, value)` byte pairs (what an HTTP head parser yields).
#[derive(Debug, Clone, Copy)]
pub struct ByteHeaders<'a>(pub &'a [(&'a [u8], &'a [u8])]);

impl<'a> HeaderLookup<'a> for ByteHeaders<'a> {
    fn header_values(&self, name: &str) -> SmallVec<[&'a [u8]; 2]> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
            .collect()
    }
}

/// What the `Authorization` header holds, as far as bearer plans care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization<'a> {
    Absent,
    Bearer(&'a str),
    /// Another scheme (Basic, …): no bearer plan applies.
    OtherScheme,
}

/// Reads `Authorization`. The scheme is case-insensitive and separated from the token by one or
/// more spaces (RFC 9110 §11.4: `auth-scheme [ 1*SP token68 ]`; tabs are tolerated too); the
/// token must be a b64token (RFC 6750 §2.1). Two `Authorization` headers, or a Bearer header with
/// a malformed token, is an invalid request.
pub fn authorization<'a>(
    headers: &(impl HeaderLookup<'a> + ?Sized),
) -> Result<Authorization<'a>, AuthError> {
    match raw_authorization(headers)? {
        RawAuthorization::Absent => Ok(Authorization::Absent),
        RawAuthorization::OtherScheme => Ok(Authorization::OtherScheme),
        RawAuthorization::Bearer(token) => validate_token(token).map(Authorization::Bearer),
    }
}

pub fn parse_bearer(value: &[u8]) -> Result<Authorization<'_>, AuthError> {
    match split_bearer(value) {
        RawAuthorization::Bearer(token) => validate_token(token).map(Authorization::Bearer),
        RawAuthorization::Absent => Ok(Authorization::Absent),
        RawAuthorization::OtherScheme => Ok(Authorization::OtherScheme),
    }
}

/// `Authorization` split but its token not yet checked: the hot path looks the raw bytes up in
/// the validated-token cache first (a hit proves the bytes were valid), and only a miss pays for
/// [`validate_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawAuthorization<'a> {
    Absent,
    Bearer(&'a [u8]),
    OtherScheme,
}

pub fn raw_authorization<'a>(
    headers: &(impl HeaderLookup<'a> + ?Sized),
) -> Result<RawAuthorization<'a>, AuthError> {
    let values = headers.header_values("authorization");
    match values.as_slice() {
        [] => Ok(RawAuthorization::Absent),
        [one] => Ok(split_bearer(one)),
        _ => Err(AuthError::InvalidRequest(
            "more than one Authorization header",
        )),
    }
}

fn is_separator(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn split_bearer(value: &[u8]) -> RawAuthorization<'_> {
    let scheme_len = value
        .iter()
        .position(|&b| is_separator(b))
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_len);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return RawAuthorization::OtherScheme;
    }
    // `1*SP` (RFC 9110 §11.4): the whole run is the separator. Tabs are accepted as well: they
    // cannot be part of a b64token, so tolerating them changes no token's meaning. The token is
    // what follows the run, so `Bearer  t` and `Bearer t` share one validated-token cache entry.
    let token_start = rest
        .iter()
        .position(|&b| !is_separator(b))
        .unwrap_or(rest.len());
    RawAuthorization::Bearer(rest.get(token_start..).unwrap_or_default())
}

/// The token as text, if it is a b64token (RFC 6750 §2.1); else 400 `invalid_request`.
pub fn validate_token(token: &[u8]) -> Result<&str, AuthError> {
    if !is_b64token(token) {
        return Err(AuthError::InvalidRequest("malformed bearer token"));
    }
    // b64token characters are ASCII.
    std::str::from_utf8(token).map_err(|_| AuthError::InvalidRequest("malformed bearer token"))
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
    // Branch-free per byte and folded without early exit, so it vectorises: this runs on
    // every request, over tokens of a kilobyte.
    body_len > 0
        && token
            .get(..body_len)
            .is_some_and(|body| body.iter().fold(true, |ok, &b| ok & is_b64token_char(b)))
}

fn is_b64token_char(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    let punct = (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'+') | (b == b'/');
    letter | digit | punct
}

/// Refuses a request whose query string carries `access_token` (under any percent-encoding of
/// the name). `query` is the part after `?`, without the fragment.
pub fn refuse_query_token(query: Option<&str>) -> Result<(), AuthError> {
    let Some(query) = query else { return Ok(()) };
    for pair in query.split(['&', ';']) {
        let name = pair.split('=').next().unwrap_or_default();
        if percent_decoded_eq(name, "access_token") {
            return Err(AuthError::InvalidRequest(
                "access token in the query string",
            ));
        }
    }
    Ok(())
}

/// Compares a percent-encoded (and `+`-for-space) query name with a plain ASCII name.
fn percent_decoded_eq(encoded: &str, plain: &str) -> bool {
    let bytes = encoded.as_bytes();
    let mut decoded = plain.bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = match bytes.get(i) {
            Some(b'%') => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        i += 3;
                        v
                    }
                    None => {
                        i += 1;
                        b'%'
                    }
                }
            }
            Some(b'+') => {
                i += 1;
                b' '
            }
            Some(b) => {
                i += 1;
                *b
            }
            None => break,
        };
        if decoded.next() != Some(b) {
            return false;
        }
    }
    decoded.next().is_none()
}
