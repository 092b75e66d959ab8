//! MCP list-result filtering: drop refused entries from `tools/list`, `prompts/list`,
//! `resources/list` and `resources/templates/list` results, preserving every other byte.
//!
//! This module owns the rewrite of list results. It does not re-serialise: a validating hand
//! scanner finds each entry's byte range and the filter splices refused entries (and their comma)
//! out of the original bytes, so `nextCursor`, `_meta`, `ttlMs`, unknown fields and whitespace
//! survive untouched, and a list with nothing refused comes out byte-identical.
//!
//! The scanner validates the whole message (UTF-8, JSON grammar, escapes, nesting) because the
//! output must be valid JSON and because a client must see the same entries the filter judged:
//! keys and names are compared after escape decoding, and an entry whose key is missing, not a
//! string or duplicated is removed (fail closed). It skips uninteresting values (`inputSchema`)
//! eight bytes at a time inside strings, which is where list results spend their bytes.

use std::ops::Range;

use crate::limits::MAX_JSON_DEPTH;

/// Which list a result holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    pub const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::ResourceTemplates,
    ];

    /// Position in [`ListKind::ALL`].
    pub fn index(self) -> usize {
        match self {
            ListKind::Tools => 0,
            ListKind::Prompts => 1,
            ListKind::Resources => 2,
            ListKind::ResourceTemplates => 3,
        }
    }

    /// The list kind a request method returns, if it is one of the four list methods.
    pub fn from_method(m: &str) -> Option<Self> {
        match m {
            "tools/list" => Some(ListKind::Tools),
            "prompts/list" => Some(ListKind::Prompts),
            "resources/list" => Some(ListKind::Resources),
            "resources/templates/list" => Some(ListKind::ResourceTemplates),
            _ => None,
        }
    }
    /// The request method that returns this list.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
        }
    }
    /// The member of `result` holding the entries.
    pub fn list_key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
        }
    }
    /// The member of an entry the predicate judges.
    pub fn entry_key(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
        }
    }
}

/// A set of the four lists (what a result carries, or which lists to filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ListSet(u8);

impl ListSet {
    pub const NONE: ListSet = ListSet(0);
    pub const ALL: ListSet = ListSet(0b1111);

    pub fn of(kind: ListKind) -> ListSet {
        ListSet(1 << kind.index())
    }
    pub fn with(self, kind: ListKind) -> ListSet {
        ListSet(self.0 | 1 << kind.index())
    }
    pub fn contains(self, kind: ListKind) -> bool {
        self.0 & (1 << kind.index()) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The kinds in the set, in [`ListKind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = ListKind> {
        ListKind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
    /// The kind whose `result` member is named `key` (escapes decoded), if any.
    pub fn kind_of_key(key: &str) -> Option<ListKind> {
        ListKind::ALL.into_iter().find(|k| k.list_key() == key)
    }
}

/// How many entries survived. `removed` includes malformed entries removed to fail closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FilterOutcome {
    pub kept: usize,
    pub removed: usize,
}

/// Per list found in the result, how many entries survived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListsOutcome {
    outcomes: [Option<FilterOutcome>; 4],
}

impl ListsOutcome {
    /// The outcome for `kind`, `None` when the result did not carry that list.
    pub fn get(&self, kind: ListKind) -> Option<FilterOutcome> {
        self.outcomes.get(kind.index()).copied().flatten()
    }
    /// The lists the result carried.
    pub fn found(&self) -> ListSet {
        ListKind::ALL
            .into_iter()
            .filter(|k| self.get(*k).is_some())
            .fold(ListSet::NONE, ListSet::with)
    }
    pub fn removed(&self) -> usize {
        self.outcomes.iter().flatten().map(|o| o.removed).sum()
    }
}

/// Why a message could not be filtered. Nothing is written to `out` on error; the gateway must
/// not forward the unfiltered message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("list result is not valid UTF-8")]
    InvalidUtf8,
    #[error("list result is not valid JSON (at byte {offset})")]
    InvalidJson { offset: usize },
    #[error("list result nests deeper than {MAX_JSON_DEPTH}")]
    TooDeep,
    #[error("message is not a JSON object")]
    NotAnObject,
    #[error("duplicate \"{0}\" member")]
    DuplicateKey(&'static str),
    #[error("\"{0}\" is not an array")]
    ListNotArray(&'static str),
}

impl FilterError {
    /// The upstream sent something the gateway cannot safely relay.
    pub fn http_status(&self) -> u16 {
        502
    }
    /// JSON-RPC code when reported in-band.
    pub fn jsonrpc_code(&self) -> i64 {
        -32603
    }
}

#[derive(Debug, Clone)]
struct Entry {
    range: Range<usize>,
    keep: bool,
    kind: ListKind,
    /// Which list array of the message the entry belongs to (0.. in message order).
    group: u8,
}

/// Reusable scratch for filtering (one per worker).
#[derive(Debug, Default)]
pub struct ListFilter {
    entries: Vec<Entry>,
    decoded: String,
}

impl ListFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// `message` is a whole JSON-RPC response (bare body or one SSE event's data). Appends the
    /// filtered message to `out`; if nothing is removed `out` gets the input byte for byte.
    /// A message without `result` (an error response) or without the list passes unchanged.
    pub fn filter(
        &mut self,
        message: &[u8],
        kind: ListKind,
        mut keep: impl FnMut(&str) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<FilterOutcome, FilterError> {
        self.filter_lists(message, ListSet::of(kind), |_, key| keep(key), out)
            .map(|o| o.get(kind).unwrap_or_default())
    }

    /// Like [`ListFilter::filter`], for every list of `kinds` the result carries, in one pass:
    /// `keep` is asked with the entry's list. What a response carries decides what is filtered,
    /// not which request it answers, so a response the gateway cannot pair with its request is
    /// filtered all the same.
    pub fn filter_lists(
        &mut self,
        message: &[u8],
        kinds: ListSet,
        keep: impl FnMut(ListKind, &str) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<ListsOutcome, FilterError> {
        let (outcome, removed) = self.scan(message, kinds, keep, None)?;
        if removed == 0 {
            out.extend_from_slice(message);
        } else {
            splice(message, &self.entries, out);
        }
        Ok(outcome)
    }

    /// [`ListFilter::filter_lists`] for a message that may be anything a server sends (one SSE
    /// event's data), in the same single pass: the message's envelope is read as well, and only
    /// a plainly written JSON-RPC response is filtered — one object with exactly one
    /// `"jsonrpc": "2.0"`, one `id` that is a string or an integer of at most 18 digits, one
    /// `result`, no `method`, `params` or `error`, and no number the classifier might read
    /// differently (see [`Scan::long_number`]). For anything else the answer is
    /// [`ResponseFilter::NotPlain`] and nothing is written: the caller asks the classifier,
    /// which decides as it always did. On a plain response it agrees with the classifier (a
    /// [`crate::jsonrpc::Kind::Response`] carrying exactly the lists found) and with
    /// `filter_lists` (the same bytes), which the tests below check on generated messages.
    ///
    /// `out` gets the filtered message only when an entry was removed; otherwise the message is
    /// its own filtered form and nothing is copied. Errors are `filter_lists`' (nothing written).
    pub fn filter_response(
        &mut self,
        message: &[u8],
        kinds: ListSet,
        keep: impl FnMut(ListKind, &str) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<ResponseFilter, FilterError> {
        let mut envelope = Envelope::default();
        let scanned = self.scan(message, kinds, keep, Some(&mut envelope));
        if envelope.not_plain {
            return Ok(ResponseFilter::NotPlain);
        }
        let (lists, removed) = scanned?;
        if !(envelope.version && envelope.id && envelope.result) || envelope.long_number {
            return Ok(ResponseFilter::NotPlain);
        }
        if removed > 0 {
            splice(message, &self.entries, out);
        }
        Ok(ResponseFilter::Response {
            lists,
            changed: removed > 0,
        })
    }

    /// The validating pass both filters share: judges every entry of every list of `kinds` in
    /// `result` (kept in `self.entries`); with `envelope`, reads the message's JSON-RPC envelope
    /// too and stops early (`envelope.not_plain`) at the first member that makes it something
    /// other than a plain response. Returns the outcome and how many entries go.
    fn scan(
        &mut self,
        message: &[u8],
        kinds: ListSet,
        mut keep: impl FnMut(ListKind, &str) -> bool,
        mut envelope: Option<&mut Envelope>,
    ) -> Result<(ListsOutcome, usize), FilterError> {
        self.entries.clear();
        if std::str::from_utf8(message).is_err() {
            return Err(FilterError::InvalidUtf8);
        }
        let mut s = Scan::new(message, &mut self.decoded);
        s.ws();
        if s.peek() != Some(b'{') {
            return Err(FilterError::NotAnObject);
        }
        let mut seen_result = false;
        let mut seen = ListSet::NONE;
        let mut group = 0u8;
        s.object(1, |s, key_raw, depth| {
            let member = s.member(&key_raw)?;
            if let (Some(env), false) = (envelope.as_deref_mut(), member == Member::Result) {
                return env.member(s, member, depth);
            }
            if member == Member::Result {
                if std::mem::replace(&mut seen_result, true) {
                    return Err(FilterError::DuplicateKey("result"));
                }
                if s.peek() == Some(b'{') {
                    return s.object(depth + 1, |s, key_raw, depth| {
                        let Some(kind) = s.list_key(&key_raw, kinds)? else {
                            return s.skip_value(depth + 1);
                        };
                        if seen.contains(kind) {
                            return Err(FilterError::DuplicateKey(kind.list_key()));
                        }
                        seen = seen.with(kind);
                        if s.peek() != Some(b'[') {
                            return Err(FilterError::ListNotArray(kind.list_key()));
                        }
                        let g = group;
                        group = group.wrapping_add(1);
                        s.entries(depth + 1, kind, g, &mut keep, &mut self.entries)
                    });
                }
            }
            s.skip_value(depth + 1)
        })?;
        s.ws();
        if s.pos != message.len() {
            return Err(s.invalid());
        }
        if let Some(env) = envelope {
            env.result = seen_result;
            env.long_number = s.long_number;
        }
        let mut outcome = ListsOutcome::default();
        for kind in seen.iter() {
            if let Some(slot) = outcome.outcomes.get_mut(kind.index()) {
                *slot = Some(FilterOutcome::default());
            }
        }
        let mut removed = 0;
        for e in &self.entries {
            if let Some(Some(o)) = outcome.outcomes.get_mut(e.kind.index()) {
                if e.keep {
                    o.kept += 1;
                } else {
                    o.removed += 1;
                    removed += 1;
                }
            }
        }
        Ok((outcome, removed))
    }
}

/// What [`ListFilter::filter_response`] made of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFilter {
    /// Not plainly a JSON-RPC response (a request, a notification, an error answer, a batch, an
    /// envelope member twice or of an odd type…): nothing was written; ask the classifier.
    NotPlain,
    /// A response: the lists its result carries, and whether entries were removed (then `out`
    /// holds the filtered message; else nothing was written).
    Response { lists: ListsOutcome, changed: bool },
}

/// The members of a message's top level the filter tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    JsonRpc,
    Id,
    Result,
    /// `method`, `params`, `error`: not a (plain) response.
    Other,
    Unknown,
}

/// The envelope of a message as [`ListFilter::filter_response`] reads it.
#[derive(Debug, Default)]
struct Envelope {
    version: bool,
    id: bool,
    result: bool,
    long_number: bool,
    /// Something makes it other than a plain response: the scan stopped there.
    not_plain: bool,
}

impl Envelope {
    /// One top-level member other than `result`, its value at `s.pos`; consumes the value. A
    /// member that makes the message other than a plain response stops the scan (an error the
    /// caller ignores once `not_plain` is set).
    fn member(
        &mut self,
        s: &mut Scan<'_, '_>,
        member: Member,
        depth: usize,
    ) -> Result<(), FilterError> {
        let plain = match member {
            Member::JsonRpc if !self.version => {
                self.version = true;
                s.peek() == Some(b'"') && {
                    let raw = s.string()?;
                    s.text(&raw)? == "2.0"
                }
            }
            Member::Id if !self.id => {
                self.id = true;
                match s.peek() {
                    Some(b'"') => s.string().is_ok(),
                    Some(b'-' | b'0'..=b'9') => {
                        let start = s.pos;
                        s.number()?;
                        let literal = s.b.get(start..s.pos).unwrap_or_default();
                        let digits = literal.strip_prefix(b"-").unwrap_or(literal);
                        (1..=18).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
                    }
                    _ => false,
                }
            }
            Member::Unknown => return s.skip_value(depth + 1),
            // A second `jsonrpc` or `id`, a request's or an error's member.
            _ => false,
        };
        if plain {
            Ok(())
        } else {
            self.not_plain = true;
            Err(s.invalid())
        }
    }
}

/// Writes `message` without the refused entries. Each list array is spliced on its own: the
/// bytes before its first entry, each kept entry preceded by the separator that followed the
/// previous kept one, the bytes after its last entry; what lies between arrays is copied as is.
fn splice(message: &[u8], entries: &[Entry], out: &mut Vec<u8>) {
    let bytes = |r: Range<usize>| message.get(r).unwrap_or_default();
    out.reserve(message.len());
    let mut cursor = 0;
    for group in entries.chunk_by(|a, b| a.group == b.group) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        out.extend_from_slice(bytes(cursor..first.range.start));
        let mut previous_kept: Option<usize> = None;
        for (i, e) in group.iter().enumerate() {
            if !e.keep {
                continue;
            }
            if let Some(p) = previous_kept {
                if let (Some(prev), Some(after_prev)) = (group.get(p), group.get(p + 1)) {
                    out.extend_from_slice(bytes(prev.range.end..after_prev.range.start));
                }
            }
            out.extend_from_slice(bytes(e.range.clone()));
            previous_kept = Some(i);
        }
        cursor = last.range.end;
    }
    out.extend_from_slice(bytes(cursor..message.len()));
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bytes that end a run of plain string content: `"`, `\` or a control character. Only the
/// lowest flagged byte is exact, which is the one used.
#[inline(always)]
fn string_special_mask(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    zero(w ^ (LO * u64::from(b'"')))
        | zero(w ^ (LO * u64::from(b'\\')))
        | (w.wrapping_sub(LO * 0x20) & !w & HI)
}

/// A raw string's content range and whether it holds escapes.
#[derive(Clone)]
pub(crate) struct RawStr {
    pub(crate) range: Range<usize>,
    pub(crate) escaped: bool,
}

/// The validating scanner, shared with `crate::list_answer` (the list cache's byte-level reads).
pub(crate) struct Scan<'a, 'd> {
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) decoded: &'d mut String,
    /// A number was seen that simd-json (the classifier) might read differently or refuse: more
    /// than 17 significant digits or an exponent of three digits or more. Valid JSON all the
    /// same; only [`ListFilter::filter_response`] cares (it then leaves the message to the
    /// classifier).
    pub(crate) long_number: bool,
}

impl<'a, 'd> Scan<'a, 'd> {
    pub(crate) fn new(b: &'a [u8], decoded: &'d mut String) -> Self {
        Scan {
            b,
            pos: 0,
            decoded,
            long_number: false,
        }
    }
    #[inline(always)]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    #[cold]
    pub(crate) fn invalid(&self) -> FilterError {
        FilterError::InvalidJson { offset: self.pos }
    }

    #[inline(always)]
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline(always)]
    pub(crate) fn eat(&mut self, c: u8) -> Result<(), FilterError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.invalid())
        }
    }

    /// Scans a string starting at its opening quote; validates escapes and control characters.
    pub(crate) fn string(&mut self) -> Result<RawStr, FilterError> {
        self.eat(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            while let Some(chunk) = self.b.get(self.pos..self.pos + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let mask = string_special_mask(u64::from_le_bytes(word));
                if mask != 0 {
                    self.pos += (mask.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            match self.peek() {
                Some(b'"') => {
                    let range = start..self.pos;
                    self.pos += 1;
                    return Ok(RawStr { range, escaped });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                Some(0..=0x1f) | None => return Err(self.invalid()),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Validates one escape at `pos` (the backslash), including surrogate pairing.
    fn escape(&mut self) -> Result<(), FilterError> {
        match self.b.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let unit = self.hex4(self.pos + 2)?;
                self.pos += 6;
                match unit {
                    0xD800..=0xDBFF => {
                        if self.b.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(self.invalid());
                        }
                        let low = self.hex4(self.pos + 2)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.invalid());
                        }
                        self.pos += 6;
                        Ok(())
                    }
                    0xDC00..=0xDFFF => Err(self.invalid()),
                    _ => Ok(()),
                }
            }
            _ => Err(self.invalid()),
        }
    }

    fn hex4(&self, at: usize) -> Result<u32, FilterError> {
        let digits = self.b.get(at..at + 4).ok_or_else(|| self.invalid())?;
        digits.iter().try_fold(0u32, |acc, &d| {
            let v = (d as char).to_digit(16).ok_or_else(|| self.invalid())?;
            Ok(acc * 16 + v)
        })
    }

    /// The string's value with escapes decoded (borrowed when it has none).
    pub(crate) fn text(&mut self, s: &RawStr) -> Result<&str, FilterError> {
        let raw = self.b.get(s.range.clone()).unwrap_or_default();
        if !s.escaped {
            return std::str::from_utf8(raw).map_err(|_| FilterError::InvalidUtf8);
        }
        self.decoded.clear();
        decode_escaped(raw, self.decoded).ok_or(FilterError::InvalidJson {
            offset: s.range.start,
        })?;
        Ok(self.decoded.as_str())
    }

    /// The list of `kinds` this `result` member key names (escapes decoded), if any.
    fn list_key(&mut self, key: &RawStr, kinds: ListSet) -> Result<Option<ListKind>, FilterError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let text = if key.escaped {
            self.text(key)?
        } else {
            std::str::from_utf8(self.b.get(key.range.clone()).unwrap_or_default())
                .map_err(|_| FilterError::InvalidUtf8)?
        };
        Ok(ListSet::kind_of_key(text).filter(|k| kinds.contains(*k)))
    }

    /// Which top-level member `key` names (escapes decoded).
    fn member(&mut self, key: &RawStr) -> Result<Member, FilterError> {
        let text = if key.escaped {
            self.text(key)?.as_bytes()
        } else {
            self.b.get(key.range.clone()).unwrap_or_default()
        };
        Ok(match text {
            b"result" => Member::Result,
            b"jsonrpc" => Member::JsonRpc,
            b"id" => Member::Id,
            b"method" | b"params" | b"error" => Member::Other,
            _ => Member::Unknown,
        })
    }

    pub(crate) fn key_is(&mut self, key: &RawStr, name: &str) -> Result<bool, FilterError> {
        if !key.escaped {
            return Ok(self.b.get(key.range.clone()) == Some(name.as_bytes()));
        }
        Ok(self.text(key)? == name)
    }

    /// Walks an object at `pos`, calling `member` with each key (value at `pos`, whitespace
    /// skipped); `member` must consume the value.
    pub(crate) fn object(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, RawStr, usize) -> Result<(), FilterError>,
    ) -> Result<(), FilterError> {
        if depth > MAX_JSON_DEPTH {
            return Err(FilterError::TooDeep);
        }
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            member(self, key, depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.invalid()),
            }
        }
    }

    /// Walks an array at `pos`, calling `element` for each element (at `pos`, whitespace
    /// skipped); `element` must consume it.
    pub(crate) fn array(
        &mut self,
        depth: usize,
        mut element: impl FnMut(&mut Self, usize) -> Result<(), FilterError>,
    ) -> Result<(), FilterError> {
        if depth > MAX_JSON_DEPTH {
            return Err(FilterError::TooDeep);
        }
        self.eat(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            element(self, depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.invalid()),
            }
        }
    }

    pub(crate) fn skip_value(&mut self, depth: usize) -> Result<(), FilterError> {
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{') => self.object(depth, |s, _, depth| s.skip_value(depth + 1)),
            Some(b'[') => self.array(depth, |s, depth| s.skip_value(depth + 1)),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.invalid()),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), FilterError> {
        if self.b.get(self.pos..self.pos + lit.len()) == Some(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.invalid())
        }
    }

    pub(crate) fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), FilterError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let mut significant = match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                1
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.invalid()),
        };
        if self.peek() == Some(b'.') {
            self.pos += 1;
            match self.digits() {
                0 => return Err(self.invalid()),
                n => significant += n,
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            match self.digits() {
                0 => return Err(self.invalid()),
                n if n > 2 => self.long_number = true,
                _ => {}
            }
        }
        if significant > 17 {
            self.long_number = true;
        }
        Ok(())
    }

    /// Walks the list array, judging each entry.
    fn entries(
        &mut self,
        depth: usize,
        kind: ListKind,
        group: u8,
        keep: &mut impl FnMut(ListKind, &str) -> bool,
        out: &mut Vec<Entry>,
    ) -> Result<(), FilterError> {
        self.array(depth, |s, depth| {
            let start = s.pos;
            let keep_it = s.entry(depth + 1, kind, keep)?;
            out.push(Entry {
                range: start..s.pos,
                keep: keep_it,
                kind,
                group,
            });
            Ok(())
        })
    }

    /// Consumes one entry; returns whether it stays.
    fn entry(
        &mut self,
        depth: usize,
        kind: ListKind,
        keep: &mut impl FnMut(ListKind, &str) -> bool,
    ) -> Result<bool, FilterError> {
        if self.peek() != Some(b'{') {
            self.skip_value(depth)?;
            return Ok(false);
        }
        let entry_key = kind.entry_key();
        let mut found: Option<RawStr> = None;
        let mut usable = true;
        self.object(depth, |s, key, depth| {
            if s.key_is(&key, entry_key)? {
                if found.is_some() || s.peek() != Some(b'"') {
                    usable = false;
                }
                if s.peek() == Some(b'"') {
                    found = Some(s.string()?);
                    return Ok(());
                }
            }
            s.skip_value(depth + 1)
        })?;
        match found {
            Some(name) if usable => Ok(keep(kind, self.text(&name)?)),
            _ => Ok(false),
        }
    }
}

/// Decodes a validated string body with escapes. `None` on a malformed escape.
pub(crate) fn decode_escaped(raw: &[u8], out: &mut String) -> Option<()> {
    let mut i = 0;
    while i < raw.len() {
        let next = memchr::memchr(b'\\', raw.get(i..)?).map_or(raw.len(), |p| i + p);
        out.push_str(std::str::from_utf8(raw.get(i..next)?).ok()?);
        if next == raw.len() {
            break;
        }
        let c = match raw.get(next + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(raw.get(next + 2..next + 6)?)?;
                if (0xD800..0xDC00).contains(&hi) {
                    if raw.get(next + 6..next + 8)? != b"\\u" {
                        return None;
                    }
                    let lo = hex4(raw.get(next + 8..next + 12)?)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    out.push(char::from_u32(
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00),
                    )?);
                    i = next + 12;
                    continue;
                }
                out.push(char::from_u32(hi)?);
                i = next + 6;
                continue;
            }
            _ => return None,
        };
        out.push(c);
        i = next + 2;
    }
    Some(())
}

fn hex4(d: &[u8]) -> Option<u32> {
    d.iter()
        .try_fold(0u32, |acc, &c| Some(acc * 16 + (c as char).to_digit(16)?))
}
