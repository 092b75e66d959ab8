//! `WWW-Authenticate`: building the Bearer challenges the gateway sends (RFC 6750 §3 with the
//! RFC 9728 `resource_metadata` parameter), and, for Mode A, parsing an upstream's header
//! (RFC 9110 §11.6.1: several challenges, token68, quoted values with escapes) to point its
//! `resource_metadata` at the gateway while keeping everything else.

use super::error::ChallengeError;

/// A Bearer challenge to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge<'a> {
    pub resource_metadata: Option<&'a str>,
    /// Space-separated scopes; omitted when empty.
    pub scope: Option<&'a str>,
    pub error: Option<ChallengeError>,
}

impl BearerChallenge<'_> {
    /// `Bearer resource_metadata="…", scope="…", error="…"` (error omitted for a missing token).
    pub fn to_header_value(&self) -> String {
        let mut out = String::from("Bearer");
        let mut first = true;
        let mut param = |name: &str, value: &str| {
            out.push_str(if first { " " } else { ", " });
            first = false;
            out.push_str(name);
            out.push('=');
            push_quoted(&mut out, value);
        };
        if let Some(error) = self.error.and_then(ChallengeError::as_str) {
            param("error", error);
        }
        if let Some(scope) = self.scope.filter(|s| !s.is_empty()) {
            param("scope", scope);
        }
        if let Some(url) = self.resource_metadata {
            param("resource_metadata", url);
        }
        out
    }
}

fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeParseError {
    #[error("malformed WWW-Authenticate at byte {0}")]
    Malformed(usize),
}

/// One parsed challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub token68: Option<String>,
    /// Parameters in order; names as sent (compare case-insensitively), values unescaped.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_bearer(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("bearer")
    }

    fn write(&self, out: &mut String) {
        out.push_str(&self.scheme);
        if let Some(token68) = &self.token68 {
            out.push(' ');
            out.push_str(token68);
            return;
        }
        for (i, (name, value)) in self.params.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            out.push_str(name);
            out.push('=');
            push_quoted(out, value);
        }
    }
}

/// Serialises challenges into one header value (parameters always quoted).
pub fn format_challenges(challenges: &[Challenge]) -> String {
    let mut out = String::new();
    for (i, challenge) in challenges.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        challenge.write(&mut out);
    }
    out
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        // Only ASCII bytes pass the predicates used here, so this slice is valid UTF-8.
        std::str::from_utf8(self.bytes.get(start..self.pos).unwrap_or_default()).unwrap_or_default()
    }

    fn quoted(&mut self) -> Result<String, ChallengeParseError> {
        let start = self.pos;
        self.pos += 1; // opening quote
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ChallengeParseError::Malformed(start)),
                Some(b'"') => {
                    self.pos += 1;
                    return String::from_utf8(value)
                        .map_err(|_| ChallengeParseError::Malformed(start));
                }
                Some(b'\\') => {
                    let escaped = self.bytes.get(self.pos + 1).copied();
                    match escaped {
                        Some(b) if b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80 => {
                            value.push(b)
                        }
                        _ => return Err(ChallengeParseError::Malformed(self.pos)),
                    }
                    self.pos += 2;
                }
                Some(b) if b == b'\t' || b >= b' ' && b != 0x7f => {
                    value.push(b);
                    self.pos += 1;
                }
                Some(_) => return Err(ChallengeParseError::Malformed(self.pos)),
            }
        }
    }

    /// After a token and optional whitespace: is this `=` the start of a parameter value (as
    /// opposed to token68 padding followed by the end or a comma)?
    fn equals_starts_value(&self) -> bool {
        let mut pos = self.pos;
        if self.bytes.get(pos) != Some(&b'=') {
            return false;
        }
        pos += 1;
        while matches!(self.bytes.get(pos), Some(b' ' | b'\t')) {
            pos += 1;
        }
        !matches!(self.bytes.get(pos), None | Some(b',') | Some(b'='))
    }
}

/// Parses a `WWW-Authenticate` value into its challenges. Several header lines are several
/// calls (or one call on the values joined with `, `).
pub fn parse_www_authenticate(value: &str) -> Result<Vec<Challenge>, ChallengeParseError> {
    let mut cur = Cursor {
        bytes: value.as_bytes(),
        pos: 0,
    };
    let mut challenges = Vec::new();
    loop {
        cur.skip_ws_and_commas();
        if cur.peek().is_none() {
            break;
        }
        let scheme = cur.take_while(is_tchar);
        if scheme.is_empty() {
            return Err(ChallengeParseError::Malformed(cur.pos));
        }
        let mut challenge = Challenge {
            scheme: scheme.to_owned(),
            token68: None,
            params: Vec::new(),
        };
        let had_space = matches!(cur.peek(), Some(b' ' | b'\t'));
        cur.skip_ws();
        if had_space && cur.peek().is_some_and(|b| b != b',') {
            parse_challenge_body(&mut cur, &mut challenge)?;
        } else if cur.peek().is_some_and(|b| b != b',') {
            return Err(ChallengeParseError::Malformed(cur.pos));
        }
        challenges.push(challenge);
    }
    Ok(challenges)
}

/// Reads either a token68 or a comma-separated list of parameters, stopping (without consuming
/// it) at the next challenge's scheme.
fn parse_challenge_body(
    cur: &mut Cursor<'_>,
    challenge: &mut Challenge,
) -> Result<(), ChallengeParseError> {
    let start = cur.pos;
    cur.take_while(is_tchar);
    cur.skip_ws();
    if !cur.equals_starts_value() {
        // token68 (with its `=` padding) standing alone.
        cur.pos = start;
        let first = cur.take_while(is_token68_char);
        if first.is_empty() {
            return Err(ChallengeParseError::Malformed(cur.pos));
        }
        let padding = cur.take_while(|b| b == b'=');
        cur.skip_ws();
        if cur.peek().is_some_and(|b| b != b',') {
            return Err(ChallengeParseError::Malformed(cur.pos));
        }
        challenge.token68 = Some(format!("{first}{padding}"));
        return Ok(());
    }
    cur.pos = start;
    loop {
        cur.skip_ws();
        let param_start = cur.pos;
        let name = cur.take_while(is_tchar);
        if name.is_empty() {
            return Err(ChallengeParseError::Malformed(cur.pos));
        }
        cur.skip_ws();
        if cur.peek() != Some(b'=') {
            // Not `name=`: this token is the next challenge's scheme.
            cur.pos = param_start;
            return Ok(());
        }
        cur.pos += 1;
        cur.skip_ws();
        let value = match cur.peek() {
            Some(b'"') => cur.quoted()?,
            _ => {
                // Lenient: RFC 9110 wants a token here, but servers send bare URLs
                // (`resource_metadata=https://…`); accept any visible character but the
                // delimiters.
                let token = cur.take_while(|b| b.is_ascii_graphic() && !b",\"\\".contains(&b));
                if token.is_empty() {
                    return Err(ChallengeParseError::Malformed(cur.pos));
                }
                token.to_owned()
            }
        };
        challenge.params.push((name.to_owned(), value));
        cur.skip_ws();
        match cur.peek() {
            None => return Ok(()),
            Some(b',') => {
                cur.skip_ws_and_commas();
                if cur.peek().is_none() {
                    return Ok(());
                }
            }
            Some(_) => return Err(ChallengeParseError::Malformed(cur.pos)),
        }
    }
}

/// Mode A: points every Bearer challenge's `resource_metadata` at `gateway_prm_url`, keeping the
/// other challenges and parameters. A Bearer challenge without the parameter gets none added
/// (the upstream then predates RFC 9728 and the gateway has no document of its to serve).
/// Returns `None` when the header does not parse: the engine should then drop it rather than
/// relay a value that may carry the upstream's address.
pub fn rewrite_resource_metadata(value: &str, gateway_prm_url: &str) -> Option<String> {
    let mut challenges = parse_www_authenticate(value).ok()?;
    for challenge in challenges.iter_mut().filter(|c| c.is_bearer()) {
        for (name, param) in challenge.params.iter_mut() {
            if name.eq_ignore_ascii_case("resource_metadata") {
                *param = gateway_prm_url.to_owned();
            }
        }
    }
    Some(format_challenges(&challenges))
}
