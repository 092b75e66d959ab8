//! TLS at both edges (issue 13), with real peers on loopback and certificates made at test time:
//!
//! - downstream: the official TypeScript and Python SDK clients over `https://` (both engine
//!   drivers, `--tls-cert/--tls-key`); `openssl s_client` checks of protocol versions, ALPN (an
//!   `h2`-only client is refused with an alert) and the certificate chosen by SNI; mTLS accepted
//!   and refused, the verified identity in an ACL condition, a `client_cert` plan and the exchange
//!   log; plain and TLS listeners side by side; a silent client cut by the handshake timeout while
//!   others are served; certificate rotation (file change, SIGHUP, a bad file) under load with no
//!   failed request;
//! - upstream: an `https://` server-everything (Node's `https` in front of it) for the SDK
//!   client, TLS sessions resumed across new pooled connections and pooled connections reused;
//!   Mode A (the upstream's OAuth challenge and metadata) over https behind a TLS listener;
//!   wrong-host, expired and unknown-CA upstreams each a 502 naming the reason (`--upstream-ca`,
//!   `insecure_skip_verify`).

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpgate_tests::auth::{challenge_param, SecuredUpstream};
use mcpgate_tests::http::{build_request, post_mcp, MCP_ACCEPT};
use mcpgate_tests::net::{free_port, CapturingUpstream};
use mcpgate_tests::peers::run_client_with_env;
use mcpgate_tests::process::run_to_completion;
use mcpgate_tests::scenarios::{check, Observed, Route};
use mcpgate_tests::tls::{write, HttpsClient, HttpsUpstream, Issued, Pki};
use mcpgate_tests::{record_skip, Driver, Gateway, GatewaySpec, Sdk, ServerEverything};
use serde_json::{json, Value};

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
const CANNED: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n\
{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";

fn post(path: &str, host: &str, body: &str) -> Vec<u8> {
    build_request(
        "POST",
        path,
        host,
        &[("Content-Type", "application/json"), ("Accept", MCP_ACCEPT)],
        body.as_bytes(),
    )
}

fn keep_alive_post(path: &str, host: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Accept: {MCP_ACCEPT}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn poll<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(e) if Instant::now() >= deadline => panic!("{what}: not within {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// The official SDK clients over https through a TLS listener set up from the command line, on
/// both engine drivers: request/response, a POST's event stream, server→client requests.
#[test]
fn sdk_clients_over_https_on_both_drivers() {
    let pki = Pki::new("sdk");
    let cert = pki.server("gateway", &["localhost", "127.0.0.1"]);
    let ca = path(pki.ca());
    for driver in [Driver::Epoll, Driver::Uring] {
        if let Err(reason) = driver.available() {
            record_skip("sdk_clients_over_https on io_uring", &reason);
            continue;
        }
        let server = ServerEverything::start();
        let gateway = Gateway::start(
            &GatewaySpec::cli(server.upstream_url(), "/mcp")
                .driver(driver)
                .args([
                    "--tls-cert",
                    &path(&cert.cert),
                    "--tls-key",
                    &path(&cert.key),
                ]),
        );
        let url = format!("https://localhost:{}/mcp", gateway.addr().port());
        for (sdk, trust) in [
            (Sdk::TypeScript, "NODE_EXTRA_CA_CERTS"),
            (Sdk::Python, "SSL_CERT_FILE"),
        ] {
            for scenario in ["tools_call", "progress", "sampling"] {
                let observed = run_client_with_env(sdk, &url, scenario, &[(trust, &ca)]);
                check(
                    scenario,
                    &Observed {
                        sdk,
                        route: Route::Through(driver),
                        value: &observed,
                    },
                );
            }
        }
    }
}

fn s_client(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let mut command = Command::new("openssl");
    command
        .arg("s_client")
        .args(["-connect", &addr.to_string()])
        .args(args)
        .stdin(std::process::Stdio::null());
    let finished = run_to_completion(command, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("cannot run openssl s_client: {e}"));
    let ok = finished.status.is_some_and(|s| s.success()) && !finished.timed_out;
    (ok, format!("{}\n{}", finished.stdout, finished.stderr))
}

/// Protocol versions, ALPN and the certificate chosen by SNI, as OpenSSL's client sees them.
#[test]
fn openssl_sees_versions_alpn_and_sni_choice() {
    if Command::new("openssl").arg("version").output().is_err() {
        record_skip(
            "openssl_sees_versions_alpn_and_sni_choice",
            "no openssl CLI",
        );
        return;
    }
    let pki = Pki::new("sclient");
    let default = pki.server("default", &["localhost"]);
    let other = pki.server("other", &["other.test", "*.wild.test"]);
    let upstream = CapturingUpstream::start(CANNED);
    let config = |min: &str| {
        format!(
            "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
             [gateway.tls]\ncert = \"{}\"\nkey = \"{}\"\nmin_version = \"{min}\"\n\n\
             [[gateway.tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n\n\
             [[api]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n",
            path(&default.cert),
            path(&default.key),
            path(&other.cert),
            path(&other.key),
            upstream.addr()
        )
    };
    let gateway = Gateway::start(&GatewaySpec::config(config("1.2")));
    let addr = gateway.addr();
    for (version, flag) in [("TLSv1.2", "-tls1_2"), ("TLSv1.3", "-tls1_3")] {
        let (ok, out) = s_client(
            addr,
            &["-servername", "localhost", flag, "-alpn", "http/1.1"],
        );
        assert!(ok, "{flag}: {out}");
        // "New, TLSv1.3, Cipher is …" names the negotiated version at once; the session block
        // ("Protocol  : …") is printed only if a ticket arrived before s_client quit.
        assert!(
            out.contains(&format!("New, {version},"))
                || out.contains(&format!("Protocol  : {version}")),
            "{flag}: {out}"
        );
        assert!(out.contains("ALPN protocol: http/1.1"), "{flag}: {out}");
        assert!(out.contains("CN = localhost"), "{flag}: {out}");
    }
    // An h2-only client is told so with an alert at once, not left hanging.
    let started = Instant::now();
    let (ok, out) = s_client(addr, &["-servername", "localhost", "-alpn", "h2"]);
    assert!(!ok, "h2-only accepted: {out}");
    assert!(out.contains("no application protocol"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // SNI picks the certificate covering the name, wildcards one label deep; none: the default.
    for (sni, cn) in [
        (Some("other.test"), "CN = other.test"),
        (Some("a.wild.test"), "CN = other.test"),
        (Some("a.b.wild.test"), "CN = localhost"),
        (Some("LOCALHOST"), "CN = localhost"),
        (None, "CN = localhost"),
    ] {
        let args: Vec<&str> = match sni {
            Some(name) => vec!["-servername", name],
            None => vec!["-noservername"],
        };
        let (ok, out) = s_client(addr, &args);
        assert!(ok, "{sni:?}: {out}");
        assert!(out.contains(&format!("subject={cn}")), "{sni:?}: {out}");
    }
    drop(gateway);
    // TLS 1.3 only: a TLS 1.2 client is refused.
    let gateway = Gateway::start(&GatewaySpec::config(config("1.3")));
    let (ok, out) = s_client(gateway.addr(), &["-servername", "localhost", "-tls1_2"]);
    assert!(!ok, "TLS 1.2 accepted by a 1.3-only listener: {out}");
    let (ok, out) = s_client(gateway.addr(), &["-servername", "localhost", "-tls1_3"]);
    assert!(ok && out.contains("New, TLSv1.3, Cipher"), "{out}");
}

/// Three listeners side by side (TLS with required client certificates, plain, TLS with optional
/// ones). The verified identity reaches an ACL condition (`connection.client_cert`), a
/// `client_cert` plan and the exchange log; clients without a certificate, or with one from
/// another CA, are refused at the handshake where one is required.
#[test]
fn mtls_accepted_refused_and_identity_used() {
    let pki = Pki::new("mtls");
    let stranger_ca = Pki::new("mtls-stranger");
    let server = pki.server("gateway", &["localhost"]);
    let alice = pki.client("alice", "alice", Some("spiffe://mcpgate.test/alice"));
    let bob = pki.client("bob", "bob", None);
    let mallory = stranger_ca.client("mallory", "alice", None);
    let upstream = CapturingUpstream::start(CANNED);
    let (plain_port, optional_port) = (free_port(), free_port());
    let log_file = pki.dir().join("exchanges.jsonl");
    let tls = |extra: &str| {
        format!(
            "cert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n{extra}",
            path(&server.cert),
            path(&server.key),
            path(pki.ca())
        )
    };
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [gateway.tls]\n{}\n\
         [[gateway.listeners]]\nlisten = \"127.0.0.1:{plain_port}\"\n\n\
         [[gateway.listeners]]\nlisten = \"127.0.0.1:{optional_port}\"\n\
         [gateway.listeners.tls]\n{}\n\
         [gateway.log]\nsink = \"file\"\nfile = \"{}\"\n\n\
         [[api]]\nname = \"acl\"\npath = \"/acl\"\nupstream = \"http://{up}/mcp\"\n\
         [api.acl]\n[[api.acl.rule]]\nmethods = [\"tools/call\"]\nnames = [\"echo\"]\n\
         condition = \"connection.mtls && connection.client_cert.common_name == 'alice'\"\n\n\
         [[api]]\nname = \"plan\"\npath = \"/plan\"\nupstream = \"http://{up}/mcp\"\n\
         [[api.plan]]\ntype = \"client_cert\"\n",
        tls(""),
        tls("client_auth = \"optional\""),
        path(&log_file),
        up = upstream.addr(),
    );
    let gateway = Gateway::start(&GatewaySpec::config(config).driver(Driver::Epoll));
    let required = gateway.addr();
    let plain: SocketAddr = ([127, 0, 0, 1], plain_port).into();
    let optional: SocketAddr = ([127, 0, 0, 1], optional_port).into();
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;
    let host = |a: SocketAddr| format!("localhost:{}", a.port());

    // Required: no certificate, or one from another CA, never gets an HTTP answer.
    let anonymous = HttpsClient::new(pki.ca(), None);
    let as_alice = HttpsClient::new(pki.ca(), Some(&alice));
    let as_bob = HttpsClient::new(pki.ca(), Some(&bob));
    let as_mallory = HttpsClient::new(pki.ca(), Some(&mallory));
    for (who, client) in [("no certificate", &anonymous), ("unknown CA", &as_mallory)] {
        let r = client.request(required, "localhost", &post("/acl", &host(required), call));
        assert!(r.is_err(), "{who} was answered on the mTLS listener: {r:?}");
    }
    let before = upstream.count();
    let r = as_alice
        .request(required, "localhost", &post("/acl", &host(required), call))
        .unwrap_or_else(|e| panic!("alice refused: {e}\n{}", gateway.output()));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        r.json().ok().and_then(|v| v.get("result").cloned()),
        Some(json!({}))
    );
    let seen = upstream.wait_for(before + 1, Duration::from_secs(10));
    let last = seen
        .last()
        .unwrap_or_else(|| panic!("nothing reached the upstream"));
    assert_eq!(last.headers("x-forwarded-proto"), vec!["https"]);

    // The ACL condition on the identity: bob's certificate is valid but not allowed the tool.
    let r = as_bob
        .request(required, "localhost", &post("/acl", &host(required), call))
        .unwrap_or_else(|e| panic!("bob refused at the handshake: {e}"));
    let refusal = r.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refusal["error"]["code"], -32602, "{refusal}");
    // Optional listener without a certificate, and the plain listener: the condition is false.
    let r = anonymous
        .request(optional, "localhost", &post("/acl", &host(optional), call))
        .unwrap_or_else(|e| panic!("optional listener refused a client without certificate: {e}"));
    assert_eq!(r.json().unwrap_or_default()["error"]["code"], -32602);
    let r = post_mcp(plain, "/acl", &[], call).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.json().unwrap_or_default()["error"]["code"], -32602);
    assert_eq!(
        upstream.count(),
        before + 1,
        "a refused call reached the upstream"
    );
    let r = post_mcp(plain, "/plan", &[], PING).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 401, "plain client admitted by a client_cert plan");
    let seen = upstream.wait_for(before + 1, Duration::from_millis(200));
    assert!(seen
        .iter()
        .all(|r| r.headers("x-forwarded-proto") != vec!["http"]));

    // The client_cert plan: refused without a certificate, admitted with one, subject = identity.
    let r = anonymous
        .request(optional, "localhost", &post("/plan", &host(optional), PING))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 401, "{}", r.body_text());
    let r = as_alice
        .request(optional, "localhost", &post("/plan", &host(optional), PING))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{}", r.body_text());

    // The exchange log names the verified identity.
    let records = poll("the exchange log", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log_file).map_err(|e| e.to_string())?;
        let records: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if records
            .iter()
            .any(|r| r["api"] == "plan" && r["status"] == 200)
        {
            Ok(records)
        } else {
            Err(format!("{} records so far", records.len()))
        }
    });
    let admitted = records
        .iter()
        .find(|r| r["api"] == "plan" && r["status"] == 200)
        .unwrap_or_else(|| unreachable!());
    assert_eq!(
        admitted["client_cert"], "spiffe://mcpgate.test/alice",
        "{admitted}"
    );
    assert_eq!(
        admitted["subject"], "spiffe://mcpgate.test/alice",
        "{admitted}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["api"] == "acl" && r["client_cert"] == "bob" && r["acl"] == "deny"),
        "{records:?}"
    );
}

/// The SDK client through a plain listener to an https server-everything (`[api.tls] ca`): event
/// streams over TLS at both edges of the upstream hop. New connections resume the TLS session;
/// sequential requests reuse a pooled connection.
#[test]
fn https_upstream_sdk_resumption_and_pooling() {
    let pki = Pki::new("upstream");
    let cert = pki.server("upstream", &["localhost"]);
    let server = ServerEverything::start();
    let https = HttpsUpstream::start(&cert, server.addr(), None);
    let api = |limits: &str| {
        format!(
            "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n{limits}\n\
             [[api]]\npath = \"/mcp\"\nupstream = \"https://localhost:{}/mcp\"\n\
             [api.tls]\nca = \"{}\"\n",
            https.port(),
            path(pki.ca())
        )
    };
    let gateway = Gateway::start(&GatewaySpec::config(api("")));
    for scenario in ["tools_call", "progress", "sampling"] {
        let observed = run_client_with_env(Sdk::TypeScript, &gateway.url("/mcp"), scenario, &[]);
        check(
            scenario,
            &Observed {
                sdk: Sdk::TypeScript,
                route: Route::Through(Driver::Uring),
                value: &observed,
            },
        );
    }
    // Pooled: ten sequential requests on one worker take one upstream connection.
    let before = https.stats(pki.ca())["connections"].as_u64().unwrap_or(0);
    for _ in 0..10 {
        let r = post_mcp(gateway.addr(), "/mcp", &[], PING).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.status < 500, "{} {}", r.status, r.body_text());
    }
    // The stats request itself is a connection too.
    let after = https.stats(pki.ca())["connections"].as_u64().unwrap_or(0);
    assert!(
        after - before <= 2,
        "10 sequential requests opened {} upstream connections",
        after - before - 1
    );
    drop(gateway);
    // Without pooling every request opens a connection, and resumes the first one's session.
    let gateway = Gateway::start(&GatewaySpec::config(api(
        "\n[gateway.limits]\nupstream_pool_idle = 0\n",
    )));
    let before = https.stats(pki.ca());
    for _ in 0..6 {
        let r = post_mcp(gateway.addr(), "/mcp", &[], PING).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.status < 500, "{} {}", r.status, r.body_text());
    }
    let after = https.stats(pki.ca());
    let count = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let connections = count(&after, "connections") - count(&before, "connections") - 1;
    let resumed = count(&after, "resumed") - count(&before, "resumed");
    assert!(connections >= 6, "{before} -> {after}");
    // Node (OpenSSL) issues two single-use TLS 1.3 tickets after a full handshake and none after
    // a resumed one: full, resumed, resumed, full, ... So at least two in three after the first.
    assert!(
        resumed * 3 >= (connections - 1) * 2,
        "only {resumed} of {connections} upstream connections resumed a session: {before} -> {after}"
    );
}

/// Mode A with an https upstream behind a TLS listener: the upstream's challenge points at the
/// gateway's own `https://` well-known URL (the default public URL of a TLS listener), and its
/// protected-resource metadata, fetched over the upstream's TLS settings, names the gateway.
#[test]
fn mode_a_relay_over_an_https_upstream() {
    let pki = Pki::new("mode-a");
    let upstream_cert = pki.server("upstream", &["localhost"]);
    let gateway_cert = pki.server("gateway", &["localhost"]);
    let secured = SecuredUpstream::start("https://as.example");
    let https = HttpsUpstream::start(&upstream_cert, secured.addr(), None);
    let gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [gateway.tls]\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [[api]]\npath = \"/files\"\nupstream = \"https://localhost:{}/mcp\"\n\
         [api.tls]\nca = \"{}\"\n",
        path(&gateway_cert.cert),
        path(&gateway_cert.key),
        https.port(),
        path(pki.ca())
    )));
    let gw = gateway.addr();
    let client = HttpsClient::new(pki.ca(), None);
    let host = format!("localhost:{}", gw.port());
    let r = client
        .request(gw, "localhost", &post("/files", &host, PING))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 401, "{:?} {}", r.headers, r.body_text());
    let challenge = r.header("www-authenticate").unwrap_or_default().to_owned();
    assert_eq!(
        challenge_param(&challenge, "resource_metadata"),
        Some(format!(
            "https://{gw}/.well-known/oauth-protected-resource/files"
        )),
        "{challenge}"
    );
    let prm_request = build_request(
        "GET",
        "/.well-known/oauth-protected-resource/files",
        &host,
        &[],
        b"",
    );
    let r = client
        .request(gw, "localhost", &prm_request)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{}\n{}", r.body_text(), gateway.output());
    let prm = r.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        prm["resource"],
        json!(format!("https://{gw}/files")),
        "{prm}"
    );
    assert_eq!(prm["authorization_servers"], json!(["https://as.example"]));
    let bearer = format!("Bearer {}", SecuredUpstream::TOKEN);
    let with_token = build_request(
        "POST",
        "/files",
        &host,
        &[
            ("Content-Type", "application/json"),
            ("Accept", MCP_ACCEPT),
            ("Authorization", &bearer),
        ],
        PING.as_bytes(),
    );
    let r = client
        .request(gw, "localhost", &with_token)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{}", r.body_text());
}

/// Wrong host, expired, unknown CA: each a 502 with a JSON-RPC error and a log line that say
/// why. `insecure_skip_verify` gets through (and says so loudly); `--upstream-ca` trusts a CA
/// for the command line's upstream.
#[test]
fn upstream_tls_failures_are_clear_502s() {
    let pki = Pki::new("bad-upstreams");
    let stranger = Pki::new("bad-upstreams-stranger");
    let target = CapturingUpstream::start(CANNED);
    let wrong_host = HttpsUpstream::start(
        &pki.server("wrong-host", &["other.test"]),
        target.addr(),
        None,
    );
    let expired = HttpsUpstream::start(
        &pki.expired_server("expired", &["localhost"]),
        target.addr(),
        None,
    );
    let unknown = HttpsUpstream::start(
        &stranger.server("unknown-ca", &["localhost"]),
        target.addr(),
        None,
    );
    let mut config =
        "[gateway]\nlisten = \"{listen}\"\nadmin = \"{admin}\"\nworkers = 1\n".to_string();
    for (name, port, extra) in [
        ("wrong-host", wrong_host.port(), ""),
        ("expired", expired.port(), ""),
        ("unknown-ca", unknown.port(), ""),
        ("insecure", unknown.port(), "insecure_skip_verify = true\n"),
    ] {
        config.push_str(&format!(
            "\n[[api]]\nname = \"{name}\"\npath = \"/{name}\"\n\
             upstream = \"https://localhost:{port}/mcp\"\n[api.tls]\nca = \"{}\"\n{extra}",
            path(pki.ca())
        ));
    }
    let gateway = Gateway::start(&GatewaySpec::config(config));
    for (name, reason) in [
        (
            "wrong-host",
            "certificate not valid for the upstream's host name",
        ),
        ("expired", "certificate expired"),
        ("unknown-ca", "certificate not trusted"),
    ] {
        let r = post_mcp(gateway.addr(), &format!("/{name}"), &[], PING)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 502, "{name}: {}", r.body_text());
        let body = r.json().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["error"]["code"], -32603, "{body}");
        assert_eq!(body["id"], 1, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("upstream TLS handshake failed: ") && message.contains(reason),
            "{name}: {message}"
        );
        let line = format!("api {name}: POST 502: upstream TLS handshake failed: {reason}");
        poll("the log line", Duration::from_secs(5), || {
            let out = gateway.output();
            out.contains(&line).then_some(()).ok_or(out)
        });
    }
    assert!(
        gateway.output().contains("insecure_skip_verify = true"),
        "no warning for insecure_skip_verify:\n{}",
        gateway.output()
    );
    let before = target.count();
    let r = post_mcp(gateway.addr(), "/insecure", &[], PING).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        target.wait_for(before + 1, Duration::from_secs(5)).len(),
        before + 1
    );
    drop(gateway);

    // The command line: --upstream https://... --upstream-ca FILE.
    let good = HttpsUpstream::start(&pki.server("good", &["localhost"]), target.addr(), None);
    let gateway = Gateway::start(
        &GatewaySpec::cli(format!("https://localhost:{}/mcp", good.port()), "/mcp")
            .args(["--upstream-ca", &path(pki.ca())]),
    );
    let r = post_mcp(gateway.addr(), "/mcp", &[], PING).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    let gateway = Gateway::start(&GatewaySpec::cli(
        format!("https://localhost:{}/mcp", good.port()),
        "/mcp",
    ));
    let r = post_mcp(gateway.addr(), "/mcp", &[], PING).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.status, 502,
        "the test CA is trusted without --upstream-ca"
    );
}

/// A client that connects and says nothing (or half a ClientHello) is cut by the handshake
/// timeout, and holds nobody else up meanwhile.
#[test]
fn handshake_timeout_cuts_silent_clients_without_stalling_others() {
    use std::io::{Read, Write};
    let pki = Pki::new("slowloris");
    let cert = pki.server("gateway", &["localhost"]);
    let upstream = CapturingUpstream::start(CANNED);
    let gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
         [gateway.tls]\ncert = \"{}\"\nkey = \"{}\"\nhandshake_timeout = \"700ms\"\n\n\
         [[api]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n",
        path(&cert.cert),
        path(&cert.key),
        upstream.addr()
    )));
    let addr = gateway.addr();
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
    let mut partial = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap_or_else(|e| panic!("{e}"));
    // Served meanwhile, on the same (single) worker.
    let client = HttpsClient::new(pki.ca(), None);
    let r = client
        .request(
            addr,
            "localhost",
            &post("/mcp", &format!("localhost:{}", addr.port()), PING),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_millis(700));
    for (name, stream) in [("silent", &mut silent), ("partial", &mut partial)] {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut byte = [0u8; 1];
        let n = stream.read(&mut byte);
        assert!(
            matches!(n, Ok(0)) || n.is_err(),
            "{name}: got {n:?} instead of a close"
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(650) && elapsed < Duration::from_secs(8),
            "{name}: closed after {elapsed:?}"
        );
        if let Err(e) = &n {
            assert!(
                e.kind() != std::io::ErrorKind::WouldBlock,
                "{name}: not closed: {e}"
            );
        }
    }
}

/// Certificates rotated under load: the files replaced on disk (key first, so the watcher also
/// meets a mismatched pair and keeps the old certificate), then by SIGHUP, then a bad file. New
/// connections get the new certificate, open ones carry on, and no request fails.
#[test]
fn certificate_rotation_under_load_fails_no_request() {
    let pki = Pki::new("rotation");
    let first = pki.server("first", &["localhost"]);
    let live = Issued {
        cert: pki.dir().join("live.pem"),
        key: pki.dir().join("live.key"),
        der: first.der.clone(),
    };
    let install = |issued: &Issued| {
        write(
            &live.key,
            &std::fs::read_to_string(&issued.key).unwrap_or_default(),
        );
        write(
            &live.cert,
            &std::fs::read_to_string(&issued.cert).unwrap_or_default(),
        );
    };
    install(&first);
    let upstream = CapturingUpstream::start(CANNED);
    let mut gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [gateway.tls]\ncert = \"{}\"\nkey = \"{}\"\nwatch = \"100ms\"\n\n\
         [[api]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n",
        path(&live.cert),
        path(&live.key),
        upstream.addr()
    )));
    let addr = gateway.addr();
    let host = format!("localhost:{}", addr.port());
    let client = HttpsClient::new(pki.ca(), None);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    // Two clients, each opening connections in turn and sending a few requests on each: enough
    // to have handshakes and keep-alive requests in flight at every rotation, light enough (2
    // vCPUs, debug build) not to starve the other tests of this binary running beside it.
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (client, stop, done, failures, host) = (
                client.clone(),
                stop.clone(),
                done.clone(),
                failures.clone(),
                host.clone(),
            );
            std::thread::spawn(move || {
                let request = keep_alive_post("/mcp", &host, PING);
                // Bounded: at most this many connections per thread, whatever happens.
                for _ in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut conn = match client.connect(addr, "localhost") {
                        Ok(conn) => conn,
                        Err(e) => {
                            failures.lock().map(|mut f| f.push(e)).ok();
                            continue;
                        }
                    };
                    for _ in 0..5 {
                        std::thread::sleep(Duration::from_millis(2));
                        match conn.request(&request) {
                            Ok(r) if r.status == 200 => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                failures
                                    .lock()
                                    .map(|mut f| f.push(format!("status {}", r.status)))
                                    .ok();
                            }
                            Err(e) => {
                                failures.lock().map(|mut f| f.push(e)).ok();
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    // A fresh client each time: a resumed session shows the certificate it was made with.
    let served_cert = || -> Result<Vec<u8>, String> {
        HttpsClient::new(pki.ca(), None)
            .connect(addr, "localhost")?
            .server_cert()
            .ok_or_else(|| "no certificate".to_string())
    };
    let wait_for_load = |n: usize| {
        let target = done.load(Ordering::Relaxed) + n;
        poll("requests under load", Duration::from_secs(30), || {
            let now = done.load(Ordering::Relaxed);
            (now >= target)
                .then_some(())
                .ok_or(format!("{now} < {target}"))
        });
    };
    wait_for_load(50);
    assert_eq!(served_cert().ok(), Some(first.der.clone()));

    // 1. Rotated on disk: picked up by the watcher.
    let second = pki.server("second", &["localhost"]);
    install(&second);
    poll("the rotated certificate", Duration::from_secs(10), || {
        (served_cert()? == second.der)
            .then_some(())
            .ok_or_else(|| "still the old certificate".to_string())
    });
    wait_for_load(50);

    // 2. Rotated and signalled: SIGHUP reloads it.
    let third = pki.server("third", &["localhost"]);
    install(&third);
    gateway.process().signal(libc::SIGHUP);
    poll(
        "the certificate after SIGHUP",
        Duration::from_secs(10),
        || {
            (served_cert()? == third.der)
                .then_some(())
                .ok_or_else(|| "still the old certificate".to_string())
        },
    );
    wait_for_load(50);

    // 3. A bad file: the current certificate stays, and the log says why.
    write(
        &live.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    poll("the refusal in the log", Duration::from_secs(10), || {
        let out = gateway.output();
        out.contains("cannot be used, keeping the current certificate")
            .then_some(())
            .ok_or(out)
    });
    gateway.process().signal(libc::SIGHUP);
    poll(
        "the refused reload in the log",
        Duration::from_secs(10),
        || {
            let out = gateway.output();
            out.contains("reload failed, keeping the running configuration: ")
                .then_some(())
                .ok_or(out)
        },
    );
    assert_eq!(served_cert().ok(), Some(third.der.clone()));
    wait_for_load(50);

    stop.store(true, Ordering::Relaxed);
    for thread in load {
        let _ = thread.join();
    }
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    assert!(
        failures.is_empty(),
        "{} failed requests during rotation (of {} served): {:?}\n{}",
        failures.len(),
        done.load(Ordering::Relaxed),
        failures.iter().take(5).collect::<Vec<_>>(),
        gateway.output()
    );
}

/// Every way the gateway ends a TLS connection sends close_notify first, so a client can tell a
/// deliberate close from a truncation: after `Connection: close`, after an error answer (400 on
/// a head without `Host`), and when a keep-alive connection stays idle past `keepalive_idle`.
#[test]
fn tls_connections_end_with_close_notify() {
    let pki = Pki::new("close-notify");
    let cert = pki.server("gateway", &["localhost"]);
    let upstream = CapturingUpstream::start(CANNED);
    let gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
         [gateway.timeouts]\nkeepalive_idle = \"300ms\"\n\n\
         [gateway.tls]\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [[api]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n",
        path(&cert.cert),
        path(&cert.key),
        upstream.addr()
    )));
    let addr = gateway.addr();
    let host = format!("localhost:{}", addr.port());
    let client = HttpsClient::new(pki.ca(), None);
    let cases: [(&str, Vec<u8>, u16); 3] = [
        ("Connection: close", post("/mcp", &host, PING), 200),
        (
            "an error answer",
            b"POST /mcp HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(),
            400,
        ),
        ("keep-alive idle", keep_alive_post("/mcp", &host, PING), 200),
    ];
    for (case, request, status) in cases {
        let mut conn = client
            .connect(addr, "localhost")
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let r = conn
            .request(&request)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(r.status, status, "{case}");
        let extra = conn
            .read_to_close_notify()
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(extra, 0, "{case}: bytes after the answer");
    }
}
