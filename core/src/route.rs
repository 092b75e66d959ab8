//! Routing: pick the API whose entrypoint path is the longest prefix of the request path on a
//! path-segment boundary (`/mcp` matches `/mcp` and `/mcp/x`, never `/mcpx`), and rewrite the
//! request-target for the upstream (the entrypoint prefix replaced by the upstream path).

use crate::config::Api;

/// Index of the matching API in `apis`, if any.
pub fn route(apis: &[Api], path: &[u8]) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, api) in apis.iter().enumerate() {
        let prefix = api.path.as_bytes();
        if prefix_matches(prefix, path) && best.is_none_or(|(_, len)| prefix.len() > len) {
            best = Some((i, prefix.len()));
        }
    }
    best.map(|(i, _)| i)
}

fn prefix_matches(prefix: &[u8], path: &[u8]) -> bool {
    if prefix == b"/" {
        return path.first() == Some(&b'/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.first() == Some(&b'/'),
        None => false,
    }
}

/// Writes the upstream request-target into `out`: `upstream_path` + what follows the entrypoint
/// prefix in `target` (path remainder and query), without doubling the `/` between them.
/// `target` must be routed to `entry_path` (see [`route`]).
pub fn rewrite_target(entry_path: &str, upstream_path: &str, target: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let rest = if entry_path == "/" {
        target
    } else {
        target.get(entry_path.len()..).unwrap_or_default()
    };
    let up = upstream_path.as_bytes();
    match rest.first() {
        None => out.extend_from_slice(up),
        Some(b'/') if up.last() == Some(&b'/') => {
            out.extend_from_slice(up);
            out.extend_from_slice(&rest[1..]);
        }
        Some(b'/') => {
            out.extend_from_slice(up);
            out.extend_from_slice(rest);
        }
        // A query directly after the prefix: `/mcp-proxy?x` -> `/mcp?x`.
        Some(_) => {
            out.extend_from_slice(up);
            out.extend_from_slice(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Api, Upstream};

    fn api(path: &str, up_path: &str) -> Api {
        Api {
            name: path.into(),
            path: path.into(),
            upstream: Upstream {
                url: format!("http://127.0.0.1:1{up_path}"),
                addr: "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!()),
                host_header: "127.0.0.1:1".into(),
                path: up_path.into(),
            },
            public_url: None,
        }
    }

    #[test]
    fn longest_prefix_on_segment_boundary() {
        let apis = vec![
            api("/mcp", "/a"),
            api("/mcp/deep", "/b"),
            api("/other", "/c"),
        ];
        assert_eq!(route(&apis, b"/mcp"), Some(0));
        assert_eq!(route(&apis, b"/mcp/"), Some(0));
        assert_eq!(route(&apis, b"/mcp/x"), Some(0));
        assert_eq!(route(&apis, b"/mcp/deep"), Some(1));
        assert_eq!(route(&apis, b"/mcp/deep/er"), Some(1));
        assert_eq!(route(&apis, b"/mcp/deeper"), Some(0));
        assert_eq!(route(&apis, b"/mcpx"), None);
        assert_eq!(route(&apis, b"/"), None);
        assert_eq!(route(&apis, b""), None);
        assert_eq!(route(&apis, b"/othe"), None);
    }

    #[test]
    fn root_entry_matches_everything_but_loses_to_longer() {
        let apis = vec![api("/", "/root"), api("/mcp", "/m")];
        assert_eq!(route(&apis, b"/anything"), Some(0));
        assert_eq!(route(&apis, b"/mcp/x"), Some(1));
        assert_eq!(route(&apis, b"*"), None);
    }

    fn rw(entry: &str, up: &str, target: &str) -> String {
        let mut out = Vec::new();
        rewrite_target(entry, up, target.as_bytes(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn rewrites_prefix_to_upstream_path() {
        assert_eq!(rw("/mcp-proxy", "/mcp", "/mcp-proxy"), "/mcp");
        assert_eq!(rw("/mcp-proxy", "/mcp", "/mcp-proxy/x?y"), "/mcp/x?y");
        assert_eq!(
            rw("/mcp-proxy", "/mcp", "/mcp-proxy?sessionId=1"),
            "/mcp?sessionId=1"
        );
        assert_eq!(rw("/mcp-proxy", "/", "/mcp-proxy"), "/");
        assert_eq!(rw("/mcp-proxy", "/", "/mcp-proxy/x"), "/x");
        assert_eq!(rw("/mcp-proxy", "/mcp/", "/mcp-proxy/x"), "/mcp/x");
        assert_eq!(rw("/", "/mcp", "/x?q"), "/mcp/x?q");
        assert_eq!(rw("/", "/", "/x"), "/x");
    }
}
