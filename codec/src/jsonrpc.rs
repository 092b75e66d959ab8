//! JSON-RPC 2.0 / MCP message classification on simd-json's tape with reused buffers.
//!
//! This module owns the decision "what is this message": kind, raw `id`, method, the target the
//! ACL judges, the progress token and an error's code. Its output feeds a security decision, so
//! it reads the message exactly as the upstream will: escapes decoded, duplicate keys among the
//! fields that matter refused (parsers disagree on which copy wins), invalid UTF-8 and excessive
//! nesting refused, envelope rules of JSON-RPC 2.0 enforced.
//!
//! simd-json parses a scratch copy of the input (it unescapes strings in place). Raw byte ranges
//! (`id`, `progressToken`, batch elements) are found in the caller's unmodified input through
//! simd-json's structural index: every tape node starts at a structural character that is not
//! `}` `]` `:` or `,`, in order, so the n-th such structural is where the n-th node starts.

use std::ops::Range;

use simd_json::{Buffers, Node, StaticNode, Tape};
use smallvec::SmallVec;

use crate::filter::ListSet;
use crate::limits::{MAX_BATCH_LEN, MAX_JSON_DEPTH};

/// What a message is, by the JSON-RPC 2.0 envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
    ErrorResponse,
}

/// The name the ACL judges, escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    None,
    /// `params.name` of `tools/call` / `prompts/get`.
    Name(String),
    /// `params.uri` of `resources/read`, `resources/subscribe`, `resources/unsubscribe`,
    /// `notifications/resources/updated`.
    Uri(String),
    /// `params.ref.name` of `completion/complete` with `ref.type` = `ref/prompt`.
    PromptRef(String),
    /// `params.ref.uri` of `completion/complete` with `ref.type` = `ref/resource`.
    ResourceRef(String),
}

impl Target {
    /// The target's name or URI, if any.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Target::None => None,
            Target::Name(s) | Target::Uri(s) | Target::PromptRef(s) | Target::ResourceRef(s) => {
                Some(s)
            }
        }
    }
}

/// One classified message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: Kind,
    /// Exact raw JSON of `id` in the input (`"1"` and `1` differ). `None` when absent or `null`
    /// (only error responses may have those).
    pub id: Option<Range<usize>>,
    /// `method`, escapes decoded (requests and notifications).
    pub method: Option<String>,
    pub target: Target,
    /// Raw JSON of `params._meta.progressToken`.
    pub progress_token: Option<Range<usize>>,
    /// `error.code` of an error response.
    pub error_code: Option<i64>,
    /// A response whose `result` is an object with `"isError": true`: MCP's way for a tool to
    /// report that it failed (a `CallToolResult`), which JSON-RPC sees as a success.
    pub tool_error: bool,
    /// The lists (`tools`, `prompts`, `resources`, `resourceTemplates`) a response's `result`
    /// carries, whatever request it answers: what an ACL must filter.
    pub lists: ListSet,
    /// This message's bytes in the input (the element, for a batch).
    pub span: Range<usize>,
}

impl Message {
    /// The raw `id` bytes, sliced from the input this message was classified from.
    pub fn id_bytes<'b>(&self, input: &'b [u8]) -> Option<&'b [u8]> {
        self.id.clone().and_then(|r| input.get(r))
    }
    /// The raw `progressToken` bytes.
    pub fn progress_token_bytes<'b>(&self, input: &'b [u8]) -> Option<&'b [u8]> {
        self.progress_token.clone().and_then(|r| input.get(r))
    }
}

/// A single message or a 2025-03-26 batch.
// Small batches stay inline: boxing would allocate on every request to save stack space only.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    Single(Message),
    Batch(SmallVec<[Message; 4]>),
}

impl Classified {
    pub fn messages(&self) -> &[Message] {
        match self {
            Classified::Single(m) => std::slice::from_ref(m),
            Classified::Batch(v) => v,
        }
    }
}

/// Why a message was refused. The text is the JSON-RPC error message to send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonRpcError {
    /// -32700: not JSON, or not UTF-8.
    #[error("{0}")]
    Parse(&'static str),
    /// -32600: JSON, but not a valid JSON-RPC message (or one the gateway refuses to judge).
    #[error("{0}")]
    InvalidRequest(&'static str),
}

impl JsonRpcError {
    pub fn code(&self) -> i64 {
        match self {
            JsonRpcError::Parse(_) => -32700,
            JsonRpcError::InvalidRequest(_) => -32600,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            JsonRpcError::Parse(m) | JsonRpcError::InvalidRequest(m) => m,
        }
    }
    /// HTTP status for a request body refused this way.
    pub fn http_status(&self) -> u16 {
        400
    }
}

const INTERNAL: JsonRpcError = JsonRpcError::Parse("Parse error: inconsistent parse");

/// Owns simd-json's buffers, reused across calls (one per worker).
pub struct Classifier {
    scratch: Vec<u8>,
    buffers: Buffers,
    tape: Tape<'static>,
    /// For each tape node, the index of its first structural character.
    node_structural: Vec<u32>,
}

impl Default for Classifier {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier").finish_non_exhaustive()
    }
}

impl Classifier {
    pub fn new() -> Self {
        Self {
            scratch: Vec::with_capacity(1024),
            buffers: Buffers::with_max_depth(1024, MAX_JSON_DEPTH),
            tape: Tape(Vec::with_capacity(128)),
            node_structural: Vec::with_capacity(128),
        }
    }

    /// Classify one message or a batch. `input` is copied into an internal scratch buffer
    /// (simd-json parses in place), never mutated.
    pub fn classify(&mut self, input: &[u8]) -> Result<Classified, JsonRpcError> {
        if u32::try_from(input.len()).is_err() {
            return Err(JsonRpcError::Parse("Parse error: message too large"));
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(input);
        self.scratch
            .resize(input.len() + simd_json::INPUT_PADDING, b' ');
        let mut tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let parsed = simd_json::fill_tape_padded(
            &mut self.scratch,
            input.len(),
            &mut self.buffers,
            &mut tape,
        );
        let result = match parsed {
            Err(e) => Err(map_parse_error(e.error())),
            Ok(()) => {
                index_nodes(
                    input,
                    self.buffers.structural_indexes(),
                    &mut self.node_structural,
                );
                let doc = Doc {
                    input,
                    tape: &tape.0,
                    structurals: self.buffers.structural_indexes(),
                    node_structural: &self.node_structural,
                };
                if self.node_structural.len() == tape.0.len() {
                    doc.classify_root()
                } else {
                    Err(INTERNAL)
                }
            }
        };
        self.tape = tape.reset();
        if input.len() > RETAIN_MAX_INPUT {
            // A worker's classifier lives as long as the worker: one 13 MB body must not pin
            // 13 MB of scratch (and its structural index) in every worker for good.
            self.release();
        }
        result
    }

    /// Gives the scratch buffers back, keeping what a typical message needs.
    fn release(&mut self) {
        *self = Classifier::new();
    }
}

/// Inputs up to this size leave the classifier's scratch as they grew it (reused by the next
/// message); a larger one releases it afterwards.
const RETAIN_MAX_INPUT: usize = 256 * 1024;

fn map_parse_error(e: &simd_json::ErrorType) -> JsonRpcError {
    use simd_json::ErrorType as E;
    match e {
        E::InvalidUtf8 => JsonRpcError::Parse("Parse error: invalid UTF-8"),
        E::DepthLimitExceeded => JsonRpcError::InvalidRequest("Invalid Request: nesting too deep"),
        E::InvalidEscape | E::InvalidUnicodeEscape | E::InvalidUnicodeCodepoint => {
            JsonRpcError::Parse("Parse error: invalid string escape")
        }
        E::Eof => JsonRpcError::Parse("Parse error: unexpected end of input"),
        _ => JsonRpcError::Parse("Parse error: invalid JSON"),
    }
}

fn index_nodes(input: &[u8], structurals: &[u32], out: &mut Vec<u32>) {
    out.clear();
    for (k, &off) in structurals.iter().enumerate() {
        match input.get(off as usize) {
            None => break,
            Some(b'}' | b']' | b':' | b',') => {}
            Some(_) => out.push(k as u32),
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A parsed document: the tape plus the way back to the original bytes.
struct Doc<'a, 'de> {
    input: &'a [u8],
    tape: &'a [Node<'de>],
    structurals: &'a [u32],
    node_structural: &'a [u32],
}

/// Members of an object: (key, value node index) pairs.
struct Members<'a, 'de> {
    tape: &'a [Node<'de>],
    next: usize,
    left: usize,
}

impl<'a, 'de> Iterator for Members<'a, 'de> {
    type Item = Result<(&'de str, usize), JsonRpcError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let key = match self.tape.get(self.next) {
            Some(Node::String(k)) => *k,
            _ => return Some(Err(INTERNAL)),
        };
        let value = self.next + 1;
        match self.tape.get(value) {
            Some(node) => {
                self.next = value + node_size(node);
                Some(Ok((key, value)))
            }
            None => Some(Err(INTERNAL)),
        }
    }
}

fn node_size(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

/// Records a member's value index, refusing a second occurrence.
fn once(slot: &mut Option<usize>, value: usize, dup: &'static str) -> Result<(), JsonRpcError> {
    if slot.replace(value).is_some() {
        Err(JsonRpcError::InvalidRequest(dup))
    } else {
        Ok(())
    }
}

impl<'a, 'de> Doc<'a, 'de> {
    fn node(&self, i: usize) -> Result<Node<'de>, JsonRpcError> {
        self.tape.get(i).copied().ok_or(INTERNAL)
    }

    fn members(&self, obj: usize) -> Result<Members<'a, 'de>, JsonRpcError> {
        match self.node(obj)? {
            Node::Object { len, .. } => Ok(Members {
                tape: self.tape,
                next: obj + 1,
                left: len,
            }),
            _ => Err(INTERNAL),
        }
    }

    fn offset_of_structural(&self, k: usize) -> Result<usize, JsonRpcError> {
        self.structurals.get(k).map(|&o| o as usize).ok_or(INTERNAL)
    }

    fn structural_of(&self, node: usize) -> Result<usize, JsonRpcError> {
        self.node_structural
            .get(node)
            .map(|&k| k as usize)
            .ok_or(INTERNAL)
    }

    /// Raw bytes of a scalar member value: from its first byte to the next structural, less
    /// trailing whitespace (a scalar is always followed by `,` `}` or `]` inside an object).
    fn scalar_range(&self, node: usize) -> Result<Range<usize>, JsonRpcError> {
        let k = self.structural_of(node)?;
        let start = self.offset_of_structural(k)?;
        let mut end = self.offset_of_structural(k + 1)?.min(self.input.len());
        while end > start && self.input.get(end - 1).is_some_and(|&b| is_ws(b)) {
            end -= 1;
        }
        Ok(start..end)
    }

    /// Byte range of the last real structural character (the root's closing bracket).
    fn last_structural(&self) -> Result<usize, JsonRpcError> {
        let len = self.input.len();
        self.structurals
            .iter()
            .rposition(|&o| (o as usize) < len)
            .ok_or(INTERNAL)
    }

    fn classify_root(&self) -> Result<Classified, JsonRpcError> {
        match self.node(0)? {
            Node::Object { .. } => {
                let start = self.offset_of_structural(self.structural_of(0)?)?;
                let end = self.offset_of_structural(self.last_structural()?)? + 1;
                self.classify_object(0, start..end).map(Classified::Single)
            }
            Node::Array { len, .. } => {
                if len == 0 {
                    return Err(JsonRpcError::InvalidRequest("Invalid Request: empty batch"));
                }
                if len > MAX_BATCH_LEN {
                    return Err(JsonRpcError::InvalidRequest(
                        "Invalid Request: batch too long",
                    ));
                }
                let closing_bracket = self.last_structural()?;
                let mut out = SmallVec::with_capacity(len);
                let mut el = 1;
                for n in 0..len {
                    let node = self.node(el)?;
                    if !matches!(node, Node::Object { .. }) {
                        return Err(JsonRpcError::InvalidRequest(
                            "Invalid Request: batch element is not an object",
                        ));
                    }
                    let next = el + node_size(&node);
                    // The token after the element: the `,` before the next element, or `]`.
                    let after = if n + 1 < len {
                        self.structural_of(next)?.checked_sub(1).ok_or(INTERNAL)?
                    } else {
                        closing_bracket
                    };
                    let close = self.offset_of_structural(after.checked_sub(1).ok_or(INTERNAL)?)?;
                    if self.input.get(close) != Some(&b'}') {
                        return Err(INTERNAL);
                    }
                    let start = self.offset_of_structural(self.structural_of(el)?)?;
                    out.push(self.classify_object(el, start..close + 1)?);
                    el = next;
                }
                Ok(Classified::Batch(out))
            }
            _ => Err(JsonRpcError::InvalidRequest(
                "Invalid Request: message is not an object",
            )),
        }
    }

    fn classify_object(&self, obj: usize, span: Range<usize>) -> Result<Message, JsonRpcError> {
        let (mut jsonrpc, mut id, mut method, mut params, mut result, mut error) =
            (None, None, None, None, None, None);
        for member in self.members(obj)? {
            let (key, value) = member?;
            match key {
                "jsonrpc" => once(
                    &mut jsonrpc,
                    value,
                    "Invalid Request: duplicate \"jsonrpc\"",
                )?,
                "id" => once(&mut id, value, "Invalid Request: duplicate \"id\"")?,
                "method" => once(&mut method, value, "Invalid Request: duplicate \"method\"")?,
                "params" => once(&mut params, value, "Invalid Request: duplicate \"params\"")?,
                "result" => once(&mut result, value, "Invalid Request: duplicate \"result\"")?,
                "error" => once(&mut error, value, "Invalid Request: duplicate \"error\"")?,
                _ => {}
            }
        }
        match jsonrpc.map(|v| self.node(v)).transpose()? {
            Some(Node::String("2.0")) => {}
            None => {
                return Err(JsonRpcError::InvalidRequest(
                    "Invalid Request: missing \"jsonrpc\"",
                ))
            }
            Some(_) => {
                return Err(JsonRpcError::InvalidRequest(
                    "Invalid Request: \"jsonrpc\" must be \"2.0\"",
                ))
            }
        }
        let id_raw = match id {
            None => None,
            Some(v) => match self.node(v)? {
                Node::String(_) | Node::Static(StaticNode::I64(_) | StaticNode::U64(_)) => {
                    Some(self.scalar_range(v)?)
                }
                Node::Static(StaticNode::Null) => None,
                _ => {
                    return Err(JsonRpcError::InvalidRequest(
                        "Invalid Request: \"id\" must be a string or an integer",
                    ))
                }
            },
        };
        let id_is_null = id.is_some() && id_raw.is_none();
        let mut msg = Message {
            kind: Kind::Request,
            id: id_raw,
            method: None,
            target: Target::None,
            progress_token: None,
            error_code: None,
            tool_error: false,
            lists: ListSet::NONE,
            span,
        };
        if let Some(m) = method {
            let Node::String(name) = self.node(m)? else {
                return Err(JsonRpcError::InvalidRequest(
                    "Invalid Request: \"method\" must be a string",
                ));
            };
            if result.is_some() || error.is_some() {
                return Err(JsonRpcError::InvalidRequest(
                    "Invalid Request: a request cannot carry \"result\" or \"error\"",
                ));
            }
            if id_is_null {
                return Err(JsonRpcError::InvalidRequest(
                    "Invalid Request: a request \"id\" must not be null",
                ));
            }
            msg.kind = if id.is_some() {
                Kind::Request
            } else {
                Kind::Notification
            };
            if let Some(p) = params {
                self.read_params(p, name, &mut msg)?;
            }
            msg.method = Some(name.to_owned());
            return Ok(msg);
        }
        if params.is_some() {
            return Err(JsonRpcError::InvalidRequest(
                "Invalid Request: \"params\" without \"method\"",
            ));
        }
        match (result, error) {
            (Some(_), Some(_)) => Err(JsonRpcError::InvalidRequest(
                "Invalid Request: both \"result\" and \"error\"",
            )),
            (Some(r), None) => {
                if msg.id.is_none() {
                    return Err(JsonRpcError::InvalidRequest(
                        "Invalid Request: a response needs a string or integer \"id\"",
                    ));
                }
                msg.kind = Kind::Response;
                (msg.tool_error, msg.lists) = self.read_result(r)?;
                Ok(msg)
            }
            (None, Some(e)) => {
                msg.kind = Kind::ErrorResponse;
                msg.error_code = Some(self.error_code(e)?);
                Ok(msg)
            }
            (None, None) => Err(JsonRpcError::InvalidRequest(
                "Invalid Request: no \"method\", \"result\" or \"error\"",
            )),
        }
    }

    /// `result.isError == true` (only the top level of `result`; anything else is not a tool
    /// error), and the lists `result` carries (a list key twice is refused, as the filter does).
    fn read_result(&self, r: usize) -> Result<(bool, ListSet), JsonRpcError> {
        if !matches!(self.node(r)?, Node::Object { .. }) {
            return Ok((false, ListSet::NONE));
        }
        let mut is_error = None;
        let mut lists = ListSet::NONE;
        for member in self.members(r)? {
            let (key, value) = member?;
            if key == "isError" && is_error.is_none() {
                is_error = Some(matches!(
                    self.node(value)?,
                    Node::Static(StaticNode::Bool(true))
                ));
            } else if let Some(kind) = ListSet::kind_of_key(key) {
                if lists.contains(kind) {
                    return Err(JsonRpcError::InvalidRequest(
                        "Invalid Request: a list appears twice in \"result\"",
                    ));
                }
                lists = lists.with(kind);
            }
        }
        Ok((is_error.unwrap_or(false), lists))
    }

    fn error_code(&self, e: usize) -> Result<i64, JsonRpcError> {
        const BAD: JsonRpcError =
            JsonRpcError::InvalidRequest("Invalid Request: \"error\" needs an integer \"code\"");
        if !matches!(self.node(e)?, Node::Object { .. }) {
            return Err(BAD);
        }
        let mut code = None;
        for member in self.members(e)? {
            let (key, value) = member?;
            if key == "code" {
                once(
                    &mut code,
                    value,
                    "Invalid Request: duplicate \"error.code\"",
                )?;
            }
        }
        match code.map(|c| self.node(c)).transpose()? {
            Some(Node::Static(StaticNode::I64(n))) => Ok(n),
            Some(Node::Static(StaticNode::U64(n))) => i64::try_from(n).map_err(|_| BAD),
            _ => Err(BAD),
        }
    }

    fn string_member(&self, v: usize, bad: &'static str) -> Result<String, JsonRpcError> {
        match self.node(v)? {
            Node::String(s) => Ok(s.to_owned()),
            _ => Err(JsonRpcError::InvalidRequest(bad)),
        }
    }

    fn read_params(&self, p: usize, method: &str, msg: &mut Message) -> Result<(), JsonRpcError> {
        if !matches!(self.node(p)?, Node::Object { .. }) {
            return Err(JsonRpcError::InvalidRequest(
                "Invalid Request: \"params\" must be an object",
            ));
        }
        let (mut name, mut uri, mut reference, mut meta) = (None, None, None, None);
        for member in self.members(p)? {
            let (key, value) = member?;
            match key {
                "name" => once(
                    &mut name,
                    value,
                    "Invalid Request: duplicate \"params.name\"",
                )?,
                "uri" => once(&mut uri, value, "Invalid Request: duplicate \"params.uri\"")?,
                "ref" => once(
                    &mut reference,
                    value,
                    "Invalid Request: duplicate \"params.ref\"",
                )?,
                "_meta" => once(
                    &mut meta,
                    value,
                    "Invalid Request: duplicate \"params._meta\"",
                )?,
                _ => {}
            }
        }
        if let Some(m) = meta {
            msg.progress_token = self.progress_token(m)?;
        }
        let reference = match reference {
            Some(r) if matches!(self.node(r)?, Node::Object { .. }) => Some(self.read_ref(r)?),
            _ => None,
        };
        msg.target = match method {
            "tools/call" | "prompts/get" => match name {
                Some(v) => Target::Name(
                    self.string_member(v, "Invalid Request: \"params.name\" must be a string")?,
                ),
                None => Target::None,
            },
            "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "notifications/resources/updated" => match uri {
                Some(v) => Target::Uri(
                    self.string_member(v, "Invalid Request: \"params.uri\" must be a string")?,
                ),
                None => Target::None,
            },
            "completion/complete" => reference.unwrap_or_default(),
            _ => Target::None,
        };
        Ok(())
    }

    fn progress_token(&self, meta: usize) -> Result<Option<Range<usize>>, JsonRpcError> {
        if !matches!(self.node(meta)?, Node::Object { .. }) {
            return Ok(None);
        }
        let mut token = None;
        for member in self.members(meta)? {
            let (key, value) = member?;
            if key == "progressToken" {
                once(
                    &mut token,
                    value,
                    "Invalid Request: duplicate \"params._meta.progressToken\"",
                )?;
            }
        }
        match token {
            None => Ok(None),
            Some(t) => match self.node(t)? {
                Node::String(_)
                | Node::Static(StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_)) => {
                    Ok(Some(self.scalar_range(t)?))
                }
                _ => Err(JsonRpcError::InvalidRequest(
                    "Invalid Request: \"progressToken\" must be a string or a number",
                )),
            },
        }
    }

    fn read_ref(&self, r: usize) -> Result<Target, JsonRpcError> {
        let (mut ty, mut name, mut uri) = (None, None, None);
        for member in self.members(r)? {
            let (key, value) = member?;
            match key {
                "type" => once(&mut ty, value, "Invalid Request: duplicate \"ref.type\"")?,
                "name" => once(&mut name, value, "Invalid Request: duplicate \"ref.name\"")?,
                "uri" => once(&mut uri, value, "Invalid Request: duplicate \"ref.uri\"")?,
                _ => {}
            }
        }
        let ty = match ty.map(|t| self.node(t)).transpose()? {
            Some(Node::String(t)) => t,
            _ => return Ok(Target::None),
        };
        Ok(match (ty, name, uri) {
            ("ref/prompt", Some(n), _) => Target::PromptRef(
                self.string_member(n, "Invalid Request: \"ref.name\" must be a string")?,
            ),
            ("ref/resource", _, Some(u)) => Target::ResourceRef(
                self.string_member(u, "Invalid Request: \"ref.uri\" must be a string")?,
            ),
            _ => Target::None,
        })
    }
}

/// Appends a JSON-RPC error body. `id_raw` must be a raw id produced by [`Classifier`] (it is
/// copied verbatim); `None` writes `"id":null`.
pub fn error_response(id_raw: Option<&[u8]>, code: i64, message: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id_raw.unwrap_or(b"null"));
    out.extend_from_slice(br#","error":{"code":"#);
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(br#","message":"#);
    write_json_string(message, out);
    out.extend_from_slice(b"}}");
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}
