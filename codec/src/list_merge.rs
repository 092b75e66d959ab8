//! Byte-level reads for merging list answers (the virtual server's merged `tools/list`,
//! `prompts/list`, `resources/list`, `resources/templates/list`): where an upstream's JSON-RPC
//! message keeps its `id`, `result` and `error`, and, inside a `result`, each entry of the list
//! with the one string member a merge rewrites (`name`, or `uri` for resources) and the
//! `nextCursor`. Offsets into the caller's bytes, no copies: the merge copies each entry whole
//! and rewrites only that member, so every other byte of an entry (escapes, numbers, members the
//! gateway does not know) reaches the client as the upstream wrote it.
//!
//! Built on the list filter's validating scanner (`crate::filter`): the whole input is checked
//! (UTF-8, grammar, escapes, nesting), keys are compared after escape decoding. Whatever a reader
//! could take two ways (a member the merge reads given twice) is reported — as an error for the
//! message and `result` members, as [`Member::Twice`] for an entry's — so the caller can take its
//! exact, slower path (a full parse) for that input instead of guessing.

use std::ops::Range;

use crate::filter::{FilterError, Scan};
use crate::list_answer::ListAnswerError;

/// Where one JSON-RPC message keeps the parts an answer is read from (raw JSON, whole values).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageParts {
    pub id: Option<Range<usize>>,
    pub result: Option<Range<usize>>,
    pub error: Option<Range<usize>>,
    /// The message has a `method` member (a request or a notification, not an answer).
    pub has_method: bool,
}

/// Locates `id`, `result`, `error` of one whole JSON-RPC message (an object). A member given
/// twice is an error: which copy a full parser keeps is the caller's exact path to decide.
pub fn message_parts(message: &[u8]) -> Result<MessageParts, ListAnswerError> {
    if std::str::from_utf8(message).is_err() {
        return Err(FilterError::InvalidUtf8.into());
    }
    let mut decoded = String::new();
    let mut s = Scan::new(message, &mut decoded);
    let mut parts = MessageParts::default();
    let mut twice: Option<&'static str> = None;
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(FilterError::NotAnObject.into());
    }
    s.object(1, |s, key, depth| {
        let (slot, name) = if s.key_is(&key, "id")? {
            (&mut parts.id, "id")
        } else if s.key_is(&key, "result")? {
            (&mut parts.result, "result")
        } else if s.key_is(&key, "error")? {
            (&mut parts.error, "error")
        } else {
            if s.key_is(&key, "method")? {
                if parts.has_method {
                    twice.get_or_insert("method");
                }
                parts.has_method = true;
            }
            return s.skip_value(depth + 1);
        };
        let start = s.pos;
        s.skip_value(depth + 1)?;
        if slot.replace(start..s.pos).is_some() {
            twice.get_or_insert(name);
        }
        Ok(())
    })?;
    s.ws();
    if s.pos != message.len() {
        return Err(s.invalid().into());
    }
    match twice {
        Some(name) => Err(ListAnswerError::Duplicate(name)),
        None => Ok(parts),
    }
}

/// A JSON string in the input: its content between the quotes (escapes not decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawString {
    /// The content, without the quotes.
    pub range: Range<usize>,
    /// The content holds escapes (decode with [`string_text`] before comparing).
    pub escaped: bool,
}

/// What an entry of a list has under the member the merge reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// The entry is not an object.
    NotAnObject,
    Absent,
    /// Present, but not a string.
    NotAString,
    /// Present more than once: which one a full parser keeps is the caller's to decide.
    Twice,
    Str(RawString),
}

/// One entry of the list: its whole bytes and its member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub range: Range<usize>,
    pub member: Member,
}

/// What a `result` holds for a merge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListParts {
    /// `result` is an object (anything else holds no list and no cursor).
    pub is_object: bool,
    /// The list member is present and an array (its entries went to `entries`).
    pub has_list: bool,
    /// `nextCursor`, when it is a string.
    pub next_cursor: Option<RawString>,
}

/// Reads a whole `result` value: its `list_key` array's entries (appended to `entries`, each
/// with its `member`) and its `nextCursor`. The list or `nextCursor` given twice is an error
/// (nothing is then appended to `entries`).
pub fn list_parts(
    result: &[u8],
    list_key: &str,
    member: &str,
    entries: &mut Vec<ListEntry>,
) -> Result<ListParts, ListAnswerError> {
    if std::str::from_utf8(result).is_err() {
        return Err(FilterError::InvalidUtf8.into());
    }
    let first = entries.len();
    let outcome = read_list(result, list_key, member, entries);
    if outcome.is_err() {
        entries.truncate(first);
    }
    outcome
}

fn read_list(
    result: &[u8],
    list_key: &str,
    member: &str,
    entries: &mut Vec<ListEntry>,
) -> Result<ListParts, ListAnswerError> {
    let mut decoded = String::new();
    let mut s = Scan::new(result, &mut decoded);
    let mut parts = ListParts::default();
    let mut seen_list = false;
    let mut seen_cursor = false;
    let mut twice: Option<&'static str> = None;
    s.ws();
    if s.peek() != Some(b'{') {
        s.skip_value(1)?;
    } else {
        parts.is_object = true;
        s.object(1, |s, key, depth| {
            if s.key_is(&key, list_key)? {
                if std::mem::replace(&mut seen_list, true) {
                    twice.get_or_insert("list");
                }
                if s.peek() != Some(b'[') {
                    parts.has_list = false;
                    return s.skip_value(depth + 1);
                }
                parts.has_list = true;
                return array_entries(s, depth + 1, member, entries);
            }
            if s.key_is(&key, "nextCursor")? {
                if std::mem::replace(&mut seen_cursor, true) {
                    twice.get_or_insert("nextCursor");
                }
                if s.peek() == Some(b'"') {
                    let raw = s.string()?;
                    parts.next_cursor = Some(RawString {
                        range: raw.range,
                        escaped: raw.escaped,
                    });
                    return Ok(());
                }
                parts.next_cursor = None;
            }
            s.skip_value(depth + 1)
        })?;
    }
    s.ws();
    if s.pos != result.len() {
        return Err(s.invalid().into());
    }
    match twice {
        Some(name) => Err(ListAnswerError::Duplicate(name)),
        None => Ok(parts),
    }
}

/// The entries of the array at `s.pos`.
fn array_entries(
    s: &mut Scan<'_, '_>,
    depth: usize,
    member: &str,
    entries: &mut Vec<ListEntry>,
) -> Result<(), FilterError> {
    s.array(depth, |s, depth| {
        let start = s.pos;
        let found = if s.peek() == Some(b'{') {
            let mut found = Member::Absent;
            s.object(depth + 1, |s, key, depth| {
                if !s.key_is(&key, member)? {
                    return s.skip_value(depth + 1);
                }
                let again = found != Member::Absent;
                found = if s.peek() == Some(b'"') {
                    let raw = s.string()?;
                    Member::Str(RawString {
                        range: raw.range,
                        escaped: raw.escaped,
                    })
                } else {
                    s.skip_value(depth + 1)?;
                    Member::NotAString
                };
                if again {
                    // Sticky: a third copy must not make it look single.
                    found = Member::Twice;
                }
                Ok(())
            })?;
            found
        } else {
            s.skip_value(depth + 1)?;
            Member::NotAnObject
        };
        entries.push(ListEntry {
            range: start..s.pos,
            member: found,
        });
        Ok(())
    })
}

/// The text of a string's content `raw` (as [`RawString::range`] gives it): borrowed when it
/// has no escapes, else decoded into `buf`. `None` when the content is not valid (it was
/// validated by the scan that located it, so only for a range from elsewhere).
pub fn string_text<'s>(raw: &'s [u8], escaped: bool, buf: &'s mut String) -> Option<&'s str> {
    if !escaped {
        return std::str::from_utf8(raw).ok();
    }
    buf.clear();
    crate::filter::decode_escaped(raw, buf)?;
    Some(buf.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(b: &str, r: Option<Range<usize>>) -> Option<&str> {
        r.and_then(|r| b.get(r))
    }

    #[test]
    fn message_parts_are_located() {
        let m = r#" {"jsonrpc":"2.0","id":"a\"b","result":{"tools":[]}} "#;
        let p = message_parts(m.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(at(m, p.id), Some(r#""a\"b""#));
        assert_eq!(at(m, p.result), Some(r#"{"tools":[]}"#));
        assert_eq!(p.error, None);
        assert!(!p.has_method);
        let m = r#"{"id":1,"error":{"code":-1,"message":"x"}}"#;
        let p = message_parts(m.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(at(m, p.error), Some(r#"{"code":-1,"message":"x"}"#));
        let p = message_parts(br#"{"method":"notifications/progress","params":{}}"#);
        assert!(p.is_ok_and(|p| p.has_method && p.id.is_none()));
        // An escaped key is the same key.
        let m = r#"{"\u0069d":7,"result":null}"#;
        let p = message_parts(m.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(at(m, p.id), Some("7"));
        assert_eq!(at(m, p.result), Some("null"));
    }

    #[test]
    fn doubtful_messages_are_refused() {
        for m in [
            r#"{"id":1,"id":2,"result":{}}"#,
            r#"{"id":1,"result":{},"result":{}}"#,
            r#"{"id":1,"result":{},"\u0072esult":{}}"#,
            r#"{"id":1,"error":{},"error":{}}"#,
            r#"[{"id":1,"result":{}}]"#,
            r#"{"id":1,"result":{}"#,
            r#"{"id":1,"result":{}} x"#,
            r#"{"id":1,"result":"\ud800"}"#,
            "{\"id\":1,\"result\":\"\u{1}\"}",
        ] {
            assert!(message_parts(m.as_bytes()).is_err(), "{m}");
        }
        assert!(message_parts(b"{\"id\":1,\"result\":\"\xff\"}").is_err());
    }

    fn parts(
        result: &str,
        key: &str,
        member: &str,
    ) -> Result<(ListParts, Vec<ListEntry>), ListAnswerError> {
        let mut entries = Vec::new();
        list_parts(result.as_bytes(), key, member, &mut entries).map(|p| (p, entries))
    }

    #[test]
    fn entries_and_their_member_are_located() {
        let r = r#"{"nextCursor":"n\u0031","tools":[ {"name":"a\u00e9","x":[1,{"name":2}]} , 7,{"title":"t"},{"name":1},{"name":"b","name":"c"},{"name":"d","name":"e","name":"f"}]}"#;
        let (p, e) = parts(r, "tools", "name").unwrap_or_else(|e| panic!("{e}"));
        assert!(p.is_object && p.has_list);
        let cursor = p.next_cursor.unwrap_or_else(|| panic!("no cursor"));
        let mut buf = String::new();
        assert_eq!(
            string_text(
                r.as_bytes().get(cursor.range).unwrap_or_default(),
                cursor.escaped,
                &mut buf
            ),
            Some("n1")
        );
        assert_eq!(e.len(), 6);
        assert_eq!(
            r.get(e[0].range.clone()),
            Some(r#"{"name":"a\u00e9","x":[1,{"name":2}]}"#)
        );
        let Member::Str(name) = &e[0].member else {
            panic!("{:?}", e[0].member)
        };
        assert!(name.escaped);
        assert_eq!(r.get(name.range.clone()), Some(r"a\u00e9"));
        assert_eq!(e[1].member, Member::NotAnObject);
        assert_eq!(r.get(e[1].range.clone()), Some("7"));
        assert_eq!(e[2].member, Member::Absent);
        assert_eq!(e[3].member, Member::NotAString);
        assert_eq!(e[4].member, Member::Twice);
        assert_eq!(e[5].member, Member::Twice);
    }

    #[test]
    fn results_without_a_list_and_doubtful_ones() {
        let (p, e) = parts("null", "tools", "name").unwrap_or_else(|e| panic!("{e}"));
        assert!(!p.is_object && e.is_empty());
        let (p, e) = parts(r#"{"tools":{},"nextCursor":3}"#, "tools", "name")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(p.is_object && !p.has_list && p.next_cursor.is_none() && e.is_empty());
        let (p, _) = parts(r#"{"resources":[{"uri":"x"}]}"#, "tools", "name")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!p.has_list);
        for r in [
            r#"{"tools":[{"name":"a"}],"tools":[]}"#,
            r#"{"tools":[],"nextCursor":"a","nextCursor":"b"}"#,
            r#"{"tools":[{"name":"a"}],"nextCursor":"a","nextCursor":null}"#,
            r#"{"tools":[{"name":"a"}]"#,
            r#"{"tools":[{"name":"a"},]}"#,
        ] {
            let mut entries = Vec::new();
            assert!(
                list_parts(r.as_bytes(), "tools", "name", &mut entries).is_err(),
                "{r}"
            );
            assert!(entries.is_empty(), "{r}");
        }
    }
}
