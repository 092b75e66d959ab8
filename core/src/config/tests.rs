//! Config loading and validation: the examples, the embedded default, overrides, and the shape of
//! every error (file, line, column, field).

use super::*;

fn load(text: &str) -> Result<Config, ConfigError> {
    load_str(text, "test.toml", &Overrides::default())
}

fn err(text: &str) -> String {
    match load(text) {
        Ok(cfg) => panic!("expected an error, got {cfg:?}"),
        Err(e) => e.to_string(),
    }
}

const API: &str = "[[api]]\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n";

#[test]
fn examples_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.map(|e| e.path()).unwrap_or_default();
        if path.extension().is_some_and(|x| x == "toml") {
            load_file(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected minimal.toml and full.toml in {}",
        dir.display()
    );
}

#[test]
fn full_example_values_are_read() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/full.toml");
    let cfg = load_file(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.apis.len(), 2);
    assert_eq!(cfg.apis[0].name, "everything");
    assert_eq!(
        cfg.apis[0].public_url.as_deref(),
        Some("https://gateway.example.com/mcp-proxy")
    );
    assert_eq!(cfg.apis[1].upstream.host_header, "localhost:3002");
    assert_eq!(
        cfg.gateway.admin,
        Some("127.0.0.1:9901".parse().unwrap_or_else(|_| unreachable!()))
    );
}

#[test]
fn embedded_default_is_the_seed_example() {
    let cfg = load_default(&Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.gateway.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        cfg.gateway.admin.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9901")
    );
    assert_eq!(cfg.apis.len(), 1);
    let api = &cfg.apis[0];
    assert_eq!(api.path, "/mcp-proxy");
    assert_eq!(api.upstream.addr.to_string(), "127.0.0.1:3001");
    assert_eq!(api.upstream.path, "/mcp");
    assert_eq!(api.upstream.host_header, "127.0.0.1:3001");
    assert_eq!(cfg.gateway.driver, Driver::Auto);
    assert!(cfg.gateway.workers >= 1);
    assert_eq!(cfg.gateway.timeouts.sse_idle, Duration::from_secs(300));
    assert_eq!(cfg.gateway.limits.max_body_bytes, 4 * 1024 * 1024);
}

#[test]
fn command_line_overrides_replace_apis_and_listener() {
    let ov = Overrides {
        listen: Some("127.0.0.1:0".into()),
        admin: Some("off".into()),
        workers: Some(3),
        driver: Some("epoll".into()),
        upstream: Some("http://127.0.0.1:4000/".into()),
        path: Some("/gw/".into()),
        acl: None,
        limits: Vec::new(),
    };
    let cfg = load_default(&ov).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.gateway.listen.port(), 0);
    assert_eq!(cfg.gateway.admin, None);
    assert_eq!(cfg.gateway.workers, 3);
    assert_eq!(cfg.gateway.driver, Driver::Epoll);
    assert_eq!(cfg.apis.len(), 1);
    assert_eq!(cfg.apis[0].path, "/gw");
    assert_eq!(cfg.apis[0].upstream.path, "/");
    let ov = Overrides {
        path: Some("/x".into()),
        ..Overrides::default()
    };
    assert!(
        load_default(&ov).is_err(),
        "--path without --upstream must be refused"
    );
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = err("[gateway]\nlisten = \"127.0.0.1:8080\"\nworkers = \"two\"\n");
    assert!(e.starts_with("test.toml:3:11: "), "{e}");
    let e = err(&format!("{API}[gateway]\nlisten = \n"));
    assert!(e.starts_with("test.toml:5:"), "{e}");
}

#[test]
fn unknown_fields_are_named() {
    let e = err(&format!(
        "[gateway]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n{API}"
    ));
    assert!(e.starts_with("test.toml:3:1: "), "{e}");
    assert!(e.contains("unknown field `lisen`"), "{e}");
    let e = err(&format!("{API}upstreams = \"http://x\"\n"));
    assert!(e.contains("unknown field `upstreams`"), "{e}");
}

#[test]
fn validation_errors_name_the_field_and_line() {
    let e = err(&format!(
        "{API}[[api]]\npath = \"/b\"\nupstream = \"https://example.com/mcp\"\n"
    ));
    assert!(
        e.starts_with("test.toml:6:12: api[1].upstream: only http:// is supported"),
        "{e}"
    );
    let e = err(&format!(
        "{API}[[api]]\npath = \"/mcp/\"\nupstream = \"http://127.0.0.1:2/\"\n"
    ));
    assert!(
        e.contains("api[1].path: `/mcp` is already the path of api[0]"),
        "{e}"
    );
    let e = err("[[api]]\npath = \"mcp\"\nupstream = \"http://127.0.0.1:2/\"\n");
    assert!(
        e.starts_with("test.toml:2:8: api[0].path: must start with `/`"),
        "{e}"
    );
    let e = err(&format!("[gateway]\nlisten = \"localhost\"\n{API}"));
    assert!(e.starts_with("test.toml:2:10: gateway.listen:"), "{e}");
    let e = err(&format!(
        "[gateway.timeouts]\nsse_idle = \"5 parsecs\"\n{API}"
    ));
    assert!(e.contains("gateway.timeouts.sse_idle"), "{e}");
    let e = err("[gateway]\nlisten = \"127.0.0.1:1\"\n");
    assert!(e.contains("api: no [[api]]"), "{e}");
}

#[test]
fn plan_and_acl_are_refused_until_implemented() {
    // Plans are implemented (`super::auth`); an unknown plan type is refused naming the table.
    let e = err(&format!("{API}[api.plan]\ntype = \"apikey\"\n"));
    assert!(e.contains("api[0].plan") && e.contains("apikey"), "{e}");
    let e = err(&format!("{API}[api.acl]\nauthorizations = []\n"));
    assert!(e.contains("api[0].acl:"), "{e}");
}

const RESOLVE: Duration = Duration::from_secs(10);

fn upstream(url: &str) -> Upstream {
    parse_upstream(url, RESOLVE).unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[test]
fn upstream_urls() {
    let up = upstream("http://127.0.0.1:3001/mcp");
    assert_eq!(
        (up.addr.port(), up.path.as_str(), up.host_header.as_str()),
        (3001, "/mcp", "127.0.0.1:3001")
    );
    assert_eq!(
        (up.scheme, up.host.as_str(), up.port),
        (Scheme::Http, "127.0.0.1", 3001)
    );
    assert!(up.host_is_ip());
    let up = upstream("HTTP://[::1]/a/b");
    assert_eq!(
        (
            up.addr.to_string().as_str(),
            up.path.as_str(),
            up.host_header.as_str()
        ),
        ("[::1]:80", "/a/b", "[::1]")
    );
    assert_eq!(upstream("http://[::1]:3001").host_header, "[::1]:3001");
    let up = upstream("http://localhost:9");
    assert_eq!((up.path.as_str(), up.host.as_str()), ("/", "localhost"));
    assert!(!up.host_is_ip());
    assert!(up
        .addrs
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == 9));
    assert_eq!(
        upstream("http://LocalHost:80/x/../mcp").host_header,
        "localhost"
    );
    assert_eq!(upstream("http://localhost:80/x/../mcp").path, "/mcp");
}

#[test]
fn upstream_url_refusals_say_why() {
    for (bad, message) in [
        (
            "https://x/",
            "only http:// is supported (TLS to upstreams is not implemented yet)",
        ),
        ("ftp://x/", "only http:// is supported"),
        ("http://", "missing host"),
        ("http:///mcp", "missing host"),
        (
            "http://u:p@127.0.0.1/",
            "credentials (user:password@) in the URL are not supported",
        ),
        (
            "http://@127.0.0.1/",
            "credentials (user:password@) in the URL are not supported",
        ),
        ("http://127.0.0.1:99999/", "bad port"),
        (
            "http://127.0.0.1/mcp?x=1",
            "a query string is not supported in an upstream URL",
        ),
        (
            "http://127.0.0.1/mcp#top",
            "a fragment (#...) is not allowed in an upstream URL",
        ),
        ("http://[::1/", "malformed IPv6 address"),
        ("127.0.0.1:80", "expected an absolute URL"),
        ("httpé://x/", "expected an absolute URL"),
        ("http:/€", "expected an absolute URL"),
        ("http://127.0.0.1/a b", "must not contain spaces"),
        (
            "http:\\\\127.0.0.1/",
            "must not contain spaces, control characters or backslashes",
        ),
    ] {
        match parse_upstream(bad, RESOLVE) {
            Ok(up) => panic!("{bad} accepted: {up:?}"),
            Err(e) => assert!(e.starts_with(message), "{bad}: {e}"),
        }
    }
    assert!(parse_upstream("http://[€]:1/", RESOLVE).is_err());
}

#[test]
fn dns_settings() {
    let cfg = load(API).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.gateway.dns.refresh, Some(DEFAULT_DNS_REFRESH));
    assert_eq!(cfg.gateway.dns.timeout, DEFAULT_DNS_TIMEOUT);
    let cfg = load(&format!(
        "[gateway.dns]\nrefresh = \"off\"\ntimeout = \"250ms\"\n{API}"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.gateway.dns.refresh, None);
    assert_eq!(cfg.gateway.dns.timeout, Duration::from_millis(250));
    let e = err(&format!("[gateway.dns]\nrefresh = \"never\"\n{API}"));
    assert!(
        e.starts_with("test.toml:2:11: gateway.dns.refresh: "),
        "{e}"
    );
    let e = err(&format!("[gateway.dns]\ntimeout = \"0s\"\n{API}"));
    assert!(e.contains("gateway.dns.timeout"), "{e}");
    let e = err(&format!("[gateway.dns]\nttl = \"1s\"\n{API}"));
    assert!(e.contains("unknown field `ttl`"), "{e}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    for bad in [
        "",
        "10",
        "s",
        "1.5s",
        "-1s",
        "10 seconds",
        "99999999999999999999s",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn entry_paths_are_normalized() {
    assert_eq!(normalize_entry_path("/mcp/").as_deref(), Ok("/mcp"));
    assert_eq!(normalize_entry_path("/").as_deref(), Ok("/"));
    assert_eq!(normalize_entry_path("//").as_deref(), Ok("/"));
    assert!(normalize_entry_path("/a?b").is_err());
    assert!(normalize_entry_path("/a b").is_err());
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("ab\ncé x", 7), (2, 4));
    assert_eq!(line_col("", 10), (1, 1));
}
