//! The merge of a virtual API's lists (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`) across its upstreams, on bytes: each upstream's `result` is read
//! into offsets (`mcpgate_codec::list_merge`) and its entries are copied into one output buffer
//! whole, with only what the merge changes rewritten — the prefixed `name`, a collided resource
//! URI (`mcpgate://<upstream>/<pct>`) — and the gateway's `nextCursor` written at the end. No
//! `serde_json::Value` tree per upstream answer: that parse and the serialisation after it were
//! most of a merged list's cost (bench/README.md, "Virtual server").
//!
//! The rules are those of the `Value` merge this replaces, kept as [`ListMerge::add_value`] for
//! what the byte path does not read (a shared link's answers arrive parsed) or will not decide
//! (a member given twice, which a full parser resolves its own way; nesting past the scanner's
//! limit): a tool's name must stay a valid tool name once prefixed (else the entry is left out);
//! the first entry of a name wins; an entry without a string name is left out, a resource
//! without a string URI kept as it is; a URI an earlier upstream listed is rewritten so both
//! stay readable. An entry's other bytes reach the client as the upstream wrote them (escapes,
//! number spellings, member order), where the `Value` merge re-serialised them. No I/O.

use std::collections::HashSet;

use mcpgate_codec::filter::ListKind;
use mcpgate_codec::list_answer::ListAnswerError;
use mcpgate_codec::list_merge::{list_parts, string_text, ListEntry, Member};
use serde_json::Value;

use crate::virtual_server::{collided_uri, ListCursor, NameError, Naming};

/// What the merge tells its caller about an entry (for logs, and where reads of a URI go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeNote<'a> {
    /// Left out: its name, prefixed, breaks the tool-name rules.
    LeftOut(NameError),
    /// Left out: an earlier entry has this (client-visible) name.
    Twice(&'a str),
    /// A resource URI this upstream listed first (a read of it goes there first).
    Listed(&'a str),
}

/// One merged list under construction: the upstreams' `result`s added in configuration order,
/// then [`ListMerge::finish`] gives the merged `result` object.
pub struct ListMerge<'n> {
    naming: &'n Naming,
    kind: ListKind,
    out: Vec<u8>,
    empty: bool,
    /// Names (or URIs) already in the list, as the client sees them.
    seen: HashSet<String>,
    next: ListCursor,
    /// Scratch of [`ListMerge::add_raw`].
    entries: Vec<ListEntry>,
    decoded: String,
}

impl<'n> ListMerge<'n> {
    pub fn new(naming: &'n Naming, kind: ListKind) -> Self {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(kind.list_key().as_bytes());
        out.extend_from_slice(b"\":[");
        ListMerge {
            naming,
            kind,
            out,
            empty: true,
            seen: HashSet::new(),
            next: ListCursor::default(),
            entries: Vec::new(),
            decoded: String::new(),
        }
    }

    /// The member the merge reads: resources are merged by URI, the others by name.
    fn member(&self) -> &'static str {
        match self.kind {
            ListKind::Resources => "uri",
            _ => "name",
        }
    }

    fn upstream(&self, index: usize) -> &'n str {
        let naming: &'n Naming = self.naming;
        naming.upstreams.get(index).map_or("", String::as_str)
    }

    /// Adds upstream `index`'s `result` (raw JSON). `Err`: nothing was added (invalid JSON, or a
    /// member the merge reads given twice); the caller parses the `result` and calls
    /// [`ListMerge::add_value`], which decides such input as the `Value` merge always did.
    pub fn add_raw(
        &mut self,
        index: usize,
        result: &[u8],
        note: &mut dyn FnMut(MergeNote<'_>),
    ) -> Result<(), ListAnswerError> {
        let mut entries = std::mem::take(&mut self.entries);
        entries.clear();
        let outcome = self.merge_raw(index, result, &mut entries, note);
        self.entries = entries;
        outcome
    }

    fn merge_raw(
        &mut self,
        index: usize,
        result: &[u8],
        entries: &mut Vec<ListEntry>,
        note: &mut dyn FnMut(MergeNote<'_>),
    ) -> Result<(), ListAnswerError> {
        let parts = list_parts(result, self.kind.list_key(), self.member(), entries)?;
        if entries.iter().any(|e| e.member == Member::Twice) {
            return Err(ListAnswerError::Duplicate("entry member"));
        }
        // Validated above, so every range is in `result` and every string decodes.
        let bytes = |r: std::ops::Range<usize>| result.get(r).unwrap_or_default();
        let upstream = self.upstream(index);
        let mut decoded = std::mem::take(&mut self.decoded);
        if let Some(cursor) = &parts.next_cursor {
            if let Some(text) =
                string_text(bytes(cursor.range.clone()), cursor.escaped, &mut decoded)
            {
                self.next
                    .pending
                    .insert(upstream.to_owned(), text.to_owned());
            }
        }
        for entry in entries.iter() {
            let whole = bytes(entry.range.clone());
            let raw = match &entry.member {
                Member::Str(raw) => raw,
                // A resource without a string URI is kept as it is; another entry without a
                // string name is left out.
                _ if self.kind == ListKind::Resources => {
                    self.push(whole);
                    continue;
                }
                _ => continue,
            };
            let Some(text) = string_text(bytes(raw.range.clone()), raw.escaped, &mut decoded)
            else {
                continue;
            };
            // The entry around the member's content (the quotes stay with `before` / `after`).
            let before = bytes(entry.range.start..raw.range.start);
            let content = bytes(raw.range.clone());
            let after = bytes(raw.range.end..entry.range.end);
            if self.kind == ListKind::Resources {
                if self.seen.contains(text) {
                    // Two upstreams listing one URI: the first (configuration order) keeps
                    // it, the later one's is rewritten so both stay readable.
                    let visible = collided_uri(upstream, text);
                    self.separate();
                    self.out.extend_from_slice(before);
                    // Percent-encoded ASCII: nothing to escape.
                    self.out.extend_from_slice(visible.as_bytes());
                    self.out.extend_from_slice(after);
                    self.seen.insert(visible);
                    continue;
                }
                self.seen.insert(text.to_owned());
                note(MergeNote::Listed(text));
                self.push(whole);
                continue;
            }
            let exposed = match self.kind {
                ListKind::Tools => self.naming.expose(index, text),
                _ => Ok(self.naming.prefix(index, text)),
            };
            let name = match exposed {
                Ok(name) => name,
                Err(e) => {
                    note(MergeNote::LeftOut(e));
                    continue;
                }
            };
            if self.seen.contains(&name) {
                note(MergeNote::Twice(&name));
                continue;
            }
            self.seen.insert(name);
            self.separate();
            self.out.extend_from_slice(before);
            if self.naming.prefixes() {
                // Upstream names and the separator are plain `[A-Za-z0-9_.-]` (validated at
                // load): written as they are, before the upstream's own bytes.
                self.out.extend_from_slice(upstream.as_bytes());
                self.out.extend_from_slice(self.naming.separator.as_bytes());
            }
            self.out.extend_from_slice(content);
            self.out.extend_from_slice(after);
        }
        self.decoded = decoded;
        Ok(())
    }

    /// Adds upstream `index`'s `result` already parsed (a shared link's answer, or what
    /// [`ListMerge::add_raw`] refused), entries serialised again.
    pub fn add_value(
        &mut self,
        index: usize,
        mut result: Value,
        note: &mut dyn FnMut(MergeNote<'_>),
    ) {
        let upstream = self.upstream(index);
        if let Some(c) = result.get("nextCursor").and_then(Value::as_str) {
            self.next.pending.insert(upstream.to_owned(), c.to_owned());
        }
        // Taken, not cloned: each entry is moved out of the answer.
        let Some(Value::Array(list)) = result.get_mut(self.kind.list_key()).map(Value::take) else {
            return;
        };
        for mut item in list {
            if self.kind == ListKind::Resources {
                if let Some(uri) = item.get("uri").and_then(Value::as_str) {
                    if !self.seen.insert(uri.to_owned()) {
                        let visible = collided_uri(upstream, uri);
                        self.seen.insert(visible.clone());
                        item["uri"] = Value::String(visible);
                    } else {
                        note(MergeNote::Listed(uri));
                    }
                }
                self.push_value(&item);
                continue;
            }
            let Some(own) = item.get("name").and_then(Value::as_str) else {
                continue;
            };
            let exposed = match self.kind {
                ListKind::Tools => self.naming.expose(index, own),
                _ => Ok(self.naming.prefix(index, own)),
            };
            let name = match exposed {
                Ok(name) => name,
                Err(e) => {
                    note(MergeNote::LeftOut(e));
                    continue;
                }
            };
            if self.seen.contains(&name) {
                note(MergeNote::Twice(&name));
                continue;
            }
            self.seen.insert(name.clone());
            item["name"] = Value::String(name);
            self.push_value(&item);
        }
    }

    /// The merged `result`: `{"<list>":[…]}`, with the gateway's `nextCursor` when an upstream
    /// has more pages.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b']');
        if !self.next.pending.is_empty() {
            // base64url: nothing to escape.
            self.out.extend_from_slice(b",\"nextCursor\":\"");
            self.out.extend_from_slice(self.next.encode().as_bytes());
            self.out.push(b'"');
        }
        self.out.push(b'}');
        self.out
    }

    fn separate(&mut self) {
        if !std::mem::replace(&mut self.empty, false) {
            self.out.push(b',');
        }
    }

    fn push(&mut self, entry: &[u8]) {
        self.separate();
        self.out.extend_from_slice(entry);
    }

    fn push_value(&mut self, entry: &Value) {
        self.separate();
        // Writing a `Value` into a Vec cannot fail (string keys, finite numbers).
        let _ = serde_json::to_writer(&mut self.out, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn naming(names: &[&str]) -> Naming {
        Naming {
            upstreams: names.iter().map(|s| s.to_string()).collect(),
            separator: "__".into(),
        }
    }

    /// What a merge gives and tells: the merged `result` and the notes, as text.
    fn merged(
        naming: &Naming,
        kind: ListKind,
        results: &[&str],
        raw: bool,
    ) -> (Vec<u8>, Vec<String>) {
        let mut notes = Vec::new();
        let mut merge = ListMerge::new(naming, kind);
        for (i, r) in results.iter().enumerate() {
            let mut note = |n: MergeNote<'_>| notes.push(format!("{i}: {n:?}"));
            if raw && merge.add_raw(i, r.as_bytes(), &mut note).is_ok() {
                continue;
            }
            // What the caller does with a result the byte path refused.
            if let Ok(v) = serde_json::from_str::<Value>(r) {
                merge.add_value(i, v, &mut note);
            }
        }
        (merge.finish(), notes)
    }

    /// The merge as `core` wrote it before (commit ee396dd, `VirtualServer::list`), on `Value`s.
    fn reference(naming: &Naming, kind: ListKind, results: &[&str]) -> (Value, Vec<String>) {
        let field = kind.list_key();
        let prefixed = kind != ListKind::Resources;
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        let mut next = ListCursor::default();
        let mut notes = Vec::new();
        for (index, r) in results.iter().enumerate() {
            let Ok(mut result) = serde_json::from_str::<Value>(r) else {
                continue;
            };
            let up = &naming.upstreams[index];
            if let Some(c) = result.get("nextCursor").and_then(Value::as_str) {
                next.pending.insert(up.clone(), c.to_owned());
            }
            let Some(Value::Array(list)) = result.get_mut(field).map(Value::take) else {
                continue;
            };
            for mut item in list {
                if prefixed {
                    let Some(own) = item.get("name").and_then(Value::as_str) else {
                        continue;
                    };
                    let exposed = if field == "tools" {
                        naming.expose(index, own)
                    } else {
                        Ok(naming.prefix(index, own))
                    };
                    match exposed {
                        Ok(name) => item["name"] = Value::String(name),
                        Err(e) => {
                            notes.push(format!("{index}: {:?}", MergeNote::LeftOut(e)));
                            continue;
                        }
                    }
                    let name = item["name"].as_str().unwrap_or_default().to_owned();
                    if !seen.insert(name.clone()) {
                        notes.push(format!("{index}: {:?}", MergeNote::Twice(&name)));
                        continue;
                    }
                } else if let Some(uri) = item.get("uri").and_then(Value::as_str) {
                    if !seen.insert(uri.to_owned()) {
                        let visible = collided_uri(up, uri);
                        seen.insert(visible.clone());
                        item["uri"] = Value::String(visible);
                        items.push(item);
                        continue;
                    }
                    notes.push(format!("{index}: {:?}", MergeNote::Listed(uri)));
                }
                items.push(item);
            }
        }
        let mut result = serde_json::Map::new();
        result.insert(field.to_owned(), Value::Array(items));
        if !next.pending.is_empty() {
            result.insert("nextCursor".into(), Value::String(next.encode()));
        }
        (Value::Object(result), notes)
    }

    /// The byte merge gives what the `Value` merge gave (as JSON values) and tells the same.
    fn same_as_before(naming: &Naming, kind: ListKind, results: &[&str]) -> String {
        let (out, notes) = merged(naming, kind, results, true);
        let text = String::from_utf8(out).unwrap_or_else(|e| panic!("not UTF-8: {e}"));
        let got: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON: {e}: {text}"));
        let (want, want_notes) = reference(naming, kind, results);
        assert_eq!(got, want, "{kind:?} {results:?}\n{text}");
        assert_eq!(notes, want_notes, "{kind:?} {results:?}");
        // The `Value` path alone (a shared link's answers) agrees too.
        let (slow, slow_notes) = merged(naming, kind, results, false);
        let slow: Value = serde_json::from_slice(&slow).unwrap_or_default();
        assert_eq!(slow, want, "value path: {kind:?} {results:?}");
        assert_eq!(slow_notes, want_notes);
        text
    }

    #[test]
    fn names_are_prefixed_and_other_bytes_kept() {
        let n = naming(&["a", "b"]);
        let text = same_as_before(
            &n,
            ListKind::Tools,
            &[
                r#"{"tools":[ {"name":"echo" , "description":"say \"hi\"\n\u00e9\/","inputSchema":{"type":"object","x":1.50E+3}} ]}"#,
                r#"{"tools":[{"description":"d","name":"echo"},{"name":"add"}],"nextCursor":"p2"}"#,
            ],
        );
        // The upstream's bytes, escapes and spacing included, with only the name rewritten.
        assert!(text.starts_with(
            r#"{"tools":[{"name":"a__echo" , "description":"say \"hi\"\n\u00e9\/","inputSchema":{"type":"object","x":1.50E+3}},{"description":"d","name":"b__echo"},{"name":"b__add"}],"nextCursor":""#
        ), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        let cursor = ListCursor::decode(v["nextCursor"].as_str().unwrap_or_default());
        assert_eq!(
            cursor.map(|c| c.pending.into_iter().collect::<Vec<_>>()),
            Some(vec![("b".to_owned(), "p2".to_owned())])
        );
    }

    #[test]
    fn escaped_names_keep_their_escapes() {
        let n = naming(&["a", "b"]);
        // A tool name spelled with escapes (decoded, it is a valid name) and a prompt's free text.
        let text = same_as_before(
            &n,
            ListKind::Tools,
            &[r#"{"tools":[{"name":"ec\u0068o"}]}"#, "{}"],
        );
        assert_eq!(text, r#"{"tools":[{"name":"a__ec\u0068o"}]}"#);
        let text = same_as_before(
            &n,
            ListKind::Prompts,
            &[
                r#"{"prompts":[{"name":"Say \"\u00e9\"\t!"}]}"#,
                r#"{"prompts":[{"name":"Say \"é\"\t!"}]}"#,
            ],
        );
        assert_eq!(
            text,
            r#"{"prompts":[{"name":"a__Say \"\u00e9\"\t!"},{"name":"b__Say \"é\"\t!"}]}"#
        );
        // The same tool name, escaped in one upstream and plain in the other, is one name.
        let one = naming(&["only"]);
        let (out, notes) = merged(
            &one,
            ListKind::Tools,
            &[r#"{"tools":[{"name":"x"},{"name":"\u0078","n":2}]}"#],
            true,
        );
        assert_eq!(out, br#"{"tools":[{"name":"x"}]}"#);
        assert_eq!(notes, [format!("0: {:?}", MergeNote::Twice("x"))]);
    }

    #[test]
    fn malformed_entries_and_answers_are_handled_as_before() {
        let n = naming(&["a", "b", "c"]);
        let text = same_as_before(
            &n,
            ListKind::Tools,
            &[
                // No name, a number for a name, not an object, a name that breaks the rules
                // once prefixed: left out.
                r#"{"tools":[{"title":"x"},{"name":7},"echo",null,{"name":"has space"},{"name":"ok"}]}"#,
                // Not an object, no list, a list that is not an array: nothing from them.
                r#"[1,2]"#,
                r#"{"nextCursor":7,"tools":{"name":"x"}}"#,
            ],
        );
        assert_eq!(text, r#"{"tools":[{"name":"a__ok"}]}"#);
        // Resources without a string URI are kept as they are.
        same_as_before(
            &n,
            ListKind::Resources,
            &[
                r#"{"resources":[{"name":"no uri"},{"uri":7},3,{"uri":"x://1"}]}"#,
                "null",
                "{}",
            ],
        );
        // A member given twice, anywhere the merge reads, goes the exact (`Value`) way: the
        // last copy, as serde_json keeps it.
        let text = same_as_before(
            &n,
            ListKind::Tools,
            &[
                r#"{"tools":[{"name":"x","name":"y"}]}"#,
                r#"{"tools":[{"name":"p"}],"tools":[{"name":"q"}]}"#,
                r#"{"tools":[{"name":"r"}],"nextCursor":"1","nextCursor":"2"}"#,
            ],
        );
        assert!(
            text.contains(r#""name":"a__y""#) && text.contains(r#""name":"b__q""#),
            "{text}"
        );
        // Not JSON at all: nothing from that upstream.
        same_as_before(
            &n,
            ListKind::Tools,
            &[r#"{"tools":[{"name":"x"}"#, "", r#"{"tools":[]}"#],
        );
    }

    #[test]
    fn collided_uris_are_rewritten_and_the_first_listing_noted() {
        let n = naming(&["a", "b"]);
        let text = same_as_before(
            &n,
            ListKind::Resources,
            &[
                r#"{"resources":[{"uri":"demo://x y","name":"1"}]}"#,
                r#"{"resources":[{"name":"2","uri":"demo://x\u0020y","size":10},{"uri":"demo://z"}]}"#,
            ],
        );
        assert_eq!(
            text,
            r#"{"resources":[{"uri":"demo://x y","name":"1"},{"name":"2","uri":"mcpgate://b/demo%3A%2F%2Fx%20y","size":10},{"uri":"demo://z"}]}"#
        );
        let (_, notes) = merged(
            &n,
            ListKind::Resources,
            &[r#"{"resources":[{"uri":"u"}]}"#],
            true,
        );
        assert_eq!(notes, [format!("0: {:?}", MergeNote::Listed("u"))]);
    }

    #[test]
    fn cursors_of_every_upstream_with_more_pages() {
        let n = naming(&["a", "b", "c"]);
        let text = same_as_before(
            &n,
            ListKind::ResourceTemplates,
            &[
                r#"{"resourceTemplates":[{"name":"t","uriTemplate":"x://{id}"}],"nextCursor":"c\u0031"}"#,
                r#"{"resourceTemplates":[],"nextCursor":null}"#,
                r#"{"nextCursor":"z"}"#,
            ],
        );
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        let cursor = ListCursor::decode(v["nextCursor"].as_str().unwrap_or_default());
        let mut want = ListCursor::default();
        want.pending.insert("a".into(), "c1".into());
        want.pending.insert("c".into(), "z".into());
        assert_eq!(cursor, Some(want));
        assert_eq!(
            v["resourceTemplates"],
            json!([{"name":"a__t","uriTemplate":"x://{id}"}])
        );
    }

    /// JSON text for one list entry, from pieces that cover what upstreams send and what they
    /// should not: escapes, names that collide or break the rules, members twice, other types.
    fn entry() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            Just(r#""echo""#.to_owned()),
            Just(r#""ec\u0068o""#.to_owned()),
            Just(r#""add""#.to_owned()),
            Just(r#""Say \"hi\" \u00e9""#.to_owned()),
            Just(r#""has space""#.to_owned()),
            Just(format!("\"{}\"", "n".repeat(126))),
            Just("7".to_owned()),
            Just("null".to_owned()),
            Just(r#"{"name":"inner"}"#.to_owned()),
        ];
        let uri = prop_oneof![
            Just(r#""demo://a""#.to_owned()),
            Just(r#""demo:\/\/a""#.to_owned()),
            Just(r#""file:///x y?z""#.to_owned()),
            Just(r#""ü://ß""#.to_owned()),
            Just("3".to_owned()),
        ];
        let other = prop_oneof![
            Just(r#""description":"d \"q\" \n""#.to_owned()),
            Just(
                r#""inputSchema":{"type":"object","properties":{"name":{"type":"string"}}}"#
                    .to_owned()
            ),
            Just(r#""size":1.0e2"#.to_owned()),
            Just(r#""x":[1,{"uri":"no"}],"x":2"#.to_owned()),
        ];
        let member = prop_oneof![
            name.prop_map(|v| format!(r#""name":{v}"#)),
            uri.prop_map(|v| format!(r#""uri":{v}"#)),
            other,
        ];
        prop_oneof![
            8 => prop::collection::vec(member, 0..4).prop_map(|m| format!("{{ {} }}", m.join(" , "))),
            1 => Just("17".to_owned()),
            1 => Just(r#""a string""#.to_owned()),
        ]
    }

    fn result(key: &'static str) -> impl Strategy<Value = String> {
        let cursor = prop_oneof![
            Just(String::new()),
            Just(r#","nextCursor":"p\u0032""#.to_owned()),
            Just(r#","nextCursor":null"#.to_owned()),
            Just(r#","nextCursor":5"#.to_owned()),
        ];
        prop_oneof![
            10 => (prop::collection::vec(entry(), 0..6), cursor)
                .prop_map(move |(e, c)| format!(r#"{{"{key}":[{}]{c}}}"#, e.join(","))),
            1 => Just(r#"{"other":1}"#.to_owned()),
            1 => Just("null".to_owned()),
            1 => Just(format!(r#"{{"{key}":"not a list"}}"#)),
            1 => Just(format!(r#"{{"{key}":[{{"name":"x"}}]"#)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn the_byte_merge_agrees_with_the_value_merge(
            kind in prop_oneof![
                Just(ListKind::Tools),
                Just(ListKind::Prompts),
                Just(ListKind::Resources),
                Just(ListKind::ResourceTemplates),
            ],
            upstreams in 1usize..4,
            seed in prop::collection::vec(any::<u8>(), 3),
            tools in prop::collection::vec(result("tools"), 3),
            prompts in prop::collection::vec(result("prompts"), 3),
            resources in prop::collection::vec(result("resources"), 3),
            templates in prop::collection::vec(result("resourceTemplates"), 3),
        ) {
            let n = naming(&["a", "up-2", "c.3"][..upstreams]);
            let pool = match kind {
                ListKind::Tools => &tools,
                ListKind::Prompts => &prompts,
                ListKind::Resources => &resources,
                ListKind::ResourceTemplates => &templates,
            };
            // Now and then the same answer twice (every name and URI collides).
            let results: Vec<&str> = (0..upstreams)
                .map(|i| pool[if seed[i] % 4 == 0 { 0 } else { i }].as_str())
                .collect();
            same_as_before(&n, kind, &results);
        }
    }
}
