//! Which browser origins may call the gateway's MCP endpoints: the `Origin` check the MCP
//! specification requires of servers ("MUST validate the Origin header on all incoming
//! connections to prevent DNS rebinding attacks"). A page whose name was re-pointed at the
//! gateway's address (DNS rebinding) is same-origin with itself, not with the gateway, so the
//! check is against the origins the gateway knows, never against the request's own `Host`.
//!
//! Requests without `Origin` (the SDK clients, curl, servers) are not browsers' cross-site
//! requests and pass; a browser sends `Origin` on every POST, and an MCP session starts with one.

/// A serialized origin (`scheme://host[:port]`), lower-cased, the port only when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    /// A name, an IPv4 literal, or an IPv6 literal in brackets.
    pub host: String,
    pub port: Option<u16>,
}

impl Origin {
    /// Parses the `Origin` header's serialization; `None` for anything else (`null`, a path, a
    /// userinfo, a bad port).
    pub fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme_ok = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok || rest.is_empty() {
            return None;
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (inside, after) = v6.split_once(']')?;
            let host = format!("[{inside}]");
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':')?)),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (rest.to_owned(), None),
            }
        };
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
            });
        if !host_ok {
            return None;
        }
        let port = match port {
            None => None,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse().ok()?)
            }
            Some(_) => return None,
        };
        Some(Origin {
            scheme: scheme.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `localhost` (and its subdomains, RFC 6761), 127.0.0.0/8 and `[::1]`.
    pub fn is_loopback(&self) -> bool {
        let h = self.host.trim_end_matches('.');
        h == "localhost"
            || h.ends_with(".localhost")
            || h == "[::1]"
            || h.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// `gateway.allowed_origins`, validated, plus what the gateway knows of its own names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// `"*"` was configured: no check.
    pub any: bool,
    /// Configured origins: scheme, host and port must match (a port given only there must be
    /// the request's; no port there allows any).
    pub allowed: Vec<Origin>,
    /// Hosts of the gateway's and the APIs' `public_url`s: any origin on them.
    pub public_hosts: Vec<String>,
}

impl OriginPolicy {
    /// Whether a request with `Origin: origin` may reach an MCP endpoint: always with `"*"`;
    /// otherwise a loopback origin (a page the user runs locally), an origin on a public URL's
    /// host, or a configured one. Anything unparsable (`null`, garbage) is refused.
    pub fn allows(&self, origin: &[u8]) -> bool {
        if self.any {
            return true;
        }
        let Some(origin) = std::str::from_utf8(origin).ok().and_then(Origin::parse) else {
            return false;
        };
        origin.is_loopback()
            || self.public_hosts.contains(&origin.host)
            || self.allowed.iter().any(|a| {
                a.scheme == origin.scheme
                    && a.host == origin.host
                    && (a.port.is_none() || a.port == origin.port)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_as_browsers_serialize_them() {
        let o = Origin::parse("HTTPS://App.Example.com:8443").unwrap_or_else(|| panic!("parse"));
        assert_eq!(
            (o.scheme.as_str(), o.host.as_str(), o.port),
            ("https", "app.example.com", Some(8443))
        );
        let o = Origin::parse("http://[::1]:3000").unwrap_or_else(|| panic!("parse"));
        assert_eq!((o.host.as_str(), o.port), ("[::1]", Some(3000)));
        for bad in [
            "null",
            "",
            "http://",
            "http://a/b",
            "http://u@a",
            "http://a:",
            "http://a:99999",
            "http://a:8x",
            "1http://a",
            "http://[::1",
            "http://[::1]x",
        ] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn loopback_public_and_configured_origins_pass_the_rest_do_not() {
        let policy = OriginPolicy {
            any: false,
            allowed: vec![
                Origin::parse("https://app.example.com").unwrap_or_else(|| panic!("parse")),
                Origin::parse("http://tool.example.net:8080").unwrap_or_else(|| panic!("parse")),
            ],
            public_hosts: vec!["mcp.example.com".into()],
        };
        for ok in [
            "http://localhost:6274",
            "http://127.0.0.1:8080",
            "http://[::1]",
            "http://inspector.localhost",
            "https://mcp.example.com",
            "https://app.example.com:443",
            "http://tool.example.net:8080",
        ] {
            assert!(policy.allows(ok.as_bytes()), "{ok}");
        }
        for refused in [
            "http://evil.example.com",
            "http://evil.example.com:8080",
            "http://app.example.com",
            "http://tool.example.net:9090",
            "null",
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example",
        ] {
            assert!(!policy.allows(refused.as_bytes()), "{refused}");
        }
        let any = OriginPolicy {
            any: true,
            ..OriginPolicy::default()
        };
        assert!(any.allows(b"null"));
    }
}
