//! Byte-level reads and writes for the list cache (`tools/list`, `prompts/list`,
//! `resources/list`, `resources/templates/list`): what a list request asks for (its cursor, and the
//! 2026-07-28 client capabilities it declares), the parts of a list answer a cache keeps (the
//! `result` bytes, `ttlMs`, `cacheScope`), and an answer rebuilt around a cached `result` with
//! the id of the client that asks now.
//!
//! Built on the list filter's validating scanner (`crate::filter`), so both read JSON alike: the
//! whole message is validated, strings are compared after escape decoding, and a member the
//! cache keys on or obeys that appears twice is an error — the upstream and the gateway could
//! read different copies, and a cache keyed on one copy while the upstream answered the other
//! would serve one page as another (cache poisoning). A caller treats every error as "do not
//! cache": the request still goes upstream.

use std::ops::Range;

use crate::filter::{FilterError, ListSet, Scan};

/// Why a list request or answer cannot be cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListAnswerError {
    #[error(transparent)]
    Json(#[from] FilterError),
    #[error("duplicate \"{0}\" member")]
    Duplicate(&'static str),
    #[error("\"{0}\" has the wrong type")]
    WrongType(&'static str),
}

/// What a list request asks for, as a cache key needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListRequest {
    /// `params.cursor`, escapes decoded; `None` for the first page.
    pub cursor: Option<String>,
    /// Raw bytes of `params._meta["io.modelcontextprotocol/clientCapabilities"]` (2026-07-28,
    /// where no session carries them): a server may list differently for other capabilities.
    pub capabilities: Option<Range<usize>>,
}

/// The `_meta` key carrying a 2026-07-28 request's client capabilities.
pub const CLIENT_CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";

/// Reads the cursor (and declared capabilities) of one JSON-RPC list request. `message` must be
/// the whole request object.
pub fn list_request(message: &[u8]) -> Result<ListRequest, ListAnswerError> {
    let mut decoded = String::new();
    let mut s = Scan::new(message, &mut decoded);
    let mut out = ListRequest::default();
    let mut seen_params = false;
    let mut seen_cursor = false;
    let mut seen_meta = false;
    let mut error: Option<ListAnswerError> = None;
    s.ws();
    s.object(1, |s, key, depth| {
        if !s.key_is(&key, "params")? {
            return s.skip_value(depth + 1);
        }
        if std::mem::replace(&mut seen_params, true) {
            error.get_or_insert(ListAnswerError::Duplicate("params"));
            return s.skip_value(depth + 1);
        }
        if s.peek() != Some(b'{') {
            // `params` must be an object; the classifier refused anything else already.
            error.get_or_insert(ListAnswerError::WrongType("params"));
            return s.skip_value(depth + 1);
        }
        s.object(depth + 1, |s, key, depth| {
            if s.key_is(&key, "cursor")? {
                if std::mem::replace(&mut seen_cursor, true) {
                    error.get_or_insert(ListAnswerError::Duplicate("cursor"));
                    return s.skip_value(depth + 1);
                }
                match s.peek() {
                    Some(b'"') => {
                        let raw = s.string()?;
                        out.cursor = Some(s.text(&raw)?.to_owned());
                        Ok(())
                    }
                    Some(b'n') => s.skip_value(depth + 1),
                    _ => {
                        error.get_or_insert(ListAnswerError::WrongType("cursor"));
                        s.skip_value(depth + 1)
                    }
                }
            } else if s.key_is(&key, "_meta")? {
                if std::mem::replace(&mut seen_meta, true) {
                    error.get_or_insert(ListAnswerError::Duplicate("_meta"));
                    return s.skip_value(depth + 1);
                }
                if s.peek() != Some(b'{') {
                    return s.skip_value(depth + 1);
                }
                let mut seen_caps = false;
                s.object(depth + 1, |s, key, depth| {
                    if !s.key_is(&key, CLIENT_CAPABILITIES_META)? {
                        return s.skip_value(depth + 1);
                    }
                    if std::mem::replace(&mut seen_caps, true) {
                        error.get_or_insert(ListAnswerError::Duplicate("clientCapabilities"));
                    }
                    let start = s.pos;
                    s.skip_value(depth + 1)?;
                    out.capabilities = Some(start..s.pos);
                    Ok(())
                })
            } else {
                s.skip_value(depth + 1)
            }
        })
    })?;
    s.ws();
    if s.pos != message.len() {
        return Err(s.invalid().into());
    }
    match error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `result.ttlMs` as the answer gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtlMs {
    #[default]
    Absent,
    Millis(u64),
    /// Present but not a non-negative integer (or too large): not cached.
    Invalid,
}

/// What the cache needs of one JSON-RPC response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAnswer {
    /// Raw JSON of `id` (`None`: absent or `null`).
    pub id: Option<Range<usize>>,
    /// Raw JSON of the `result` object.
    pub result: Range<usize>,
    pub ttl_ms: TtlMs,
    /// `result.cacheScope`, escapes decoded, when it is a string.
    pub cache_scope: Option<String>,
    /// `result.resultType` (2026-07-28), when it is a string: an `input_required` result is an
    /// intermediate step, never a list to keep.
    pub result_type: Option<String>,
    /// The lists `result` carries.
    pub lists: ListSet,
    /// `result.nextCursor` is present (and not `null`): more pages follow.
    pub has_next_cursor: bool,
}

/// Reads one whole JSON-RPC response. `Ok(None)`: an error response, or no `result` object.
pub fn list_answer(message: &[u8]) -> Result<Option<ListAnswer>, ListAnswerError> {
    let mut decoded = String::new();
    let mut s = Scan::new(message, &mut decoded);
    let mut id: Option<Option<Range<usize>>> = None;
    let mut result: Option<Range<usize>> = None;
    let mut seen_result = false;
    let mut has_error = false;
    let mut ttl_ms = TtlMs::Absent;
    let mut cache_scope = None;
    let mut result_type = None;
    let mut lists = ListSet::NONE;
    let mut has_next_cursor = false;
    let mut error: Option<ListAnswerError> = None;
    let mut seen = [false; 3];
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(FilterError::NotAnObject.into());
    }
    s.object(1, |s, key, depth| {
        if s.key_is(&key, "id")? {
            if id.is_some() {
                error.get_or_insert(ListAnswerError::Duplicate("id"));
            }
            let start = s.pos;
            let is_null = s.peek() == Some(b'n');
            s.skip_value(depth + 1)?;
            id = Some((!is_null).then_some(start..s.pos));
            return Ok(());
        }
        if s.key_is(&key, "error")? {
            has_error = true;
            return s.skip_value(depth + 1);
        }
        if !s.key_is(&key, "result")? {
            return s.skip_value(depth + 1);
        }
        if std::mem::replace(&mut seen_result, true) {
            error.get_or_insert(ListAnswerError::Duplicate("result"));
        }
        let start = s.pos;
        if s.peek() != Some(b'{') {
            s.skip_value(depth + 1)?;
            return Ok(());
        }
        s.object(depth + 1, |s, key, depth| {
            let raw_key = key.clone();
            let name = s.text(&raw_key)?.to_owned();
            let slot = match name.as_str() {
                "ttlMs" => Some(0),
                "cacheScope" => Some(1),
                "nextCursor" => Some(2),
                _ => None,
            };
            if let Some(i) = slot {
                if let Some(flag) = seen.get_mut(i) {
                    if std::mem::replace(flag, true) {
                        error.get_or_insert(ListAnswerError::Duplicate(match i {
                            0 => "ttlMs",
                            1 => "cacheScope",
                            _ => "nextCursor",
                        }));
                    }
                }
            }
            match name.as_str() {
                "ttlMs" => {
                    let start = s.pos;
                    s.skip_value(depth + 1)?;
                    ttl_ms = parse_ttl(s.b.get(start..s.pos).unwrap_or_default());
                    Ok(())
                }
                "cacheScope" | "resultType" if s.peek() == Some(b'"') => {
                    let raw = s.string()?;
                    let text = s.text(&raw)?.to_owned();
                    if name == "cacheScope" {
                        cache_scope = Some(text);
                    } else {
                        result_type = Some(text);
                    }
                    Ok(())
                }
                "nextCursor" => {
                    has_next_cursor = s.peek() != Some(b'n');
                    s.skip_value(depth + 1)
                }
                other => {
                    if let Some(kind) = ListSet::kind_of_key(other) {
                        if lists.contains(kind) {
                            error.get_or_insert(ListAnswerError::Duplicate(kind.list_key()));
                        }
                        lists = lists.with(kind);
                    }
                    s.skip_value(depth + 1)
                }
            }
        })?;
        result = Some(start..s.pos);
        Ok(())
    })?;
    s.ws();
    if s.pos != message.len() {
        return Err(s.invalid().into());
    }
    if let Some(e) = error {
        return Err(e);
    }
    match result {
        Some(result) if !has_error && message.get(result.start) == Some(&b'{') => {
            Ok(Some(ListAnswer {
                id: id.flatten(),
                result,
                ttl_ms,
                cache_scope,
                result_type,
                lists,
                has_next_cursor,
            }))
        }
        _ => Ok(None),
    }
}

/// A non-negative integer of at most 19 digits; anything else (a fraction, an exponent, a sign,
/// a string) is [`TtlMs::Invalid`].
fn parse_ttl(raw: &[u8]) -> TtlMs {
    if raw.is_empty() || raw.len() > 19 || !raw.iter().all(u8::is_ascii_digit) {
        return TtlMs::Invalid;
    }
    match std::str::from_utf8(raw).ok().and_then(|t| t.parse().ok()) {
        Some(ms) => TtlMs::Millis(ms),
        None => TtlMs::Invalid,
    }
}

/// Appends `{"jsonrpc":"2.0","id":<id_raw>,"result":<result_raw>}`. `id_raw` must be a raw id
/// the classifier produced (it is copied verbatim); `result_raw` a validated JSON object.
pub fn write_answer(id_raw: Option<&[u8]>, result_raw: &[u8], out: &mut Vec<u8>) {
    out.reserve(result_raw.len() + 40);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id_raw.unwrap_or(b"null"));
    out.extend_from_slice(br#","result":"#);
    out.extend_from_slice(result_raw);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ListKind;

    fn cursor(body: &str) -> Result<Option<String>, ListAnswerError> {
        list_request(body.as_bytes()).map(|r| r.cursor)
    }

    #[test]
    fn cursors_are_read_decoded_and_duplicates_refused() {
        assert_eq!(
            cursor(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Ok(None)
        );
        assert_eq!(
            cursor(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#),
            Ok(None)
        );
        assert_eq!(
            cursor(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"\u0061b"}}"#
            ),
            Ok(Some("ab".into()))
        );
        assert_eq!(cursor(r#"{"params":{"cursor":null},"id":1}"#), Ok(None));
        assert_eq!(
            cursor(r#"{"params":{"cursor":"a","cursor":"b"}}"#),
            Err(ListAnswerError::Duplicate("cursor"))
        );
        assert_eq!(
            cursor(r#"{"params":{"cursor":"a"},"params":{"cursor":"b"}}"#),
            Err(ListAnswerError::Duplicate("params"))
        );
        assert_eq!(
            cursor(r#"{"params":{"cursor":7}}"#),
            Err(ListAnswerError::WrongType("cursor"))
        );
        assert!(cursor(r#"{"params":{"cursor":"a"}"#).is_err());
        assert!(cursor(r#"{"params":{"cursor":"a"}} x"#).is_err());
    }

    #[test]
    fn declared_capabilities_are_located() {
        let body = r#"{"params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"sampling":{}},"x":1}}}"#;
        let r = list_request(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let caps = r.capabilities.and_then(|c| body.get(c));
        assert_eq!(caps, Some(r#"{"sampling":{}}"#));
    }

    #[test]
    fn answers_give_their_parts() {
        let body = r#"{"jsonrpc":"2.0","id":"a","result":{"tools":[{"name":"x"}],"ttlMs":5000,"cacheScope":"private","nextCursor":"2"}}"#;
        let a = list_answer(body.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no answer"));
        assert_eq!(a.id.clone().and_then(|r| body.get(r)), Some(r#""a""#));
        assert_eq!(
            body.get(a.result.clone()),
            Some(
                r#"{"tools":[{"name":"x"}],"ttlMs":5000,"cacheScope":"private","nextCursor":"2"}"#
            )
        );
        assert_eq!(a.ttl_ms, TtlMs::Millis(5000));
        assert_eq!(a.cache_scope.as_deref(), Some("private"));
        assert!(a.has_next_cursor);
        assert!(a.lists.contains(ListKind::Tools));
        for (ttl, expected) in [
            ("0", TtlMs::Millis(0)),
            ("1.5", TtlMs::Invalid),
            ("-1", TtlMs::Invalid),
            ("\"5\"", TtlMs::Invalid),
            ("1e3", TtlMs::Invalid),
            ("99999999999999999999", TtlMs::Invalid),
        ] {
            let body = format!(r#"{{"id":1,"result":{{"ttlMs":{ttl}}}}}"#);
            let a = list_answer(body.as_bytes()).ok().flatten();
            assert_eq!(a.map(|a| a.ttl_ms), Some(expected), "{body}");
        }
        assert_eq!(
            list_answer(br#"{"id":1,"error":{"code":1,"message":"x"}}"#),
            Ok(None)
        );
        assert_eq!(
            list_answer(br#"{"id":1,"result":{"ttlMs":1,"ttlMs":2}}"#),
            Err(ListAnswerError::Duplicate("ttlMs"))
        );
        assert_eq!(
            list_answer(br#"{"id":1,"result":{"tools":[],"tools":[]}}"#),
            Err(ListAnswerError::Duplicate("tools"))
        );
        assert_eq!(
            list_answer(br#"{"id":1,"id":2,"result":{}}"#),
            Err(ListAnswerError::Duplicate("id"))
        );
    }

    #[test]
    fn a_cached_result_is_answered_with_the_new_id() {
        let mut out = Vec::new();
        write_answer(Some(b"\"q\""), br#"{"tools":[]}"#, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"jsonrpc":"2.0","id":"q","result":{"tools":[]}}"#
        );
    }
}
