//! The gateway's own URLs (an API's upstream, the control-plane endpoints: JWKS, authorization
//! server metadata, introspection) parsed by the `url` crate (WHATWG URL Standard, the parser
//! browsers and reqwest use) behind a stricter front door, into the parts a request needs: scheme,
//! host to resolve, port, `Host` value, path, query.
//!
//! Why a front door: the WHATWG parser repairs what a person may have typed by mistake (it drops
//! tabs and newlines, turns `\` into `/`, accepts `http:host` without `//`). In a configuration
//! file such input is a typo to report, not a URL to guess, so it is refused before the parser
//! sees it. Credentials in a URL are refused too: they would end up in logs and `Host`-less
//! requests, and no endpoint we call takes them that way.

use url::{Host, Url};

/// The schemes the gateway's clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// An absolute `http(s)://` URL, split for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    pub scheme: Scheme,
    /// What to resolve: a (lowercased, IDNA-mapped) name, or an IP literal (IPv6 without brackets).
    pub host: String,
    /// `host` is an IP literal: nothing to resolve.
    pub host_is_ip: bool,
    /// The port given, or the scheme's default.
    pub port: u16,
    /// The `Host` field: `host[:port]`, IPv6 in brackets, the port only when not the default.
    pub authority: String,
    /// Starts with `/`; percent-encoded, dot segments removed.
    pub path: String,
    /// Without the `?`.
    pub query: Option<String>,
    /// Whether a `#fragment` was given (never sent; callers decide whether it is an error).
    pub has_fragment: bool,
}

impl ParsedUrl {
    /// The origin-form request-target: path and query.
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Why a URL was refused; the message is written for the operator who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("must not contain spaces, control characters or backslashes")]
    Characters,
    #[error("expected an absolute URL like http://host:port/path")]
    NotAbsolute,
    #[error("unsupported scheme `{0}` (http:// or https:// expected)")]
    Scheme(String),
    #[error("credentials (user:password@) in the URL are not supported")]
    Credentials,
    #[error("missing host")]
    MissingHost,
    #[error("bad port (a number from 0 to 65535 expected)")]
    Port,
    #[error("malformed IPv6 address")]
    Ipv6,
    #[error("not a valid URL: {0}")]
    Invalid(url::ParseError),
}

/// Parses an absolute `http://` or `https://` URL.
pub fn parse(input: &str) -> Result<ParsedUrl, UrlError> {
    if input.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'\\') {
        return Err(UrlError::Characters);
    }
    let (scheme, rest) = input.split_once("://").ok_or(UrlError::NotAbsolute)?;
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(UrlError::NotAbsolute);
    }
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(UrlError::Scheme(other.to_owned())),
    };
    // The authority as written: the parser would drop an empty `@` silently.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if authority_end == 0 {
        // `http:///x` would be read as `http://x/`.
        return Err(UrlError::MissingHost);
    }
    if rest.get(..authority_end).is_some_and(|a| a.contains('@')) {
        return Err(UrlError::Credentials);
    }
    let url = Url::parse(input).map_err(|e| match e {
        url::ParseError::EmptyHost => UrlError::MissingHost,
        url::ParseError::InvalidPort => UrlError::Port,
        url::ParseError::InvalidIpv6Address => UrlError::Ipv6,
        other => UrlError::Invalid(other),
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let (host, host_is_ip) = match url.host() {
        Some(Host::Domain(name)) if !name.is_empty() => (name.to_owned(), false),
        Some(Host::Ipv4(ip)) => (ip.to_string(), true),
        Some(Host::Ipv6(ip)) => (ip.to_string(), true),
        _ => return Err(UrlError::MissingHost),
    };
    let host_str = url.host_str().ok_or(UrlError::MissingHost)?;
    let authority = match url.port() {
        Some(port) => format!("{host_str}:{port}"),
        None => host_str.to_owned(),
    };
    Ok(ParsedUrl {
        scheme,
        port: url.port().unwrap_or(scheme.default_port()),
        host,
        host_is_ip,
        authority,
        path: url.path().to_owned(),
        query: url.query().map(str::to_owned),
        has_fragment: url.fragment().is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> ParsedUrl {
        parse(input).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    #[test]
    fn splits_what_a_client_needs() {
        let u = ok("http://127.0.0.1:3001/mcp");
        assert_eq!(
            (u.scheme, u.host.as_str(), u.host_is_ip, u.port),
            (Scheme::Http, "127.0.0.1", true, 3001)
        );
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("127.0.0.1:3001", "/mcp")
        );
        assert_eq!((u.query.as_deref(), u.has_fragment), (None, false));

        let u = ok("HTTPS://AS.Example/jwks?kid=1&x=%20#frag");
        assert_eq!(
            (u.scheme, u.host.as_str(), u.host_is_ip, u.port),
            (Scheme::Https, "as.example", false, 443)
        );
        assert_eq!(u.authority, "as.example");
        assert_eq!(u.target(), "/jwks?kid=1&x=%20");
        assert!(u.has_fragment);
    }

    #[test]
    fn ipv6_literals_and_default_ports() {
        let u = ok("http://[::1]/a/b");
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 80, "[::1]")
        );
        assert!(u.host_is_ip);
        let u = ok("http://[2001:DB8::1]:8080");
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.authority.as_str(),
                u.path.as_str()
            ),
            ("2001:db8::1", 8080, "[2001:db8::1]:8080", "/")
        );
        // The default port is the scheme's, and is left out of `Host` like browsers do.
        let u = ok("http://h:80/x");
        assert_eq!((u.port, u.authority.as_str()), (80, "h"));
        let u = ok("https://h:80/x");
        assert_eq!((u.port, u.authority.as_str()), (80, "h:80"));
    }

    #[test]
    fn paths_are_normalized_and_encoded() {
        assert_eq!(ok("http://h/a/../b/./c").path, "/b/c");
        assert_eq!(ok("http://h/é").path, "/%C3%A9");
        assert_eq!(ok("http://h?q").target(), "/?q");
    }

    #[test]
    fn refusals_say_why() {
        for (input, expected) in [
            ("http://h/a b", UrlError::Characters),
            ("http://h/\ta", UrlError::Characters),
            ("http:\\\\h/", UrlError::Characters),
            ("http:h/", UrlError::NotAbsolute),
            ("127.0.0.1:80", UrlError::NotAbsolute),
            ("httpé://x/", UrlError::NotAbsolute),
            ("ftp://x/", UrlError::Scheme("ftp".into())),
            ("http://u:p@h/", UrlError::Credentials),
            ("http://@h/", UrlError::Credentials),
            ("http://", UrlError::MissingHost),
            ("http:///x", UrlError::MissingHost),
            ("http://h:x/", UrlError::Port),
            ("http://h:99999/", UrlError::Port),
            ("http://[::1/", UrlError::Ipv6),
        ] {
            assert_eq!(parse(input), Err(expected), "{input}");
        }
        assert!(matches!(
            parse("http://[€]:1/"),
            Err(UrlError::Ipv6 | UrlError::Invalid(_))
        ));
    }
}
