//! Resource URIs in normal form: the ACL judges a resource URI only when the text it matches is
//! exactly what the upstream's URL parser will act on.
//!
//! An MCP server built on an official SDK parses `params.uri` with a WHATWG URL parser (Node's
//! `URL`, pydantic's `AnyUrl`), which resolves dot segments (`a/../b`, also spelled `%2e%2e`),
//! drops tabs and newlines, turns `\` into `/` for http-like schemes, lowercases hosts and so on.
//! A pattern matched against the text as written would then approve one resource and let the
//! upstream read another. So a URI is accepted only in normal form — RFC 3986 §6.2.2
//! syntax-based normalisation (case of scheme and host, percent-encoding of unreserved
//! characters, dot-segment removal) plus the scheme-based rules WHATWG applies to its "special"
//! schemes (empty path is `/`, default port omitted, no `'` in a query) — and anything else is
//! refused with the normal form in the message, so a client can correct itself.
//!
//! A URI in normal form contains only RFC 3986 characters (ASCII, no spaces or controls, no `\`),
//! every `%` starts a two-digit escape of a character that is not unreserved, written in upper
//! case, and its path has no `.` or `..` segment.

use std::borrow::Cow;

/// Why a URI is not accepted as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriProblem {
    /// No `scheme:` prefix (RFC 3986 §3.1): a relative reference names no resource by itself.
    #[error("resource URI is not an absolute URI")]
    NotAbsolute,
    /// A byte no URI may contain (RFC 3986 §2): controls, space, `\`, non-ASCII, `"<>^`{|}`…
    #[error("resource URI contains a character not allowed in a URI (byte 0x{0:02X})")]
    ForbiddenByte(u8),
    /// A `%` not followed by two hex digits.
    #[error("resource URI has a malformed percent-escape")]
    BadPercentEscape,
    /// A form the gateway does not judge: a special scheme without `//host`, a non-canonical
    /// numeric host, a non-numeric port.
    #[error("resource URI is not supported: {0}")]
    Unsupported(&'static str),
    /// A well-formed URI that normalises to another text.
    #[error(
        "resource URI is not in normal form (RFC 3986 section 6); its normal form is {normal}"
    )]
    NotNormal { normal: String },
}

/// Schemes WHATWG treats specially, with their default port.
const SPECIAL: [(&str, Option<u16>); 6] = [
    ("http", Some(80)),
    ("https", Some(443)),
    ("ws", Some(80)),
    ("wss", Some(443)),
    ("ftp", Some(21)),
    ("file", None),
];

/// `Ok` when `uri` is in normal form; otherwise why not.
pub fn check(uri: &str) -> Result<(), UriProblem> {
    match normal_form(uri)? {
        Cow::Borrowed(_) => Ok(()),
        Cow::Owned(normal) if normal == uri => Ok(()),
        Cow::Owned(normal) => Err(UriProblem::NotNormal { normal }),
    }
}

/// [`check`] for a URI template (RFC 6570: a `completion/complete` resource reference, a
/// `resources/templates/list` entry): each `{…}` expression stands for one opaque value, the
/// text around the expressions must be in normal form.
pub fn check_template(template: &str) -> Result<(), UriProblem> {
    let mut literal = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest
            .get(open..)
            .and_then(|s| s.find('}'))
            .map(|c| c + open)
            .ok_or(UriProblem::Unsupported("unterminated template expression"))?;
        let expression = rest.get(open + 1..close).unwrap_or_default();
        if expression.is_empty() || expression.contains('{') {
            return Err(UriProblem::Unsupported("malformed template expression"));
        }
        literal.push_str(rest.get(..open).unwrap_or_default());
        literal.push('v');
        rest = rest.get(close + 1..).unwrap_or_default();
    }
    literal.push_str(rest);
    match check(&literal) {
        Err(UriProblem::NotNormal { .. }) => Err(UriProblem::NotNormal {
            normal: "(a template whose text around its expressions is in normal form)".into(),
        }),
        other => other,
    }
}

/// The normal form of `uri` (borrowed when `uri` is already in it), or why there is none.
pub fn normal_form(uri: &str) -> Result<Cow<'_, str>, UriProblem> {
    let bytes = uri.as_bytes();
    if let Some(&b) = bytes.iter().find(|&&b| !is_uri_byte(b)) {
        return Err(UriProblem::ForbiddenByte(b));
    }
    let colon = bytes
        .iter()
        .position(|&b| b == b':')
        .ok_or(UriProblem::NotAbsolute)?;
    let scheme = uri.get(..colon).ok_or(UriProblem::NotAbsolute)?;
    if !is_scheme(scheme) {
        return Err(UriProblem::NotAbsolute);
    }
    let rest = uri.get(colon + 1..).unwrap_or_default();
    let (before_fragment, fragment) = split_at_byte(rest, b'#');
    let (hier, query) = split_at_byte(before_fragment, b'?');

    let scheme_lower = scheme.to_ascii_lowercase();
    let special = SPECIAL.iter().find(|(s, _)| *s == scheme_lower);
    let mut out = String::with_capacity(uri.len());
    out.push_str(&scheme_lower);
    out.push(':');

    let path = match hier.strip_prefix("//") {
        Some(after) => {
            let end = after.find('/').unwrap_or(after.len());
            let (authority, path) = after.split_at(end);
            out.push_str("//");
            write_authority(
                authority,
                special.and_then(|(_, port)| *port),
                special.is_some(),
                &mut out,
            )?;
            path
        }
        None if special.is_some() => {
            return Err(UriProblem::Unsupported(
                "an http, https, ws, wss, ftp or file URI needs \"//\" and an authority",
            ))
        }
        None => hier,
    };
    let mut normal_path = String::with_capacity(path.len());
    percent_normalise(path, &mut normal_path)?;
    if normal_path.contains('[') || normal_path.contains(']') {
        return Err(UriProblem::ForbiddenByte(b'['));
    }
    let mut resolved = remove_dot_segments(&normal_path);
    if special.is_some() && resolved.is_empty() {
        resolved.push('/');
    }
    out.push_str(&resolved);
    if let Some(q) = query {
        out.push('?');
        let start = out.len();
        percent_normalise(q, &mut out)?;
        if special.is_some() && out.get(start..).is_some_and(|q| q.contains('\'')) {
            // WHATWG percent-encodes `'` in the query of a special URL.
            let encoded = out.get(start..).unwrap_or_default().replace('\'', "%27");
            out.truncate(start);
            out.push_str(&encoded);
        }
    }
    if let Some(f) = fragment {
        out.push('#');
        percent_normalise(f, &mut out)?;
    }
    if out == uri {
        Ok(Cow::Borrowed(uri))
    } else {
        Ok(Cow::Owned(out))
    }
}

/// Splits at the first `sep`: (before, Some(after)) or (all, None).
fn split_at_byte(s: &str, sep: u8) -> (&str, Option<&str>) {
    match s.as_bytes().iter().position(|&b| b == sep) {
        Some(i) => (
            s.get(..i).unwrap_or_default(),
            Some(s.get(i + 1..).unwrap_or_default()),
        ),
        None => (s, None),
    }
}

/// RFC 3986 §2: unreserved, gen-delims, sub-delims and `%`.
fn is_uri_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b':'
                | b'/'
                | b'?'
                | b'#'
                | b'['
                | b']'
                | b'@'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b'%'
        )
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Appends `s` with every escape of an unreserved character decoded and every other escape in
/// upper case (RFC 3986 §6.2.2.1–2).
fn percent_normalise(s: &str, out: &mut String) -> Result<(), UriProblem> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let hi = bytes.get(i + 1).and_then(|&h| hex_value(h));
        let lo = bytes.get(i + 2).and_then(|&l| hex_value(l));
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err(UriProblem::BadPercentEscape);
        };
        let decoded = hi << 4 | lo;
        if is_unreserved(decoded) {
            out.push(char::from(decoded));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(hi)]));
            out.push(char::from(HEX[usize::from(lo)]));
        }
        i += 3;
    }
    Ok(())
}

/// `[userinfo@]host[:port]` with the host in lower case, an empty or default port dropped.
fn write_authority(
    authority: &str,
    default_port: Option<u16>,
    special: bool,
    out: &mut String,
) -> Result<(), UriProblem> {
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (
            Some(authority.get(..at).unwrap_or_default()),
            authority.get(at + 1..).unwrap_or_default(),
        ),
        None => (None, authority),
    };
    if let Some(u) = userinfo {
        if u.contains(['[', ']']) {
            return Err(UriProblem::ForbiddenByte(b'['));
        }
        percent_normalise(u, out)?;
        out.push('@');
    }
    let (host, port): (std::borrow::Cow<'_, str>, Option<&str>) = if hostport.starts_with('[') {
        let close = hostport
            .find(']')
            .ok_or(UriProblem::Unsupported("unterminated IP literal"))?;
        let address: std::net::Ipv6Addr = hostport
            .get(1..close)
            .and_then(|inner| inner.parse().ok())
            .ok_or(UriProblem::Unsupported("IP literal other than IPv6"))?;
        let literal = ipv6_literal(address);
        match hostport.get(close + 1..).unwrap_or_default() {
            "" => (literal.into(), None),
            p => match p.strip_prefix(':') {
                Some(port) => (literal.into(), Some(port)),
                None => return Err(UriProblem::Unsupported("text after an IP literal")),
            },
        }
    } else {
        if hostport.contains(['[', ']']) {
            return Err(UriProblem::ForbiddenByte(b'['));
        }
        match hostport.rfind(':') {
            Some(c) => (
                hostport.get(..c).unwrap_or_default().into(),
                Some(hostport.get(c + 1..).unwrap_or_default()),
            ),
            None => (hostport.into(), None),
        }
    };
    let mut normal_host = String::with_capacity(host.len());
    if host.starts_with('[') {
        normal_host.push_str(&host);
    } else {
        percent_normalise(&host, &mut normal_host)?;
        normal_host.make_ascii_lowercase();
    }
    if special && default_port.is_none() && normal_host == "localhost" {
        // WHATWG: `file://localhost/x` is `file:///x`.
        normal_host.clear();
    }
    if special && looks_numeric(&normal_host) && !is_canonical_ipv4(&normal_host) {
        // WHATWG reads `127.1`, `0x7f.0.0.1` or `2130706433` as 127.0.0.1.
        return Err(UriProblem::Unsupported(
            "a numeric host must be a dotted-decimal IPv4 address",
        ));
    }
    out.push_str(&normal_host);
    if let Some(port) = port {
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UriProblem::Unsupported("the port is not a number"));
        }
        let digits = port.trim_start_matches('0');
        let value: Option<u32> = if digits.is_empty() {
            (!port.is_empty()).then_some(0)
        } else if digits.len() > 5 {
            return Err(UriProblem::Unsupported("the port is out of range"));
        } else {
            digits.parse().ok()
        };
        match value {
            // An empty port is the same as none (RFC 3986 §6.2.3).
            None => {}
            Some(v) if v > u32::from(u16::MAX) => {
                return Err(UriProblem::Unsupported("the port is out of range"))
            }
            Some(v) if default_port.is_some_and(|d| u32::from(d) == v) => {}
            Some(v) => {
                out.push(':');
                out.push_str(&v.to_string());
            }
        }
    }
    Ok(())
}

/// `[…]` as WHATWG serialises an IPv6 address: lower-case hex pieces without leading zeros,
/// the first longest run of two or more zero pieces written `::`, never a dotted quad.
fn ipv6_literal(address: std::net::Ipv6Addr) -> String {
    let pieces = address.segments();
    let (mut best, mut best_len) = (usize::MAX, 1);
    let mut i = 0;
    while i < pieces.len() {
        let run = pieces.iter().skip(i).take_while(|&&p| p == 0).count();
        if run > best_len {
            (best, best_len) = (i, run);
        }
        i += run.max(1);
    }
    let mut out = String::from("[");
    let mut i = 0;
    while i < pieces.len() {
        if i == best {
            out.push_str(if i == 0 { "::" } else { ":" });
            i += best_len;
            continue;
        }
        out.push_str(&format!("{:x}", pieces.get(i).copied().unwrap_or_default()));
        if i + 1 < pieces.len() {
            out.push(':');
        }
        i += 1;
    }
    out.push(']');
    out
}

/// The last label (ignoring one trailing dot) is a number WHATWG's IPv4 parser would take.
fn looks_numeric(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let last = host.rsplit('.').next().unwrap_or_default();
    !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || last
                .strip_prefix("0x")
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())))
}

fn is_canonical_ipv4(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|v| v <= 255)
        })
}

/// RFC 3986 §5.2.4 `remove_dot_segments`.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = input.get(2..).unwrap_or_default();
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." {
                "/"
            } else {
                input.get(3..).unwrap_or_default()
            };
            match output.rfind('/') {
                Some(i) => output.truncate(i),
                None => output.clear(),
            }
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input
                .get(start..)
                .and_then(|s| s.find('/'))
                .map_or(input.len(), |i| i + start);
            output.push_str(input.get(..end).unwrap_or_default());
            input = input.get(end..).unwrap_or_default();
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(uri: &str) -> String {
        match normal_form(uri) {
            Ok(n) => n.into_owned(),
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn uris_already_in_normal_form_are_borrowed() {
        for uri in [
            "demo://resource/static/document/architecture.md",
            "file:///home/user/a.txt",
            "https://example.com/",
            "https://example.com:8443/a/b?x=1&y=%2F#frag",
            "urn:isbn:0451450523",
            "demo://resource/dynamic/text/42",
            "mailto:someone@example.com",
            "s3://bucket/key%20with%20spaces",
            "http://[::1]:8080/x",
        ] {
            assert!(
                matches!(normal_form(uri), Ok(Cow::Borrowed(_))),
                "{uri}: {}",
                normal(uri)
            );
            assert_eq!(check(uri), Ok(()), "{uri}");
        }
    }

    #[test]
    fn dot_segments_in_every_spelling_are_resolved() {
        let base = "demo://resource/static/document/";
        for (raw, expected) in [
            ("a/../features.md", "features.md"),
            ("a/%2e%2e/features.md", "features.md"),
            ("a/%2E%2E/features.md", "features.md"),
            ("a/.%2e/features.md", "features.md"),
            ("a/./b.md", "a/b.md"),
            ("a/%2e/b.md", "a/b.md"),
            ("../../../dynamic/text/42", ""),
        ] {
            let uri = format!("{base}{raw}");
            let n = normal(&uri);
            if raw.starts_with("../../..") {
                assert_eq!(n, "demo://resource/dynamic/text/42");
            } else {
                assert_eq!(n, format!("{base}{expected}"), "{uri}");
            }
            assert!(
                matches!(check(&uri), Err(UriProblem::NotNormal { .. })),
                "{uri}"
            );
        }
    }

    #[test]
    fn case_percent_escapes_ports_and_empty_paths_are_normalised() {
        assert_eq!(normal("DEMO://Resource/A"), "demo://resource/A");
        assert_eq!(normal("demo://resource/%61%7e"), "demo://resource/a~");
        assert_eq!(normal("demo://resource/%2f%3a"), "demo://resource/%2F%3A");
        assert_eq!(normal("http://example.com:80/x"), "http://example.com/x");
        assert_eq!(normal("https://example.com:443"), "https://example.com/");
        assert_eq!(normal("https://example.com"), "https://example.com/");
        assert_eq!(normal("https://example.com:/a"), "https://example.com/a");
        assert_eq!(normal("demo://r:080/a"), "demo://r:80/a");
        assert_eq!(normal("https://h/?q='x'"), "https://h/?q=%27x%27");
        assert_eq!(normal("demo://h/?q='x'"), "demo://h/?q='x'");
        // RFC 3986 §5.2.4 run on a rootless path leaves a leading "/" (refused either way).
        assert_eq!(normal("demo:a/../b"), "demo:/b");
    }

    #[test]
    fn what_no_uri_may_contain_is_refused() {
        for (uri, byte) in [
            ("demo://resource/a/.\t./b", b'\t'),
            ("demo://resource/a/.\n./b", b'\n'),
            ("demo://resource/a b", b' '),
            ("http://h\\..\\secret", b'\\'),
            ("demo://resource/\u{e9}", 0xC3),
            ("demo://resource/{id}", b'{'),
            ("demo://resource/a\"b", b'"'),
            ("demo://resource/a\0", 0),
        ] {
            assert_eq!(check(uri), Err(UriProblem::ForbiddenByte(byte)), "{uri:?}");
        }
        assert_eq!(check("relative/path"), Err(UriProblem::NotAbsolute));
        assert_eq!(check("1abc:x"), Err(UriProblem::NotAbsolute));
        assert_eq!(check(""), Err(UriProblem::NotAbsolute));
        assert_eq!(check("demo://r/%2"), Err(UriProblem::BadPercentEscape));
        assert_eq!(check("demo://r/%zz"), Err(UriProblem::BadPercentEscape));
        assert!(matches!(check("http:/x"), Err(UriProblem::Unsupported(_))));
        assert!(matches!(
            check("http://127.1/"),
            Err(UriProblem::Unsupported(_))
        ));
        assert!(matches!(
            check("http://0x7f.0.0.1/"),
            Err(UriProblem::Unsupported(_))
        ));
        assert!(matches!(
            check("http://h:99999/"),
            Err(UriProblem::Unsupported(_))
        ));
        assert!(matches!(
            check("demo://r/a[0]"),
            Err(UriProblem::ForbiddenByte(b'['))
        ));
        assert_eq!(check("http://127.0.0.1:3001/x"), Ok(()));
    }

    #[test]
    fn ipv6_literals_and_file_hosts_are_written_as_whatwg_does() {
        assert_eq!(normal("http://[0:0::1]:8080/x"), "http://[::1]:8080/x");
        assert_eq!(
            normal("http://[::FFFF:127.0.0.1]/"),
            "http://[::ffff:7f00:1]/"
        );
        assert_eq!(normal("http://[1:0:0:2:0:0:0:3]/"), "http://[1:0:0:2::3]/");
        assert_eq!(
            normal("http://[1:0:0:2:0:0:3:4]/"),
            "http://[1::2:0:0:3:4]/"
        );
        assert_eq!(
            normal("http://[1:2:3:4:5:6:7:8]/"),
            "http://[1:2:3:4:5:6:7:8]/"
        );
        assert_eq!(normal("http://[1::]/"), "http://[1::]/");
        assert_eq!(normal("file://localhost/etc/x"), "file:///etc/x");
        assert_eq!(normal("file://LOCALHOST/etc/x"), "file:///etc/x");
        assert_eq!(normal("file://server/share"), "file://server/share");
        assert!(matches!(
            check("http://[v1.x]/"),
            Err(UriProblem::Unsupported(_))
        ));
    }

    #[test]
    fn templates_are_checked_around_their_expressions() {
        assert_eq!(check_template("demo://resource/dynamic/text/{id}"), Ok(()));
        assert_eq!(check_template("file:///{+path}"), Ok(()));
        assert_eq!(check_template("test://secret/{x}"), Ok(()));
        assert_eq!(check_template("demo://r/{a}/{b}?x={q}"), Ok(()));
        assert!(check_template("demo://r/{a}/../b").is_err());
        assert!(check_template("demo://r/{a").is_err());
        assert!(check_template("demo://r/{}").is_err());
        assert!(check_template("demo://r/{a{b}}").is_err());
        assert!(check_template("demo://r/ {a}").is_err());
    }

    #[test]
    fn remove_dot_segments_matches_rfc_3986_examples() {
        // RFC 3986 §5.2.4's worked examples and §5.4's abnormal ones (after merge).
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
        assert_eq!(remove_dot_segments("/../g"), "/g");
        assert_eq!(remove_dot_segments("/./g"), "/g");
        assert_eq!(remove_dot_segments("/g."), "/g.");
        assert_eq!(remove_dot_segments("/.g"), "/.g");
        assert_eq!(remove_dot_segments("/g.."), "/g..");
        assert_eq!(remove_dot_segments("/..g"), "/..g");
        assert_eq!(remove_dot_segments("/b/c/./../g"), "/b/g");
        assert_eq!(remove_dot_segments("/b/c/./g/."), "/b/c/g/");
        assert_eq!(remove_dot_segments("/b/c/g/./h"), "/b/c/g/h");
        assert_eq!(remove_dot_segments("/b/c/g/../h"), "/b/c/h");
        assert_eq!(remove_dot_segments("/a/.."), "/");
        assert_eq!(remove_dot_segments(""), "");
    }

    #[test]
    fn normal_forms_are_fixed_points() {
        for uri in [
            "DEMO://Resource/a/%2e%2e/B/./c?x=%7e#%41",
            "http://EXAMPLE.com:80",
            "demo:a/./b/../c",
            "https://h/a/b/../../../..",
        ] {
            let once = normal(uri);
            assert!(!once.starts_with("ERR"), "{uri}: {once}");
            assert_eq!(check(&once), Ok(()), "{uri} -> {once}");
        }
    }
}
