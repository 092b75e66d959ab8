//! Rewriting a parsed head for forwarding: replace the request-target, drop fields (by name or the
//! hop-by-hop set), set or add fields; every untouched field is copied with its name and value bytes
//! exactly as received. The start line is always written as HTTP/1.1. Nothing allocates except
//! `out` (the edit lists live inline unless a caller queues unusually many edits).

use std::ops::Range;

use smallvec::SmallVec;

use super::head::{list_elements, HeaderSpan, RequestHead, ResponseHead, Span};

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1, plus the
/// `Proxy-Connection` and `Keep-Alive` legacy fields and the proxy authentication pair).
const HOP_BY_HOP: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"proxy-authenticate",
    b"proxy-authorization",
];

/// [`DropFilter`] of [`HOP_BY_HOP`], built at compile time.
const HOP_BY_HOP_FILTER: DropFilter = {
    let mut filter = DropFilter::EMPTY;
    let mut i = 0;
    while i < HOP_BY_HOP.len() {
        filter.insert(HOP_BY_HOP[i]);
        i += 1;
    }
    filter
};

/// A 256-bit Bloom-style filter over the names that can drop a field (`remove`, `set`, the
/// hop-by-hop set and the Connection-listed names), built per write, so that a field that stays,
/// the common case, skips the ~20 case-insensitive comparisons of [`HeadWriter::is_dropped`].
///
/// A name's bit depends on its length and on its first and last bytes with bit 5 set: `b | 0x20`
/// is the same for a byte and its other ASCII case, so names equal ignoring ASCII case share a
/// bit. A clear bit proves the field is not dropped; a set bit only means "compare". The length
/// alone would be a weak key: `user-agent` collides with `connection`, `accept` with `expect`,
/// `content-length` with `mcp-session-id`.
#[derive(Clone, Copy)]
struct DropFilter([u64; 4]);

impl DropFilter {
    const EMPTY: DropFilter = DropFilter([0; 4]);

    #[inline]
    const fn bit(name: &[u8]) -> usize {
        let (first, last) = match (name.first(), name.last()) {
            (Some(first), Some(last)) => (*first | 0x20, *last | 0x20),
            _ => (0, 0),
        };
        name.len()
            .wrapping_mul(37)
            .wrapping_add(first as usize * 7 + last as usize)
            & 255
    }

    // In place: building a copy per insert made the 32-byte filter round-trip through memory.
    const fn insert(&mut self, name: &[u8]) {
        let bit = Self::bit(name);
        self.0[bit >> 6] |= 1 << (bit & 63);
    }

    #[inline]
    fn may_contain(&self, name: &[u8]) -> bool {
        let bit = Self::bit(name);
        self.0[bit >> 6] & (1 << (bit & 63)) != 0
    }
}

enum StartLine {
    Request { method: Span, target: Span },
    Response { status: u16, reason: Span },
}

/// Builder for a rewritten head. Queue edits, then [`HeadWriter::write`].
///
/// `set`/`add` names and values, and a replacement target, come from the gateway, not the peer;
/// a name that is not a token or a value containing CR, LF or NUL is not written (header
/// injection guard), and a target containing SP, CR, LF or NUL is ignored in favour of the original.
pub struct HeadWriter<'b> {
    buf: &'b [u8],
    start: StartLine,
    headers: &'b [HeaderSpan],
    new_target: Option<&'b [u8]>,
    remove: SmallVec<[&'b str; 8]>,
    remove_hop_by_hop: bool,
    set: SmallVec<[(&'b str, &'b [u8]); 8]>,
    add: SmallVec<[(&'b str, &'b [u8]); 8]>,
}

impl<'b> HeadWriter<'b> {
    pub fn request(buf: &'b [u8], head: &'b RequestHead) -> Self {
        Self::new(
            buf,
            StartLine::Request {
                method: head.method,
                target: head.target,
            },
            &head.headers,
        )
    }

    pub fn response(buf: &'b [u8], head: &'b ResponseHead) -> Self {
        Self::new(
            buf,
            StartLine::Response {
                status: head.status,
                reason: head.reason,
            },
            &head.headers,
        )
    }

    fn new(buf: &'b [u8], start: StartLine, headers: &'b [HeaderSpan]) -> Self {
        HeadWriter {
            buf,
            start,
            headers,
            new_target: None,
            remove: SmallVec::new(),
            remove_hop_by_hop: false,
            set: SmallVec::new(),
            add: SmallVec::new(),
        }
    }

    /// Replace the request-target (ignored for responses).
    // The builder methods are `#[inline]` (also across crates) so that a chain of them can edit
    // one `HeadWriter` in place rather than move its 736 bytes at every step; for edits made
    // under conditions, `writer = writer.set(..)` still moves it: use the `_mut` forms there.
    #[inline]
    pub fn target(mut self, new_target: &'b [u8]) -> Self {
        self.new_target = Some(new_target);
        self
    }

    /// Drop every field named `name` (case-insensitive).
    #[inline]
    pub fn remove(mut self, name: &'b str) -> Self {
        self.remove_mut(name);
        self
    }

    /// [`HeadWriter::remove`] in place.
    #[inline]
    pub fn remove_mut(&mut self, name: &'b str) {
        self.remove.push(name);
    }

    /// Drop the hop-by-hop fields and every field named in a `Connection` field.
    #[inline]
    pub fn remove_hop_by_hop(mut self) -> Self {
        self.remove_hop_by_hop = true;
        self
    }

    /// Replace every field named `name` with one `name: value` (added if absent). Set fields are
    /// written after the copied ones.
    #[inline]
    pub fn set(mut self, name: &'b str, value: &'b [u8]) -> Self {
        self.set_mut(name, value);
        self
    }

    /// [`HeadWriter::set`] in place.
    #[inline]
    pub fn set_mut(&mut self, name: &'b str, value: &'b [u8]) {
        self.set.push((name, value));
    }

    /// Append `name: value`, keeping any existing fields of that name.
    #[inline]
    pub fn add(mut self, name: &'b str, value: &'b [u8]) -> Self {
        self.add_mut(name, value);
        self
    }

    /// [`HeadWriter::add`] in place.
    #[inline]
    pub fn add_mut(&mut self, name: &'b str, value: &'b [u8]) {
        self.add.push((name, value));
    }

    /// Write the head, including the blank line that ends it, to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let buf = self.buf;
        out.reserve(self.estimated_len());
        match self.start {
            StartLine::Request { method, target } => {
                out.extend_from_slice(method.get(buf));
                out.push(b' ');
                let target = match self.new_target {
                    Some(t) if is_valid_target(t) => t,
                    _ => target.get(buf),
                };
                out.extend_from_slice(target);
                out.extend_from_slice(b" HTTP/1.1\r\n");
            }
            StartLine::Response { status, reason } => {
                out.extend_from_slice(b"HTTP/1.1 ");
                let status = status.clamp(100, 999);
                out.extend_from_slice(&[
                    b'0' + (status / 100) as u8,
                    b'0' + (status / 10 % 10) as u8,
                    b'0' + (status % 10) as u8,
                    b' ',
                ]);
                out.extend_from_slice(reason.get(buf));
                out.extend_from_slice(b"\r\n");
            }
        }
        // Names listed in Connection, gathered once rather than per field.
        let mut connection_listed: SmallVec<[&[u8]; 8]> = SmallVec::new();
        let mut filter = DropFilter::EMPTY;
        if self.remove_hop_by_hop {
            for h in self.headers {
                if h.name.get(buf).eq_ignore_ascii_case(b"connection") {
                    connection_listed.extend(list_elements(h.value.get(buf)));
                }
            }
            filter = HOP_BY_HOP_FILTER;
            for token in &connection_listed {
                filter.insert(token);
            }
        }
        for name in &self.remove {
            filter.insert(name.as_bytes());
        }
        for (name, _) in &self.set {
            filter.insert(name.as_bytes());
        }
        // Kept fields whose lines are in `buf` exactly as `write_field` writes them, one after
        // the other, are copied as one run: one copy instead of four appends per field.
        let mut run = 0..0;
        for h in self.headers {
            let name = h.name.get(buf);
            // Fast path: a clear filter bit means no name that drops fields can match this one.
            if filter.may_contain(name) && self.is_dropped(name, &connection_listed) {
                continue;
            }
            let value = h.value.get(buf);
            match verbatim_line(buf, h, name, value) {
                Some(line) if line.start == run.end => run.end = line.end,
                Some(line) => {
                    flush_run(out, buf, &mut run);
                    run = line;
                }
                None => {
                    flush_run(out, buf, &mut run);
                    write_field(out, name, value);
                }
            }
        }
        flush_run(out, buf, &mut run);
        for (name, value) in self.set.iter().chain(self.add.iter()) {
            if is_token(name.as_bytes()) && is_valid_value(value) {
                write_field(out, name.as_bytes(), value);
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The exact test (the [`DropFilter`] only lets `write` skip it).
    fn is_dropped(&self, name: &[u8], connection_listed: &[&[u8]]) -> bool {
        if self
            .remove
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r.as_bytes()))
            || self
                .set
                .iter()
                .any(|(s, _)| name.eq_ignore_ascii_case(s.as_bytes()))
        {
            return true;
        }
        self.remove_hop_by_hop
            && (HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
                || connection_listed
                    .iter()
                    .any(|token| token.eq_ignore_ascii_case(name)))
    }

    /// An upper bound for the common case, so `out` grows once.
    fn estimated_len(&self) -> usize {
        let original = self
            .headers
            .last()
            .map_or(64, |h| h.value.end as usize + 64);
        let edits: usize = self
            .set
            .iter()
            .chain(self.add.iter())
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        original + edits + self.new_target.map_or(0, <[u8]>::len)
    }
}

#[inline]
fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The range of `buf` holding exactly the bytes [`write_field`] writes for the field `h`, whose
/// name and value in `buf` are `name` and `value` (`Span::get`): the field's own line when it is
/// `name: value` + CRLF, one space and no trailing whitespace. Copying that range is then the
/// same as writing the field.
fn verbatim_line(buf: &[u8], h: &HeaderSpan, name: &[u8], value: &[u8]) -> Option<Range<usize>> {
    let start = h.name.start as usize;
    let colon = start + name.len();
    let end = colon + 2 + value.len() + 2;
    let line = buf.get(start..end)?;
    // `line` starts with `name` (the span starting at `start`, or empty), and holds `value` at
    // `colon + 2` if the value's span starts there.
    let verbatim = h.value.start as usize == colon + 2
        && line.get(name.len()..name.len() + 2) == Some(b": ")
        && line.ends_with(b"\r\n");
    verbatim.then_some(start..end)
}

/// Appends the pending run of verbatim lines and empties it.
fn flush_run(out: &mut Vec<u8>, buf: &[u8], run: &mut Range<usize>) {
    out.extend_from_slice(buf.get(run.clone()).unwrap_or_default());
    *run = run.end..run.end;
}

/// `tchar` of RFC 9110 §5.6.2 as a byte table: one load per byte instead of a search of the
/// punctuation list.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

/// One `tchar` byte (RFC 9110 §5.6.2).
pub(super) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

pub(super) fn is_token(name: &[u8]) -> bool {
    // `fold` rather than `all`: no early exit, so the loop unrolls (names are short, and valid).
    !name.is_empty() && name.iter().fold(true, |ok, &b| ok & TCHAR[b as usize])
}

fn is_valid_value(value: &[u8]) -> bool {
    // `fold` rather than `any`: no early exit, so the compiler checks 16 or 32 bytes per step.
    !value
        .iter()
        .fold(false, |bad, &b| bad | matches!(b, b'\r' | b'\n' | 0))
}

fn is_valid_target(target: &[u8]) -> bool {
    !target.is_empty()
        && !target
            .iter()
            .any(|&b| matches!(b, b' ' | b'\r' | b'\n' | 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ResponseHead;

    /// The writer as it was before the fast paths: every field compared against every name.
    fn reference_write(w: &HeadWriter<'_>, out: &mut Vec<u8>) {
        fn reference_is_token(name: &[u8]) -> bool {
            !name.is_empty()
                && name
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        }
        fn reference_is_valid_value(value: &[u8]) -> bool {
            !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
        }
        let buf = w.buf;
        match w.start {
            StartLine::Request { method, target } => {
                out.extend_from_slice(method.get(buf));
                out.push(b' ');
                let target = match w.new_target {
                    Some(t) if is_valid_target(t) => t,
                    _ => target.get(buf),
                };
                out.extend_from_slice(target);
                out.extend_from_slice(b" HTTP/1.1\r\n");
            }
            StartLine::Response { status, reason } => {
                out.extend_from_slice(format!("HTTP/1.1 {} ", status.clamp(100, 999)).as_bytes());
                out.extend_from_slice(reason.get(buf));
                out.extend_from_slice(b"\r\n");
            }
        }
        let mut connection_listed: Vec<&[u8]> = Vec::new();
        if w.remove_hop_by_hop {
            for h in w.headers {
                if h.name.get(buf).eq_ignore_ascii_case(b"connection") {
                    connection_listed.extend(list_elements(h.value.get(buf)));
                }
            }
        }
        for h in w.headers {
            let name = h.name.get(buf);
            let dropped = w
                .remove
                .iter()
                .any(|r| name.eq_ignore_ascii_case(r.as_bytes()))
                || w.set
                    .iter()
                    .any(|(s, _)| name.eq_ignore_ascii_case(s.as_bytes()))
                || (w.remove_hop_by_hop
                    && (HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
                        || connection_listed
                            .iter()
                            .any(|t| t.eq_ignore_ascii_case(name))));
            if !dropped {
                out.extend_from_slice(name);
                out.extend_from_slice(b": ");
                out.extend_from_slice(h.value.get(buf));
                out.extend_from_slice(b"\r\n");
            }
        }
        for (name, value) in w.set.iter().chain(w.add.iter()) {
            if reference_is_token(name.as_bytes()) && reference_is_valid_value(value) {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value);
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    /// Names that drop fields, names of the same lengths (`user-agent` and `connection`,
    /// `accept` and `expect`, `content-length` and `mcp-session-id`, ...) and near misses.
    const NAMES: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "expect",
        "host",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "mcp-session-id",
        "content-length",
        "authorization",
        "x-api-key",
        "user-agent",
        "accept",
        "content-type",
        "mcp-protocol-version",
        "last-event-id",
        "x-private",
        "x-privatf",
        "connectioN",
        "connectiom",
        "tf",
        "ue",
        "t",
        "x",
        "trailes",
        "upgradf",
        "hosu",
        "gost",
        "cookie",
        "origin",
        "referer",
    ];

    const TCHARS: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";

    fn random_case(rng: &mut Rng, name: &str) -> String {
        name.chars()
            .map(|c| {
                if rng.chance(30) {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    fn random_name(rng: &mut Rng) -> String {
        if rng.chance(80) {
            let name = rng.pick(NAMES);
            random_case(rng, name)
        } else {
            // Random tokens, up to 80 bytes: past the 63-byte lengths too.
            let len = 1 + rng.below(80);
            (0..len)
                .map(|_| TCHARS[rng.below(TCHARS.len())] as char)
                .collect()
        }
    }

    fn random_value(rng: &mut Rng, name: &str) -> String {
        if name.eq_ignore_ascii_case("connection") || rng.chance(10) {
            let n = rng.below(5);
            let mut v = String::new();
            for i in 0..n {
                if i > 0 {
                    v.push_str(if rng.chance(50) { ", " } else { "," });
                }
                if rng.chance(10) {
                    continue; // an empty list element
                }
                v.push_str(&random_name(rng));
                if rng.chance(20) {
                    v.push(' ');
                }
            }
            v
        } else {
            rng.pick(&[
                "",
                "1",
                "close",
                "a b c",
                "application/json, text/event-stream",
                "x",
            ])
            .to_owned()
        }
    }

    const EDIT_VALUES: &[&str] = &[
        "v",
        "",
        "10.0.0.7",
        "a\r\nInjected: 1",
        "nul\0",
        "lf\n",
        "cr\r",
    ];
    const BAD_NAMES: &[&str] = &["", "bad name", "x\r\ny", "colon:", "é"];

    fn edit_name(rng: &mut Rng) -> String {
        if rng.chance(10) {
            rng.pick(BAD_NAMES).to_owned()
        } else {
            random_name(rng)
        }
    }

    fn check_equivalence(rng: &mut Rng, response: bool) -> bool {
        let mut raw = if response {
            String::from("HTTP/1.1 200 OK\r\n")
        } else {
            String::from("POST /mcp-proxy?x HTTP/1.1\r\nHost: gw.example\r\n")
        };
        for _ in 0..rng.below(16) {
            let name = random_name(rng);
            let value = random_value(rng, &name);
            // Mostly the canonical `name: value` (copied verbatim), sometimes other spacing.
            let (colon, trailing) = if rng.chance(70) {
                (": ", "")
            } else {
                (
                    rng.pick(&[":", ":  ", ":\t", ": "]),
                    rng.pick(&["", " ", "\t"]),
                )
            };
            raw.push_str(&format!("{name}{colon}{value}{trailing}\r\n"));
        }
        raw.push_str("\r\n");
        let removes: Vec<String> = (0..rng.below(4)).map(|_| edit_name(rng)).collect();
        let sets: Vec<(String, &str)> = (0..rng.below(10))
            .map(|_| (edit_name(rng), rng.pick(EDIT_VALUES)))
            .collect();
        let adds: Vec<(String, &str)> = (0..rng.below(3))
            .map(|_| (edit_name(rng), rng.pick(EDIT_VALUES)))
            .collect();
        let target = rng
            .chance(50)
            .then(|| rng.pick(&["/mcp", "", "/a b", "/x\r\n"]));
        let hop_by_hop = rng.chance(70);
        let buf = raw.as_bytes();
        let (request_head, response_head);
        let mut w = if response {
            response_head = match ResponseHead::parse(buf) {
                Ok(Some(h)) => h,
                _ => return false,
            };
            HeadWriter::response(buf, &response_head)
        } else {
            request_head = match RequestHead::parse(buf) {
                Ok(Some(h)) => h,
                _ => return false,
            };
            HeadWriter::request(buf, &request_head)
        };
        if let Some(target) = target {
            w = w.target(target.as_bytes());
        }
        if hop_by_hop {
            w = w.remove_hop_by_hop();
        }
        for name in &removes {
            if rng.chance(50) {
                w = w.remove(name);
            } else {
                w.remove_mut(name);
            }
        }
        for (name, value) in &sets {
            if rng.chance(50) {
                w = w.set(name, value.as_bytes());
            } else {
                w.set_mut(name, value.as_bytes());
            }
        }
        for (name, value) in &adds {
            if rng.chance(50) {
                w = w.add(name, value.as_bytes());
            } else {
                w.add_mut(name, value.as_bytes());
            }
        }
        let (mut fast, mut reference) = (Vec::new(), Vec::new());
        w.write(&mut fast);
        reference_write(&w, &mut reference);
        assert_eq!(
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&reference),
            "input {raw:?}, remove {removes:?}, set {sets:?}, add {adds:?}"
        );
        true
    }

    #[test]
    fn write_equals_the_reference_on_random_heads_and_edits() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for i in 0..30_000 {
            if check_equivalence(&mut rng, i % 4 == 0) {
                checked += 1;
            }
        }
        assert!(checked > 25_000, "only {checked} heads parsed");
    }

    #[test]
    fn filter_never_misses_a_name_equal_ignoring_case() {
        let mut rng = Rng(42);
        for _ in 0..20_000 {
            let name = random_name(&mut rng);
            let other = random_case(&mut rng, &name.to_ascii_lowercase());
            let mut filter = DropFilter::EMPTY;
            filter.insert(name.as_bytes());
            assert!(filter.may_contain(other.as_bytes()), "{name} / {other}");
        }
        for name in HOP_BY_HOP {
            assert!(HOP_BY_HOP_FILTER.may_contain(name));
            assert!(HOP_BY_HOP_FILTER.may_contain(&name.to_ascii_uppercase()));
        }
        // Non-ASCII bytes are compared exactly by eq_ignore_ascii_case, and hashed as they are.
        let mut filter = DropFilter::EMPTY;
        filter.insert("é".as_bytes());
        assert!(filter.may_contain("é".as_bytes()));
    }

    #[test]
    fn token_table_matches_the_rfc_list() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_token(&[b]), expected, "byte {b}");
        }
        assert!(!is_token(b""));
        assert!(is_token(b"X-Forwarded-For"));
        assert!(!is_token(b"x forwarded"));
    }

    #[test]
    fn common_fields_that_stay_skip_the_comparisons() {
        // Not a semantic requirement, the point of the filter: the fields of an MCP request that
        // the upstream rewrite keeps do not share a bit with the names that drop fields.
        let mut filter = HOP_BY_HOP_FILTER;
        for name in [
            "expect",
            "host",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "mcp-session-id",
            "keep-alive",
        ] {
            filter.insert(name.as_bytes());
        }
        for kept in [
            "User-Agent",
            "Accept",
            "Content-Type",
            "Content-Length",
            "MCP-Protocol-Version",
            "Authorization",
        ] {
            assert!(!filter.may_contain(kept.as_bytes()), "{kept}");
        }
    }
}
