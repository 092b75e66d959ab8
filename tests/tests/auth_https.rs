//! The gateway's control-plane client over TLS: an OAuth2 plan whose issuer is an `https://`
//! authorization server (here `openssl s_server -WWW` serving RFC 8414 metadata and a JWKS with a
//! certificate made for the test, trusted through `MCPGATE_CA_FILE`). A token signed with the
//! published key is accepted, one with another key refused; the same plan with the CA not trusted
//! cannot load its keys, so even a good token is refused.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mcpgate_tests::auth::{now, SigningKey};
use mcpgate_tests::http::post_mcp;
use mcpgate_tests::net::{free_port, wait_for_listener, CapturingUpstream};
use mcpgate_tests::process::ManagedChild;
use mcpgate_tests::{record_skip, Gateway, GatewaySpec};
use serde_json::json;

const CANNED: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n\
{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";
const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn jwks_discovered_and_fetched_over_https() {
    if Command::new("openssl").arg("version").output().is_err() {
        record_skip("jwks_discovered_and_fetched_over_https", "no openssl CLI");
        return;
    }
    let dir = std::env::temp_dir().join(format!("mcpgate-auth-https-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // webpki refuses a CA certificate as the server's own: self-signed but CA:FALSE.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .current_dir(&dir));
    let key = SigningKey::generate("tls-k1");
    let port = free_port();
    let issuer = format!("https://127.0.0.1:{port}");
    write(
        &dir.join(".well-known/oauth-authorization-server"),
        &json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json")}).to_string(),
    );
    write(
        &dir.join("jwks.json"),
        &json!({"keys": [key.jwk()]}).to_string(),
    );
    let mut server = Command::new("openssl");
    server
        .args([
            "s_server", "-quiet", "-WWW", "-cert", "cert.pem", "-key", "key.pem",
        ])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .current_dir(&dir);
    let mut server = ManagedChild::spawn("openssl s_server", server)
        .unwrap_or_else(|e| panic!("cannot run openssl s_server: {e}"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_listener(addr, &mut server, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));

    let upstream = CapturingUpstream::start(CANNED);
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
         [[api]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n\n\
         [[api.plan]]\ntype = \"oauth2\"\nissuer = \"{issuer}\"\n",
        upstream.addr()
    );
    // The gateway process inherits this; only this test binary sets it.
    std::env::set_var("MCPGATE_CA_FILE", dir.join("cert.pem"));
    let gateway = Gateway::start(&GatewaySpec::config(config.clone()));
    let t = now();
    let claims =
        |aud: String| json!({"iss": issuer, "aud": aud, "sub": "alice", "iat": t, "exp": t + 300});
    let resource = format!("http://{}/mcp", gateway.addr());
    let good = key.mint(&claims(resource.clone()));
    let post = |gateway: &Gateway, token: &str| {
        post_mcp(
            gateway.addr(),
            "/mcp",
            &[("Authorization", &format!("Bearer {token}"))],
            PING,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let r = post(&gateway, &good);
    assert_eq!(
        r.status,
        200,
        "{:?} {}\n{}",
        r.headers,
        r.body_text(),
        gateway.output()
    );
    let forged = SigningKey::generate("tls-k1").mint(&claims(resource));
    assert_eq!(post(&gateway, &forged).status, 401);
    drop(gateway);

    // Not trusting the test CA: the keys cannot be fetched, so nothing is accepted.
    std::env::remove_var("MCPGATE_CA_FILE");
    let gateway = Gateway::start(&GatewaySpec::config(config));
    let good = key.mint(&claims(format!("http://{}/mcp", gateway.addr())));
    let r = post(&gateway, &good);
    assert_eq!(r.status, 401, "{:?} {}", r.headers, r.body_text());
    assert_eq!(upstream.wait_for(2, Duration::from_millis(300)).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
