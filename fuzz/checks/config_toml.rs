//! The configuration loader (`mcpgate_core::config::load_str`: TOML → user structs → validated
//! snapshot, including `[api.acl]`, `[api.plan]` and `[api.log]`) on arbitrary text. Invariants:
//! no panic; an error says where (a parse error's line and column lie inside the text); a loaded
//! snapshot has one ACL and plan slot per API, unique entrypoint paths starting with `/`, and
//! loading the same text again gives the same snapshot.
//!
//! Inputs the loader would turn into I/O are skipped, not fed: an upstream whose host is not an
//! IP literal (resolving it is a DNS query), any `*_file` / `*_files` / `file` key and a `tls`
//! table's certificate, key and CA paths (a file read, which a fuzzer could point at `/dev/zero`).
use mcpgate_core::config::{load_str, ConfigError, Overrides};

/// Whether loading `value` could do I/O (see the module header).
fn touches_io(key: &str, value: &toml::Value) -> bool {
    if key == "file" || key.ends_with("_file") || key.ends_with("_files") {
        return true;
    }
    // A TLS table's certificate, key and CA settings are file paths.
    if key == "tls" && tls_names_a_file(value) {
        return true;
    }
    match value {
        toml::Value::String(s) if key == "upstream" => !host_is_ip_literal(s),
        toml::Value::Table(table) => table.iter().any(|(k, v)| touches_io(k, v)),
        toml::Value::Array(items) => items.iter().any(|v| touches_io(key, v)),
        _ => false,
    }
}

fn tls_names_a_file(value: &toml::Value) -> bool {
    const PATH_KEYS: [&str; 6] = [
        "cert",
        "key",
        "ca",
        "client_ca",
        "client_cert",
        "client_key",
    ];
    match value {
        toml::Value::Table(table) => table
            .iter()
            .any(|(k, v)| PATH_KEYS.contains(&k.as_str()) || tls_names_a_file(v)),
        toml::Value::Array(items) => items.iter().any(tls_names_a_file),
        _ => false,
    }
}

fn host_is_ip_literal(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        url.get(7..).unwrap_or("")
    } else if lower.starts_with("https://") {
        url.get(8..).unwrap_or("")
    } else {
        // Neither http:// nor https://: refused before any lookup.
        return true;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.is_empty() || host.contains('@') || host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // What the loader's own parse would read; a text that is not TOML cannot reach I/O.
    if let Ok(toml::Value::Table(doc)) = text.parse::<toml::Value>() {
        if doc.iter().any(|(k, v)| touches_io(k, v)) {
            return;
        }
    }
    match load_str(text, "fuzz.toml", &Overrides::default()) {
        Err(error) => {
            assert!(!error.to_string().is_empty());
            if let ConfigError::Parse { line, column, .. } = &error {
                let lines = text.split('\n').count();
                assert!(
                    *line >= 1 && *line <= lines.max(1) && *column >= 1,
                    "{error} for a text of {lines} lines"
                );
            }
        }
        Ok(config) => {
            for (i, api) in config.apis.iter().enumerate() {
                assert!(api.path.starts_with('/'), "api[{i}].path {:?}", api.path);
                assert!(
                    config.apis[..i].iter().all(|other| other.path != api.path),
                    "duplicate path {:?}",
                    api.path
                );
            }
            // Compiled ACLs, plans and upstream TLS clients compare by identity (a reload always
            // rebuilds them): compare everything else, and which APIs have them, and their public
            // URLs and TLS server names.
            match load_str(text, "fuzz.toml", &Overrides::default()) {
                Ok(again) => {
                    assert_eq!(again.gateway, config.gateway, "a second load differs");
                    assert_eq!(again.log, config.log, "a second load differs");
                    let shape = |c: &mcpgate_core::config::Config| {
                        c.apis
                            .iter()
                            .map(|a| {
                                let mut upstream = a.upstream.clone();
                                let tls = upstream.tls.take().map(|t| {
                                    (format!("{:?}", t.server_name), t.insecure_skip_verify)
                                });
                                (
                                    (a.name.clone(), a.path.clone(), upstream, tls),
                                    (a.public_url.clone(), a.log.clone()),
                                    a.acl.as_ref().map(|a| a.0.rule_count()),
                                    a.auth
                                        .as_ref()
                                        .map(|a| (a.public_url.clone(), a.auth.plans().len())),
                                )
                            })
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(shape(&again), shape(&config), "a second load differs");
                }
                Err(e) => panic!("loaded once, then refused: {e}"),
            }
        }
    }
}
