//! Who may use the admin listener. Every route but the probes (`/healthz`, `/readyz`, which
//! orchestrators call without credentials) needs the admin token configured in
//! `[gateway.admin_auth]` (see `crate::config::AdminAuth`):
//!
//! - programs send `Authorization: Bearer <token>`; a separate scrape token, when configured,
//!   opens `/metrics` and nothing else;
//! - a person in a browser is sent to `/login`, a page that posts the token once (as a bearer
//!   header, from script) and gets a session cookie back: `HttpOnly` (script cannot read it),
//!   `SameSite=Strict` (no other site can make the browser send it), valid 12 hours, an HMAC of
//!   its issue time under the token's digest (so rotating the token ends every session). Over
//!   https (a TLS terminator that sets `X-Forwarded-Proto: https`) it is `__Host-mcpgate-admin`
//!   with `Secure`; on the plain-http listener itself it is `mcpgate-admin` without `Secure`,
//!   because browsers refuse `Secure` (hence every `__Host-`) cookies set over plain http on a
//!   non-localhost name, which would make the console unusable there.
//!
//! State-changing requests (anything but GET and HEAD) that ride on the session cookie must also
//! come from the console's own origin (`Origin`, when the browser sends it, names this host) and
//! carry `X-CSRF-Token`, an HMAC of the session's issue time that `GET /api/session` hands to
//! the console's script: `SameSite=Strict` already keeps other sites' requests cookie-less, the
//! token also stops a same-site page (another port of this host) from riding on the session.
//! Bearer requests need neither: no browser attaches that header on its own.
//!
//! Pure: the listener passes method, target and a header lookup, and writes back the bytes of
//! [`gate`]'s answer when there is one. Tokens are compared as SHA-256 digests with
//! `subtle`'s constant-time equality, so neither timing nor length tells a guess apart.

use std::time::{SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;

use crate::config::AdminAuth;

/// The session cookie on the plain-http listener.
pub const COOKIE: &str = "mcpgate-admin";
/// The session cookie when the browser reached the listener over https.
pub const SECURE_COOKIE: &str = "__Host-mcpgate-admin";
/// How long a console session lasts.
pub const SESSION_SECS: u64 = 12 * 3600;

const LOGIN_HTML: &str = include_str!("observe/console/login.html");
const REALM: &str = "Bearer realm=\"mcpgate admin\"";

/// Answers the request when authentication decides it (a refusal, the login page, a login);
/// `None`: let the admin routes answer. `header` looks a request header up by name.
pub fn gate<'h>(
    method: &str,
    target: &str,
    header: &dyn Fn(&str) -> Option<&'h [u8]>,
    auth: &AdminAuth,
) -> Option<Vec<u8>> {
    gate_at(method, target, header, auth, now_unix())
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// [`gate`] at a given time (tests).
pub fn gate_at<'h>(
    method: &str,
    target: &str,
    header: &dyn Fn(&str) -> Option<&'h [u8]>,
    auth: &AdminAuth,
    now: u64,
) -> Option<Vec<u8>> {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path == "/healthz" || path == "/readyz" {
        return None;
    }
    let Some(token) = &auth.token else {
        // Open listener: the login pages have nothing to do.
        return match path {
            "/login" | "/logout" => Some(redirect("./", &[])),
            _ => None,
        };
    };
    let https =
        header("x-forwarded-proto").is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"https"));
    match (path, method) {
        ("/login", "GET" | "HEAD") => {
            return Some(response(
                200,
                "text/html; charset=utf-8",
                &[],
                LOGIN_HTML.as_bytes(),
            ))
        }
        ("/login", "POST") => {
            return Some(match bearer(header) {
                Some(presented) if same(&digest(presented), token.digest()) => {
                    let cookie = session_cookie(token.digest(), now, https);
                    response(204, "text/plain", &[("set-cookie", cookie)], b"")
                }
                _ => unauthorized("wrong token"),
            })
        }
        ("/login", _) => return Some(json_error(405, "GET or POST /login")),
        ("/logout", _) => {
            let clear = [
                (
                    "set-cookie",
                    format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
                ),
                (
                    "set-cookie",
                    format!(
                        "{SECURE_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
                    ),
                ),
            ];
            return Some(redirect("login", &clear));
        }
        _ => {}
    }
    if let Some(presented) = bearer(header) {
        let presented = digest(presented);
        if same(&presented, token.digest()) {
            return None;
        }
        if let Some(metrics) = &auth.metrics_token {
            if same(&presented, metrics.digest()) {
                return if path == "/metrics" {
                    None
                } else {
                    Some(json_error(403, "this token opens /metrics only"))
                };
            }
        }
        return Some(unauthorized("wrong token"));
    }
    if let Some(issued) = header("cookie").and_then(|c| session_issued(c, token.digest(), now)) {
        if matches!(method, "GET" | "HEAD") {
            return None;
        }
        if !same_origin(header) {
            return Some(json_error(
                403,
                "cross-origin request refused (the console calls its own origin)",
            ));
        }
        let expected = csrf_for(token.digest(), issued);
        return match header("x-csrf-token") {
            Some(sent) if bool::from(sent.trim_ascii().ct_eq(expected.as_bytes())) => None,
            _ => Some(json_error(
                403,
                "missing or wrong X-CSRF-Token (GET /api/session gives the console its token)",
            )),
        };
    }
    // A person opening the console is sent to the login page; programs get a 401.
    if matches!(path, "/" | "/index.html" | "/manage" | "/manage.html")
        && matches!(method, "GET" | "HEAD")
    {
        return Some(redirect("login", &[]));
    }
    Some(unauthorized(
        "the admin listener needs `Authorization: Bearer <token>` (or log in at /login)",
    ))
}

/// How a request the gate let through proved itself: what the management API writes in its
/// audit log as "who", and how the console gets its CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// No token is configured (loopback, or `allow_unauthenticated_admin`).
    Open,
    /// `Authorization: Bearer` with the admin token.
    Bearer,
    /// The console's session cookie, issued at this unix time.
    Session { issued: u64 },
}

impl Credential {
    /// The credential of a request [`gate`] admitted (`None`: it did not carry the admin token).
    pub fn of<'h>(header: &dyn Fn(&str) -> Option<&'h [u8]>, auth: &AdminAuth) -> Option<Self> {
        Self::of_at(header, auth, now_unix())
    }

    /// [`Credential::of`] at a given time (tests).
    pub fn of_at<'h>(
        header: &dyn Fn(&str) -> Option<&'h [u8]>,
        auth: &AdminAuth,
        now: u64,
    ) -> Option<Self> {
        let Some(token) = &auth.token else {
            return Some(Credential::Open);
        };
        if let Some(presented) = bearer(header) {
            return same(&digest(presented), token.digest()).then_some(Credential::Bearer);
        }
        header("cookie")
            .and_then(|c| session_issued(c, token.digest(), now))
            .map(|issued| Credential::Session { issued })
    }

    /// The CSRF token the console sends back with state-changing calls (sessions only).
    pub fn csrf(&self, auth: &AdminAuth) -> Option<String> {
        match (self, &auth.token) {
            (Credential::Session { issued }, Some(token)) => {
                Some(csrf_for(token.digest(), *issued))
            }
            _ => None,
        }
    }

    /// "who" for the audit log: how, and which token (its origin and a fingerprint that
    /// identifies it without revealing it).
    pub fn identity(&self, auth: &AdminAuth) -> String {
        let token = match &auth.token {
            Some(t) => {
                let fp = digest(t.digest());
                let hex: String = fp.iter().take(4).map(|b| format!("{b:02x}")).collect();
                format!("admin token from {} (sha256:{hex}…)", t.origin())
            }
            None => "no token (open admin listener)".to_string(),
        };
        match self {
            Credential::Open => token,
            Credential::Bearer => format!("bearer: {token}"),
            Credential::Session { issued } => format!("console session of {issued}: {token}"),
        }
    }
}

fn csrf_for(key: &[u8; 32], issued: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, format!("mcpgate-admin-csrf:{issued}").as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `Origin` (when sent) names the host the request was sent to; `Sec-Fetch-Site` (when sent)
/// says same-origin. Browsers send at least one of them on every state-changing fetch.
fn same_origin<'h>(header: &dyn Fn(&str) -> Option<&'h [u8]>) -> bool {
    if let Some(site) = header("sec-fetch-site") {
        let site = site.trim_ascii();
        if !site.eq_ignore_ascii_case(b"same-origin") && !site.eq_ignore_ascii_case(b"none") {
            return false;
        }
    }
    let Some(origin) = header("origin") else {
        return true;
    };
    let Some(host) = header("host") else {
        return false;
    };
    let origin = origin.trim_ascii();
    let after_scheme = origin
        .strip_prefix(b"http://")
        .or_else(|| origin.strip_prefix(b"https://"));
    after_scheme.is_some_and(|o| o.eq_ignore_ascii_case(host.trim_ascii()))
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer<'h>(header: &dyn Fn(&str) -> Option<&'h [u8]>) -> Option<&'h [u8]> {
    let value = header("authorization")?.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.strip_prefix(b" ")?.trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn mac(key: &[u8; 32], issued: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, format!("mcpgate-admin-session:{issued}").as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn session_cookie(key: &[u8; 32], now: u64, https: bool) -> String {
    let value = format!("{now}.{}", mac(key, now));
    if https {
        format!(
            "{SECURE_COOKIE}={value}; Path=/; Max-Age={SESSION_SECS}; Secure; HttpOnly; SameSite=Strict"
        )
    } else {
        format!("{COOKIE}={value}; Path=/; Max-Age={SESSION_SECS}; HttpOnly; SameSite=Strict")
    }
}

/// The issue time of the session a `Cookie` header carries, when it was issued under `key` and
/// has not expired.
fn session_issued(header: &[u8], key: &[u8; 32], now: u64) -> Option<u64> {
    let text = std::str::from_utf8(header).ok()?;
    text.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if name != COOKIE && name != SECURE_COOKIE {
            return None;
        }
        let (issued, tag) = value.split_once('.')?;
        let issued = issued.parse::<u64>().ok()?;
        // A little clock slack for a cookie minted by a replica whose clock runs ahead.
        let fresh = issued <= now.saturating_add(60) && now.saturating_sub(issued) < SESSION_SECS;
        (fresh && bool::from(tag.as_bytes().ct_eq(mac(key, issued).as_bytes()))).then_some(issued)
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        303 => "See Other",
        401 => "Unauthorized",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        _ => "",
    }
}

fn response(status: u16, content_type: &str, extra: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in extra {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn json_error(status: u16, message: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": message }).to_string();
    response(status, "application/json", &[], body.as_bytes())
}

fn unauthorized(message: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": message }).to_string();
    response(
        401,
        "application/json",
        &[("www-authenticate", REALM.to_string())],
        body.as_bytes(),
    )
}

fn redirect(location: &str, extra: &[(&str, String)]) -> Vec<u8> {
    let mut headers = vec![("location", location.to_string())];
    headers.extend(extra.iter().cloned());
    response(303, "text/plain", &headers, b"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdminToken;

    const TOKEN: &str = "admin-token-0123456789abcdef";
    const SCRAPE: &str = "scrape-token-0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn auth() -> AdminAuth {
        AdminAuth {
            token: AdminToken::new(TOKEN, "test").ok(),
            metrics_token: AdminToken::new(SCRAPE, "test").ok(),
            allow_unauthenticated: false,
        }
    }

    fn ask(
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        auth: &AdminAuth,
        now: u64,
    ) -> Option<String> {
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        };
        gate_at(method, target, &lookup, auth, now)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    fn status(answer: &Option<String>) -> u16 {
        answer
            .as_deref()
            .and_then(|a| a.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn probes_stay_open_and_everything_else_needs_the_token() {
        let a = auth();
        assert_eq!(ask("GET", "/healthz", &[], &a, NOW), None);
        assert_eq!(ask("GET", "/readyz?x", &[], &a, NOW), None);
        for path in [
            "/metrics",
            "/api/logs?limit=1",
            "/api/summary",
            "/console.js",
            "/api/logs/0.1",
        ] {
            let answer = ask("GET", path, &[], &a, NOW);
            assert_eq!(status(&answer), 401, "{path}");
            assert!(answer
                .unwrap_or_default()
                .contains("www-authenticate: Bearer"));
        }
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(
            ask(
                "GET",
                "/api/summary",
                &[("Authorization", &bearer)],
                &a,
                NOW
            ),
            None
        );
        let lower = format!("bearer  {TOKEN} ");
        assert_eq!(
            ask("GET", "/metrics", &[("authorization", &lower)], &a, NOW),
            None
        );
        let wrong = format!("Bearer {TOKEN}x");
        assert_eq!(
            status(&ask(
                "GET",
                "/metrics",
                &[("Authorization", &wrong)],
                &a,
                NOW
            )),
            401
        );
        let basic = format!("Basic {TOKEN}");
        assert_eq!(
            status(&ask(
                "GET",
                "/metrics",
                &[("Authorization", &basic)],
                &a,
                NOW
            )),
            401
        );
        // The browser is sent to the login page.
        let answer = ask("GET", "/", &[], &a, NOW);
        assert_eq!(status(&answer), 303);
        assert!(answer.unwrap_or_default().contains("location: login"));
    }

    #[test]
    fn the_scrape_token_opens_metrics_only() {
        let a = auth();
        let scrape = format!("Bearer {SCRAPE}");
        assert_eq!(
            ask("GET", "/metrics", &[("Authorization", &scrape)], &a, NOW),
            None
        );
        assert_eq!(
            status(&ask(
                "GET",
                "/api/logs",
                &[("Authorization", &scrape)],
                &a,
                NOW
            )),
            403
        );
        assert_eq!(
            status(&ask(
                "POST",
                "/login",
                &[("Authorization", &scrape)],
                &a,
                NOW
            )),
            401
        );
    }

    #[test]
    fn login_sets_a_cookie_that_opens_the_console_until_it_expires() {
        let a = auth();
        assert_eq!(status(&ask("GET", "/login", &[], &a, NOW)), 200);
        assert_eq!(status(&ask("POST", "/login", &[], &a, NOW)), 401);
        let bearer = format!("Bearer {TOKEN}");
        let answer =
            ask("POST", "/login", &[("Authorization", &bearer)], &a, NOW).unwrap_or_default();
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
        let set = answer
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .unwrap_or_default()
            .to_string();
        assert!(
            set.starts_with("mcpgate-admin=")
                && set.contains("HttpOnly")
                && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(
            !set.contains("Secure"),
            "plain http: no Secure, no __Host- ({set})"
        );
        let pair = set.split(';').next().unwrap_or_default().to_string();
        let cookie = format!("theme=dark; {pair}");
        assert_eq!(
            ask("GET", "/api/summary", &[("Cookie", &cookie)], &a, NOW + 10),
            None
        );
        assert_eq!(ask("GET", "/", &[("Cookie", &cookie)], &a, NOW + 10), None);
        // Expired, forged, or minted under another token: refused.
        assert_eq!(
            status(&ask(
                "GET",
                "/api/summary",
                &[("Cookie", &cookie)],
                &a,
                NOW + SESSION_SECS
            )),
            401
        );
        let forged = pair.replace(&NOW.to_string(), &(NOW + 100).to_string());
        assert_eq!(
            status(&ask(
                "GET",
                "/api/summary",
                &[("Cookie", &forged)],
                &a,
                NOW + 200
            )),
            401
        );
        let rotated = AdminAuth {
            token: AdminToken::new("rotated-token-0123456789abc", "test").ok(),
            ..auth()
        };
        assert_eq!(
            status(&ask(
                "GET",
                "/api/summary",
                &[("Cookie", &cookie)],
                &rotated,
                NOW + 10
            )),
            401
        );
        // Behind a TLS terminator the cookie is __Host- and Secure.
        let answer = ask(
            "POST",
            "/login",
            &[("Authorization", &bearer), ("X-Forwarded-Proto", "https")],
            &a,
            NOW,
        )
        .unwrap_or_default();
        assert!(
            answer.contains("set-cookie: __Host-mcpgate-admin=") && answer.contains("; Secure;"),
            "{answer}"
        );
        let logout = ask("GET", "/logout", &[], &a, NOW).unwrap_or_default();
        assert!(
            logout.contains("mcpgate-admin=; Path=/; Max-Age=0"),
            "{logout}"
        );
    }

    #[test]
    fn session_writes_need_the_csrf_token_and_the_same_origin() {
        let a = auth();
        let key = a.token.as_ref().map(|t| *t.digest()).unwrap_or_default();
        let cookie = format!("{COOKIE}={NOW}.{}", mac(&key, NOW));
        let csrf = csrf_for(&key, NOW);
        let host = ("Host", "127.0.0.1:9901");
        // Reads ride on the cookie alone.
        assert_eq!(
            ask("GET", "/api/manage", &[("Cookie", &cookie)], &a, NOW),
            None
        );
        // Writes need the token, and no other origin.
        let no_token = ask(
            "POST",
            "/api/manage/apis",
            &[("Cookie", &cookie), host],
            &a,
            NOW,
        );
        assert_eq!(status(&no_token), 403);
        assert!(no_token.unwrap_or_default().contains("X-CSRF-Token"));
        let wrong = [("Cookie", cookie.as_str()), ("X-CSRF-Token", "00"), host];
        assert_eq!(
            status(&ask("PUT", "/api/manage/apis/x", &wrong, &a, NOW)),
            403
        );
        let good = [
            ("Cookie", cookie.as_str()),
            ("X-CSRF-Token", csrf.as_str()),
            host,
        ];
        assert_eq!(ask("DELETE", "/api/manage/apis/x", &good, &a, NOW), None);
        let same = [
            ("Cookie", cookie.as_str()),
            ("X-CSRF-Token", csrf.as_str()),
            host,
            ("Origin", "http://127.0.0.1:9901"),
            ("Sec-Fetch-Site", "same-origin"),
        ];
        assert_eq!(ask("POST", "/api/manage/apis", &same, &a, NOW), None);
        for (name, value) in [
            ("Origin", "http://evil.example"),
            ("Origin", "null"),
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Site", "same-site"),
        ] {
            let h = [
                ("Cookie", cookie.as_str()),
                ("X-CSRF-Token", csrf.as_str()),
                host,
                (name, value),
            ];
            assert_eq!(
                status(&ask("POST", "/api/manage/apis", &h, &a, NOW)),
                403,
                "{name}: {value}"
            );
        }
        // Another session's token does not fit this session.
        let other = csrf_for(&key, NOW + 1);
        let h = [
            ("Cookie", cookie.as_str()),
            ("X-CSRF-Token", other.as_str()),
            host,
        ];
        assert_eq!(status(&ask("POST", "/api/manage/apis", &h, &a, NOW)), 403);
        // Bearer callers need none of it.
        let bearer = format!("Bearer {TOKEN}");
        let h = [
            ("Authorization", bearer.as_str()),
            ("Origin", "http://evil.example"),
        ];
        assert_eq!(ask("POST", "/api/manage/apis", &h, &a, NOW), None);
        // The credential and the token the console is given.
        let lookup = |name: &str| {
            good.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        };
        let credential = Credential::of_at(&lookup, &a, NOW);
        assert!(matches!(credential, Some(Credential::Session { .. })));
        let identity = credential
            .as_ref()
            .map(|c| c.identity(&a))
            .unwrap_or_default();
        assert!(identity.starts_with("console session") && identity.contains("sha256:"));
        assert!(!identity.contains(TOKEN));
    }

    #[test]
    fn an_open_listener_is_not_gated() {
        let open = AdminAuth::default();
        assert_eq!(ask("GET", "/metrics", &[], &open, NOW), None);
        assert_eq!(ask("GET", "/", &[], &open, NOW), None);
        assert_eq!(status(&ask("GET", "/login", &[], &open, NOW)), 303);
    }
}
