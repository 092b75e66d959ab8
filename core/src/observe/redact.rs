//! Redaction and capping of captured payloads: the only way to build a [`Capture`], so nothing
//! captured reaches a sink without passing through here.
//!
//! What never gets through: secret headers (`Authorization`, `Proxy-Authorization`, `Cookie`,
//! `Set-Cookie`, `Mcp-Session-Id`, API-key headers and any configured name), token-shaped JSON fields
//! (`access_token`, `refresh_token`, `id_token`, `client_secret`, `password`… at any depth), credentials
//! written as `Bearer …`/`Basic …` or JWT-shaped strings anywhere in text, and any literal secret the
//! caller knows for this exchange (its bearer token, session id, cookie values). Redaction happens
//! before capping, so a cut can never leave half a secret behind.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;

const REDACTED: &str = "[REDACTED]";

/// A base64url JSON object's first bytes (`{"`): how a bearer token starts.
static JWT_PREFIX: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"eyJ"));

/// Whether a target has what [`Redactor::target`] rewrites: userinfo or a query (`@`, `?`) or a
/// JWT (`eyJ`). This runs on every recorded exchange: a tool name is a few bytes, where a plain loop
/// beats SIMD searchers' per-call setup; a long URI gets one pass for the two bytes and a prebuilt
/// searcher for the prefix (`str::contains(&str)` would build one per call).
fn may_hold_credentials(target: &[u8]) -> bool {
    const SHORT: usize = 64;
    if target.len() <= SHORT {
        return target.iter().any(|&b| b == b'@' || b == b'?')
            || target.windows(3).any(|w| w == b"eyJ");
    }
    memchr::memchr2(b'@', b'?', target).is_some() || JWT_PREFIX.find(target).is_some()
}

/// Headers redacted whatever the configuration says.
const DEFAULT_SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "mcp-session-id",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-access-token",
    "x-amz-security-token",
    "private-token",
];

/// JSON field names (lower-cased, `_`/`-` removed) always redacted.
const DEFAULT_SECRET_FIELDS: &[&str] = &[
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "clientsecret",
    "password",
    "passwd",
    "secret",
    "apikey",
    "token",
    "authorization",
    "proxyauthorization",
    "cookie",
    "setcookie",
    "privatekey",
    "clientassertion",
    "codeverifier",
    "mcpsessionid",
    "sessionid",
];

/// Suffixes of normalized field names that are redacted too (`upstreamApiKey`, `github_token`…).
const SECRET_FIELD_SUFFIXES: &[&str] = &["token", "secret", "password", "apikey", "credential"];

/// Field names that look like secrets but are protocol plumbing worth keeping in a capture.
const NOT_SECRET_FIELDS: &[&str] = &["progresstoken", "tokentype", "nexttoken"];

/// Literal secrets shorter than this are not searched for (they would redact ordinary words).
const MIN_LITERAL_SECRET: usize = 8;

/// Bodies above this are redacted textually rather than parsed (bounded memory per capture).
const PARSE_LIMIT: usize = 256 * 1024;

/// Redacted request/response payloads of one exchange.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Capture {
    pub request_headers: Option<CapturedHeaders>,
    pub request_body: Option<CapturedBody>,
    pub response_headers: Option<CapturedHeaders>,
    pub response_body: Option<CapturedBody>,
}

/// Headers after redaction; built only by [`Redactor::headers`].
#[derive(Debug, Clone, Serialize)]
pub struct CapturedHeaders(Vec<CapturedHeader>);

#[derive(Debug, Clone, Serialize)]
struct CapturedHeader {
    name: Box<str>,
    value: Box<str>,
}

impl CapturedHeaders {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|h| (&*h.name, &*h.value))
    }
}

/// A body after redaction and capping; built only by [`Redactor::body`].
#[derive(Debug, Clone, Serialize)]
pub struct CapturedBody {
    text: Box<str>,
    original_bytes: u64,
    truncated: bool,
}

impl CapturedBody {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// The redaction rules; one per hub, shared read-only by every worker.
#[derive(Debug, Clone)]
pub struct Redactor {
    headers: HashSet<String>,
    fields: HashSet<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new(&[], &[])
    }
}

impl Redactor {
    /// The defaults plus `extra_headers` (any case) and `extra_fields` (any case, `_`/`-` ignored).
    pub fn new(extra_headers: &[String], extra_fields: &[String]) -> Self {
        let headers = DEFAULT_SECRET_HEADERS
            .iter()
            .map(|h| h.to_string())
            .chain(extra_headers.iter().map(|h| h.to_ascii_lowercase()))
            .collect();
        let fields = DEFAULT_SECRET_FIELDS
            .iter()
            .map(|f| f.to_string())
            .chain(extra_fields.iter().map(|f| normalize_field(f)))
            .collect();
        Self { headers, fields }
    }

    pub fn is_secret_header(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        self.headers.contains(&lower)
            || lower.contains("token")
            || lower.contains("secret")
            || lower.contains("api-key")
            || lower.contains("apikey")
            || lower.contains("password")
    }

    pub fn is_secret_field(&self, name: &str) -> bool {
        let n = normalize_field(name);
        if NOT_SECRET_FIELDS.contains(&n.as_str()) {
            return false;
        }
        self.fields.contains(&n) || SECRET_FIELD_SUFFIXES.iter().any(|s| n.ends_with(s))
    }

    /// Captures headers: secret ones keep their name with a redacted value, the others have any
    /// credential-shaped text and any of `secrets` removed.
    pub fn headers<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        secrets: &[&[u8]],
    ) -> CapturedHeaders {
        CapturedHeaders(
            headers
                .into_iter()
                .map(|(name, value)| {
                    let value = if self.is_secret_header(name) {
                        REDACTED.to_string()
                    } else {
                        scrub_text(&String::from_utf8_lossy(value), secrets)
                    };
                    CapturedHeader {
                        name: name.into(),
                        value: value.into(),
                    }
                })
                .collect(),
        )
    }

    /// Captures a body: token-shaped fields, credential-shaped strings and `secrets` redacted, then
    /// cut to at most `max_bytes` (on a character boundary).
    pub fn body(&self, body: &[u8], max_bytes: usize, secrets: &[&[u8]]) -> CapturedBody {
        let parsed = if body.len() <= PARSE_LIMIT {
            serde_json::from_slice::<Value>(body).ok()
        } else {
            None
        };
        let redacted = match parsed {
            Some(mut value) => {
                self.redact_value(&mut value, secrets);
                serde_json::to_string(&value).unwrap_or_default()
            }
            None => self.redact_json_text(&String::from_utf8_lossy(body), secrets),
        };
        let text = scrub_text(&redacted, secrets);
        let truncated = text.len() > max_bytes;
        let text = if truncated {
            &text[..floor_char_boundary(&text, max_bytes)]
        } else {
            &text[..]
        };
        CapturedBody {
            text: text.into(),
            original_bytes: body.len() as u64,
            truncated,
        }
    }

    fn redact_value(&self, value: &mut Value, secrets: &[&[u8]]) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if self.is_secret_field(key) && !v.is_null() {
                        *v = Value::String(REDACTED.into());
                    } else {
                        self.redact_value(v, secrets);
                    }
                }
                // A credential can be a key too (`{"<token>": …}`): rebuild only when one is.
                if map.keys().any(|k| scrub_text(k, secrets) != *k) {
                    let old = std::mem::take(map);
                    for (k, v) in old {
                        map.insert(scrub_text(&k, secrets), v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v, secrets)),
            Value::String(s) => {
                let scrubbed = scrub_text(s, secrets);
                if scrubbed != *s {
                    *s = scrubbed;
                }
            }
            _ => {}
        }
    }

    /// For bodies that are not (complete) JSON: finds `"key": value` pairs by scanning and redacts
    /// the values of secret keys, without needing the document to parse.
    fn redact_json_text(&self, text: &str, _secrets: &[&[u8]]) -> String {
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes.get(i) != Some(&b'"') {
                i += 1;
                continue;
            }
            let key_end = string_end(bytes, i);
            let after_key = skip_ws(bytes, key_end);
            if bytes.get(after_key) != Some(&b':') {
                i = key_end.max(i + 1);
                continue;
            }
            let key = text.get(i + 1..key_end.saturating_sub(1)).unwrap_or("");
            let value_start = skip_ws(bytes, after_key + 1);
            if !self.is_secret_field(&unescape_lossy(key)) {
                i = value_start;
                continue;
            }
            let value_end = match bytes.get(value_start) {
                Some(b'"') => string_end(bytes, value_start),
                Some(b'{') | Some(b'[') => value_start, // structured secret: handled by scrub
                _ => bytes
                    .iter()
                    .skip(value_start)
                    .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                    .map_or(bytes.len(), |p| value_start + p),
            };
            if value_end > value_start {
                out.push_str(&text[copied..value_start]);
                out.push('"');
                out.push_str(REDACTED);
                out.push('"');
                copied = value_end;
            }
            i = value_end.max(value_start).max(i + 1);
        }
        out.push_str(&text[copied..]);
        out
    }
}

impl Redactor {
    /// A target name fit for records and labels: resource URIs can carry credentials
    /// (`https://user:pass@host/…`, `?access_token=…`). Userinfo and the values of secret-named
    /// query parameters are replaced; anything else (including ordinary query strings) is kept.
    pub fn target<'a>(&self, target: &'a str) -> Cow<'a, str> {
        if !may_hold_credentials(target.as_bytes()) {
            return Cow::Borrowed(target);
        }
        let mut out = String::with_capacity(target.len());
        let (before_fragment, fragment) = match target.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (target, None),
        };
        let (base, query) = match before_fragment.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (before_fragment, None),
        };
        match base.split_once("://") {
            Some((scheme, rest)) => {
                let authority_end = rest.find('/').unwrap_or(rest.len());
                let (authority, path) = rest.split_at(authority_end);
                out.push_str(scheme);
                out.push_str("://");
                match authority.rsplit_once('@') {
                    Some((_, host)) => {
                        out.push_str(REDACTED);
                        out.push('@');
                        out.push_str(host);
                    }
                    None => out.push_str(authority),
                }
                out.push_str(path);
            }
            None => out.push_str(base),
        }
        if let Some(q) = query {
            out.push('?');
            for (i, pair) in q.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((k, _)) if self.is_secret_field(k) => {
                        out.push_str(k);
                        out.push('=');
                        out.push_str(REDACTED);
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        Cow::Owned(scrub_text(&out, &[]))
    }
}

fn normalize_field(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Resolves the simple `\uXXXX` escapes a client could use to dodge a key match.
fn unescape_lossy(key: &str) -> String {
    if !key.contains('\\') {
        return key.to_string();
    }
    serde_json::from_str::<String>(&format!("\"{key}\"")).unwrap_or_else(|_| key.to_string())
}

/// Index just past the closing quote of the string starting at `start` (or the end of input).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// Removes credentials from free text: the literal `secrets`, `Bearer`/`Basic`/`Token` schemes'
/// credentials, and JWT-shaped words (`eyJ…` with two dots).
pub fn scrub_text(text: &str, secrets: &[&[u8]]) -> String {
    let mut s = text.to_string();
    for secret in secrets {
        if secret.len() >= MIN_LITERAL_SECRET {
            let secret = String::from_utf8_lossy(secret);
            if s.contains(&*secret) {
                s = s.replace(&*secret, REDACTED);
            }
        }
    }
    if !needs_pattern_scrub(&s) {
        return s;
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let word_start = i == 0 || !is_token_char(bytes[i - 1]);
        if word_start {
            if let Some(scheme_len) = credential_scheme_at(bytes, i) {
                let cred_start = skip_spaces(bytes, i + scheme_len);
                let cred_end = token_end(bytes, cred_start);
                if cred_end > cred_start {
                    out.push_str(&s[copied..cred_start]);
                    out.push_str(REDACTED);
                    copied = cred_end;
                    i = cred_end;
                    continue;
                }
            }
            if bytes[i..].starts_with(b"eyJ") {
                let end = token_end(bytes, i);
                let word = &bytes[i..end];
                if word.len() >= 20 && word.iter().filter(|b| **b == b'.').count() >= 2 {
                    out.push_str(&s[copied..i]);
                    out.push_str(REDACTED);
                    copied = end;
                    i = end;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

fn needs_pattern_scrub(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.contains("bearer")
        || lower.contains("basic")
        || lower.contains("token")
        || s.contains("eyJ")
}

/// Length of `Bearer `, `Basic ` or `Token ` (any case, followed by at least one space) at `i`.
fn credential_scheme_at(bytes: &[u8], i: usize) -> Option<usize> {
    for scheme in [&b"bearer"[..], b"basic", b"token"] {
        let end = i + scheme.len();
        if bytes
            .get(i..end)
            .is_some_and(|w| w.eq_ignore_ascii_case(scheme))
            && bytes.get(end).is_some_and(|b| *b == b' ' || *b == b'\t')
        {
            return Some(scheme.len());
        }
    }
    None
}

fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|b| *b == b' ' || *b == b'\t') {
        i += 1;
    }
    i
}

fn token_end(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|b| is_token_char(*b)) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "sk-live-7f3a9c1e5b2d4f60a8e1";

    #[test]
    fn secret_headers_are_redacted_and_others_scrubbed() {
        let r = Redactor::new(&["X-Tenant-Key".into()], &[]);
        let auth = format!("Bearer {TOKEN}");
        let h = r.headers(
            [
                ("Authorization", auth.as_bytes()),
                ("Cookie", b"sid=abcdefgh12345678".as_slice()),
                ("X-Tenant-Key", b"tenant-secret-value".as_slice()),
                ("X-Forwarded-Authorization-Copy", auth.as_bytes()),
                ("Accept", b"application/json".as_slice()),
            ],
            &[],
        );
        let all: Vec<(&str, &str)> = h.iter().collect();
        assert_eq!(all[0], ("Authorization", REDACTED));
        assert_eq!(all[1], ("Cookie", REDACTED));
        assert_eq!(all[2], ("X-Tenant-Key", REDACTED));
        assert_eq!(all[3].1, "Bearer [REDACTED]");
        assert_eq!(all[4], ("Accept", "application/json"));
    }

    #[test]
    fn token_fields_are_redacted_at_any_depth() {
        let r = Redactor::default();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{{"content":[{{"type":"text","text":"ok"}}],
            "auth":{{"access_token":"{TOKEN}","Refresh-Token":"r-{TOKEN}","clientSecret":"cs",
            "progressToken":7}}}}}}"#
        );
        let c = r.body(body.as_bytes(), 10_000, &[]);
        assert!(!c.text().contains(TOKEN), "{}", c.text());
        assert!(!c.text().contains("\"cs\""), "{}", c.text());
        assert!(c.text().contains("\"progressToken\":7"), "{}", c.text());
        assert!(c.text().contains("\"text\":\"ok\""));
    }

    #[test]
    fn broken_json_is_redacted_textually() {
        let r = Redactor::default();
        let body = format!(r#"{{"password" : "{TOKEN}", "id_\u0074oken": "{TOKEN}x", "n": 1, "#);
        let c = r.body(body.as_bytes(), 10_000, &[]);
        assert!(!c.text().contains(TOKEN), "{}", c.text());
        assert!(c.text().contains("\"n\": 1"));
    }

    #[test]
    fn bearer_and_jwt_in_text_and_literal_secrets_are_removed() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlc2ln";
        let text = format!("call with bearer {TOKEN} or {jwt}; raw session sess-0123456789abcdef");
        let out = scrub_text(&text, &[b"sess-0123456789abcdef"]);
        assert!(
            !out.contains(TOKEN) && !out.contains(jwt) && !out.contains("sess-0123"),
            "{out}"
        );
        assert!(
            out.starts_with("call with bearer [REDACTED] or [REDACTED];"),
            "{out}"
        );
    }

    #[test]
    fn credentials_in_target_uris_are_redacted() {
        let r = Redactor::default();
        assert!(matches!(
            r.target("get_weather"),
            Cow::Borrowed("get_weather")
        ));
        assert!(matches!(r.target("file:///a/b.txt"), Cow::Borrowed(_)));
        assert_eq!(
            r.target(&format!(
                "https://bob:{TOKEN}@api.example/x?id=4&access_token={TOKEN}#top"
            )),
            "https://[REDACTED]@api.example/x?id=4&access_token=[REDACTED]#top"
        );
        assert_eq!(r.target("db://customers?id=42"), "db://customers?id=42");
    }

    #[test]
    fn short_and_long_targets_are_checked_alike() {
        for pad in [0, 10, 61, 62, 63, 64, 65, 200] {
            let filler = "x".repeat(pad);
            for (mark, found) in [
                ("@", true),
                ("?", true),
                ("eyJ", true),
                ("ey", false),
                ("", false),
            ] {
                for t in [format!("{mark}{filler}"), format!("{filler}{mark}")] {
                    assert_eq!(may_hold_credentials(t.as_bytes()), found, "{t:?}");
                }
            }
        }
    }

    #[test]
    fn a_secret_used_as_a_key_is_redacted() {
        let r = Redactor::default();
        let body = format!(r#"{{"sessions":{{"{TOKEN}":{{"n":1}}}}}}"#);
        let c = r.body(body.as_bytes(), 10_000, &[TOKEN.as_bytes()]);
        assert!(!c.text().contains(TOKEN), "{}", c.text());
        assert!(
            c.text().contains(r#"{"[REDACTED]":{"n":1}}"#),
            "{}",
            c.text()
        );
    }

    #[test]
    fn capping_happens_after_redaction_on_a_char_boundary() {
        let r = Redactor::default();
        let body = format!(r#"{{"note":"ééééé","token":"{TOKEN}"}}"#);
        let c = r.body(body.as_bytes(), 12, &[]);
        assert!(c.truncated());
        assert!(c.text().len() <= 12);
        assert!(!c.text().contains("sk-"));
    }
}
