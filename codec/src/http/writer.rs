//! Rewriting a parsed head for forwarding: replace the request-target, drop fields (by name or the
//! hop-by-hop set), set or add fields; every untouched field is copied with its name and value bytes
//! exactly as received. The start line is always written as HTTP/1.1. Nothing allocates except
//! `out` (the edit lists live inline unless a caller queues unusually many edits).

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
    pub fn target(mut self, new_target: &'b [u8]) -> Self {
        self.new_target = Some(new_target);
        self
    }

    /// Drop every field named `name` (case-insensitive).
    pub fn remove(mut self, name: &'b str) -> Self {
        self.remove.push(name);
        self
    }

    /// Drop the hop-by-hop fields and every field named in a `Connection` field.
    pub fn remove_hop_by_hop(mut self) -> Self {
        self.remove_hop_by_hop = true;
        self
    }

    /// Replace every field named `name` with one `name: value` (added if absent). Set fields are
    /// written after the copied ones.
    pub fn set(mut self, name: &'b str, value: &'b [u8]) -> Self {
        self.set.push((name, value));
        self
    }

    /// Append `name: value`, keeping any existing fields of that name.
    pub fn add(mut self, name: &'b str, value: &'b [u8]) -> Self {
        self.add.push((name, value));
        self
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
        if self.remove_hop_by_hop {
            for h in self.headers {
                if h.name.get(buf).eq_ignore_ascii_case(b"connection") {
                    connection_listed.extend(list_elements(h.value.get(buf)));
                }
            }
        }
        for h in self.headers {
            let name = h.name.get(buf);
            if self.is_dropped(name, &connection_listed) {
                continue;
            }
            write_field(out, name, h.value.get(buf));
        }
        for (name, value) in self.set.iter().chain(self.add.iter()) {
            if is_token(name.as_bytes()) && is_valid_value(value) {
                write_field(out, name.as_bytes(), value);
            }
        }
        out.extend_from_slice(b"\r\n");
    }

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

fn is_token(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_valid_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

fn is_valid_target(target: &[u8]) -> bool {
    !target.is_empty()
        && !target
            .iter()
            .any(|&b| matches!(b, b' ' | b'\r' | b'\n' | 0))
}
