//! The request id: one per HTTP exchange, shared by the gateway's log lines about it, its
//! exchange record(s), its trace spans, the request forwarded upstream and the answer
//! (`X-Request-Id` both ways; docs/observability.md, "Request ids").
//!
//! A client's `X-Request-Id` is kept when it is sane (1–128 visible ASCII characters: it is
//! copied into headers, JSON and log lines, so nothing that could break out of them); otherwise
//! the gateway makes one: `<process tag>-<worker>-<sequence>` from a per-thread counter, so
//! making one is a thread-local increment — no lock, no shared cache line, no allocation. The
//! process tag (8 hex digits from the start time and pid) keeps ids of restarts and replicas
//! apart.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, LazyLock};

use smallvec::SmallVec;

/// Longest client-supplied id kept.
pub const MAX_LEN: usize = 128;

/// The header both ways.
pub const HEADER: &str = "x-request-id";

/// Per-process tag, so generated ids from two processes (or one after a restart) differ.
static PROCESS_TAG: LazyLock<u32> = LazyLock::new(|| {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
        .hash(&mut h);
    std::process::id().hash(&mut h);
    h.finish() as u32
});

/// Threads that made ids so far: each thread's number, taken once.
static THREADS: AtomicU16 = AtomicU16::new(0);

thread_local! {
    /// (this thread's number, next sequence number).
    static NEXT: Cell<Option<(u16, u64)>> = const { Cell::new(None) };
}

/// One exchange's id. Generated ids stay numbers until written (no string per request).
#[derive(Clone, PartialEq, Eq)]
pub enum RequestId {
    Generated {
        thread: u16,
        seq: u64,
    },
    /// The client's `X-Request-Id`, checked by [`RequestId::from_client`].
    Client(Arc<str>),
}

/// An id as text, on the stack for generated ids.
pub type RequestIdText = SmallVec<[u8; 40]>;

impl RequestId {
    /// A fresh id from this thread's counter.
    pub fn generate() -> RequestId {
        NEXT.with(|next| {
            let (thread, seq) = next
                .get()
                .unwrap_or_else(|| (THREADS.fetch_add(1, Ordering::Relaxed), 0));
            next.set(Some((thread, seq.wrapping_add(1))));
            RequestId::Generated { thread, seq }
        })
    }

    /// The client's id when it is 1–128 visible ASCII characters (`!`..`~`), else `None`.
    pub fn from_client(value: &[u8]) -> Option<RequestId> {
        if value.is_empty() || value.len() > MAX_LEN || !value.iter().all(|b| b.is_ascii_graphic())
        {
            return None;
        }
        std::str::from_utf8(value)
            .ok()
            .map(|s| RequestId::Client(Arc::from(s)))
    }

    /// The client's id when sane, a generated one otherwise.
    pub fn from_header(value: Option<&[u8]>) -> RequestId {
        value
            .and_then(RequestId::from_client)
            .unwrap_or_else(RequestId::generate)
    }

    /// Appends the id's text.
    pub fn write_to<E: Extend<u8>>(&self, out: &mut E) {
        match self {
            RequestId::Client(s) => out.extend(s.bytes()),
            RequestId::Generated { thread, seq } => {
                push_hex(out, u64::from(*PROCESS_TAG), 8);
                out.extend([b'-']);
                push_hex(out, u64::from(*thread), 0);
                out.extend([b'-']);
                push_hex(out, *seq, 0);
            }
        }
    }

    pub fn text(&self) -> RequestIdText {
        let mut t = RequestIdText::new();
        self.write_to(&mut t);
        t
    }
}

/// `v` in lowercase hex, at least `width` digits.
fn push_hex<E: Extend<u8>>(out: &mut E, v: u64, width: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = ((64 - v.leading_zeros() as usize).div_ceil(4))
        .max(width)
        .max(1);
    out.extend(
        (0..digits)
            .rev()
            .map(|i| HEX[((v >> (i * 4)) & 0xf) as usize]),
    );
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids are ASCII by construction.
        f.write_str(std::str::from_utf8(&self.text()).unwrap_or("?"))
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_sane() {
        let ok = RequestId::from_header(Some(b"abc-123_XYZ.~"));
        assert_eq!(ok.to_string(), "abc-123_XYZ.~");
        let max = vec![b'a'; MAX_LEN];
        assert!(RequestId::from_client(&max).is_some());
        for bad in [
            &b""[..],
            b"has space",
            b"tab\there",
            b"new\r\nline",
            "é".as_bytes(),
            &[b'a'; MAX_LEN + 1][..],
        ] {
            assert!(RequestId::from_client(bad).is_none(), "{bad:?}");
            assert!(matches!(
                RequestId::from_header(Some(bad)),
                RequestId::Generated { .. }
            ));
        }
        assert!(matches!(
            RequestId::from_header(None),
            RequestId::Generated { .. }
        ));
    }

    #[test]
    fn generated_ids_differ_and_read_as_tag_thread_sequence() {
        let a = RequestId::generate().to_string();
        let b = RequestId::generate().to_string();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 3, "{a}");
        assert_eq!(parts[0].len(), 8, "{a}");
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'), "{a}");
        let other = std::thread::spawn(|| RequestId::generate().to_string())
            .join()
            .unwrap_or_default();
        assert_ne!(
            other.split('-').nth(1),
            parts.get(1).copied(),
            "{other} vs {a}"
        );
    }
}
