//! Routing: pick the API whose entrypoint path is the longest prefix of the request path on a
//! path-segment boundary (`/mcp` matches `/mcp` and `/mcp/x`, never `/mcpx`), and rewrite the
//! request-target for the upstream (the entrypoint prefix replaced by the upstream path).

use crate::config::Api;

/// The origin-form part of a request-target: `http://host/p?q` -> `/p?q` (absolute-form is legal
/// in requests to a server too); origin-form targets are returned unchanged. `*` and an
/// authority without a path give an empty slice, which no API matches.
pub fn origin_form(target: &[u8]) -> &[u8] {
    if target.first() == Some(&b'/') {
        return target;
    }
    let scheme_end = match target.windows(3).position(|w| w == b"://") {
        Some(i) if target[..i].iter().all(|b| b.is_ascii_alphabetic()) => i + 3,
        _ => return &[],
    };
    let rest = target.get(scheme_end..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'/') {
        Some(i) => rest.get(i..).unwrap_or_default(),
        None => &[],
    }
}

/// Whether `path` (no query) holds a `.` or `..` segment, literally or percent-encoded. Such a
/// path could name something outside the API's upstream endpoint once the upstream normalizes
/// it, so the gateway refuses it rather than guess.
pub fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|segment| {
        let mut dots = 0;
        let mut i = 0;
        while i < segment.len() {
            if segment[i] == b'.' {
                i += 1;
            } else if segment
                .get(i..i + 3)
                .is_some_and(|e| e.eq_ignore_ascii_case(b"%2e"))
            {
                i += 3;
            } else {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    })
}

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

/// The legacy HTTP+SSE transport (2024-11-05) announces where to POST with an `endpoint` event
/// whose data is a URL on the upstream (`/message?sessionId=..` or absolute). Clients resolve it
/// against the gateway, so it is mapped back under the entrypoint: the upstream path prefix is
/// replaced by the entrypoint path, an absolute URL becomes a path on the gateway. `None` when the
/// data cannot be mapped (relative references resolve correctly as they are).
pub fn rewrite_endpoint(entry_path: &str, upstream_path: &str, data: &[u8]) -> Option<Vec<u8>> {
    let data = data.trim_ascii();
    let target = if data.first() == Some(&b'/') {
        if data.get(1) == Some(&b'/') {
            // Scheme-relative `//host/p`: keep only the path.
            let rest = data.get(2..).unwrap_or_default();
            let slash = rest.iter().position(|&b| b == b'/')?;
            rest.get(slash..)?
        } else {
            data
        }
    } else {
        let t = origin_form(data);
        if t.is_empty() {
            return None;
        }
        t
    };
    let up = upstream_path.trim_end_matches('/').as_bytes();
    let rest = if up.is_empty() {
        target
    } else {
        let rest = target.strip_prefix(up)?;
        match rest.first() {
            None | Some(b'/' | b'?' | b'#') => rest,
            Some(_) => return None,
        }
    };
    let entry = entry_path.trim_end_matches('/').as_bytes();
    let mut out = Vec::with_capacity(entry.len() + rest.len() + 1);
    out.extend_from_slice(entry);
    if out.is_empty() && rest.first() != Some(&b'/') {
        out.push(b'/');
    }
    out.extend_from_slice(rest);
    Some(out)
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
                scheme: crate::urls::Scheme::Http,
                host: "127.0.0.1".into(),
                port: 1,
                addr: "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!()),
                addrs: Vec::new(),
                host_header: "127.0.0.1:1".into(),
                path: up_path.into(),
                tls: None,
            },
            public_url: None,
            acl: None,
            auth: None,
            log: crate::config::ApiLog::default(),
            limits: crate::config::ApiLimits::default(),
            cache: None,
            pin: None,
            virtual_server: None,
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
    fn absolute_form_targets_route_by_their_path() {
        assert_eq!(origin_form(b"/mcp?x"), b"/mcp?x");
        assert_eq!(origin_form(b"http://gw:8080/mcp/x?y"), b"/mcp/x?y");
        assert_eq!(origin_form(b"HTTP://gw"), b"");
        assert_eq!(origin_form(b"*"), b"");
        assert_eq!(origin_form(b"gw:80"), b"");
    }

    fn ep(entry: &str, up: &str, data: &str) -> Option<String> {
        rewrite_endpoint(entry, up, data.as_bytes())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    #[test]
    fn legacy_endpoint_urls_map_back_under_the_entrypoint() {
        assert_eq!(
            ep("/legacy", "/", "/message?sessionId=1").as_deref(),
            Some("/legacy/message?sessionId=1")
        );
        assert_eq!(
            ep("/legacy", "/", "http://127.0.0.1:3001/message?sessionId=1").as_deref(),
            Some("/legacy/message?sessionId=1")
        );
        assert_eq!(
            ep("/legacy", "/mcp", "/mcp/message?s=1").as_deref(),
            Some("/legacy/message?s=1")
        );
        assert_eq!(
            ep("/legacy", "/mcp", "/mcp?s=1").as_deref(),
            Some("/legacy?s=1")
        );
        assert_eq!(
            ep("/legacy", "/mcp", " /mcp/messages \n").as_deref(),
            Some("/legacy/messages")
        );
        assert_eq!(
            ep("/", "/mcp", "/mcp/messages").as_deref(),
            Some("/messages")
        );
        assert_eq!(ep("/legacy", "/mcp", "/mcpx/messages"), None);
        assert_eq!(ep("/legacy", "/mcp", "/other"), None);
        assert_eq!(ep("/legacy", "/", "messages?x"), None);
        assert_eq!(
            ep("/legacy", "/", "//up:1/message?s").as_deref(),
            Some("/legacy/message?s")
        );
    }

    #[test]
    fn dot_segments_are_detected() {
        for bad in [
            &b"/mcp/.."[..],
            b"/mcp/../x",
            b"/mcp/./x",
            b"/mcp/%2e%2E/x",
            b"/mcp/.%2e",
            b"/%2E",
        ] {
            assert!(has_dot_segment(bad), "{}", String::from_utf8_lossy(bad));
        }
        for good in [
            &b"/mcp"[..],
            b"/mcp/",
            b"/mcp/...",
            b"/mcp/.well-known/x",
            b"/a.b/c",
            b"/%2e%2e%2e",
        ] {
            assert!(!has_dot_segment(good), "{}", String::from_utf8_lossy(good));
        }
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
