//! OpenTelemetry traces of exchanges (docs/observability.md, "Traces"): W3C Trace Context in
//! (`traceparent`/`tracestate` from the client continued) and out (to the upstream, with the
//! upstream span's id), one server span per exchange with children for route, plan, ACL and the
//! upstream call, exported over OTLP/HTTP protobuf by one exporter thread.
//!
//! Cost rule, as for the exchange log: a worker only builds [`SpanData`] for sampled exchanges
//! and hands them over in batches with a non-blocking send ([`exporter`]); with no
//! `[gateway.traces]` nothing here runs — `RequestCtx::trace` stays `None` and each phase mark
//! is one branch.

pub mod exporter;
pub mod otlp;

use std::cell::Cell;
use std::time::{Duration, Instant};

pub use exporter::{TraceExporter, TraceStats, TracesConfig};

/// Span kinds of OTLP (`Span.SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// `Status.StatusCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    Unset = 0,
    Error = 2,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// A finished span, as the exporter encodes it.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    /// The client's `tracestate`, on the server span.
    pub trace_state: Option<Box<str>>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub status: StatusCode,
    pub status_message: Option<String>,
}

/// A sampled exchange's trace: its ids and the times of its phase boundaries.
#[derive(Debug, Clone)]
pub struct TraceCtx {
    pub trace_id: [u8; 16],
    /// The client's span (`traceparent`'s parent id), when it sent one.
    pub parent_span_id: Option<[u8; 8]>,
    /// The gateway's server span.
    pub span_id: [u8; 8],
    /// The upstream call's span: its id is the parent the upstream sees.
    pub upstream_span_id: [u8; 8],
    pub trace_state: Option<Box<str>>,
    /// Wall clock at the exchange's start; every other time is `Instant`-relative to it.
    pub start_unix_ns: u64,
    pub route_end: Option<Instant>,
    pub auth_start: Option<Instant>,
    pub auth_end: Option<Instant>,
    pub decide_start: Option<Instant>,
    pub decide_end: Option<Instant>,
    pub forward_start: Option<Instant>,
    pub forward_head: Option<Instant>,
}

impl TraceCtx {
    /// The `traceparent` sent upstream: this trace, the upstream span as parent, sampled.
    pub fn upstream_traceparent(&self) -> [u8; 55] {
        traceparent(&self.trace_id, &self.upstream_span_id, true)
    }

    /// Unix nanoseconds of `t` (an `Instant` of this exchange, `started` its start).
    pub fn unix_ns(&self, started: Instant, t: Instant) -> u64 {
        let since = t.saturating_duration_since(started);
        self.start_unix_ns
            .saturating_add(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// A parsed W3C `traceparent` (version 00; later versions read as 00 per the spec's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    /// `None` for anything malformed (then the gateway starts a new trace, as the spec says).
    pub fn parse(value: &[u8]) -> Option<TraceParent> {
        let v = value.trim_ascii();
        if v.len() < 55 || (v.len() > 55 && v.get(55) != Some(&b'-')) {
            return None;
        }
        let version = hex_byte(v.get(0..2)?)?;
        if version == 0xff || (version == 0 && v.len() != 55) {
            return None;
        }
        if v.get(2) != Some(&b'-') || v.get(35) != Some(&b'-') || v.get(52) != Some(&b'-') {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = hex_byte(v.get(3 + 2 * i..5 + 2 * i)?)?;
        }
        let mut parent_id = [0u8; 8];
        for (i, b) in parent_id.iter_mut().enumerate() {
            *b = hex_byte(v.get(36 + 2 * i..38 + 2 * i)?)?;
        }
        let flags = hex_byte(v.get(53..55)?)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            parent_id,
            sampled: flags & 1 == 1,
        })
    }
}

/// Lowercase hex only (the spec refuses uppercase).
fn hex_byte(two: &[u8]) -> Option<u8> {
    let d = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match two {
        [h, l] => Some(d(*h)? << 4 | d(*l)?),
        _ => None,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    s
}

/// `00-<trace>-<span>-<flags>`.
pub fn traceparent(trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) -> [u8; 55] {
    let mut out = [b'-'; 55];
    let text = format!(
        "00-{}-{}-{}",
        hex(trace_id),
        hex(span_id),
        if sampled { "01" } else { "00" }
    );
    out.copy_from_slice(text.as_bytes().get(..55).unwrap_or(&[b'0'; 55]));
    out
}

thread_local! {
    /// wyrand state, seeded once per thread from the OS: ids need to be unique, not secret.
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    // Fall back to the clock and the thread's stack address should the OS source fail.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        return t ^ (&b as *const _ as u64);
    }
    u64::from_le_bytes(b)
}

fn next_u64() -> u64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    })
}

pub fn new_span_id() -> [u8; 8] {
    loop {
        let id = next_u64();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

pub fn new_trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&next_u64().to_be_bytes());
    id[8..].copy_from_slice(&new_span_id());
    id
}

/// The sampling decision for a new exchange: a client's sampled flag is followed (parent-based);
/// a new trace is kept when its id falls under `ratio` (the low 8 bytes as a fraction, like
/// OpenTelemetry's `TraceIdRatioBased`, so every hop sampling by id agrees).
pub fn start(
    traceparent: Option<&[u8]>,
    tracestate: Option<&[u8]>,
    threshold: u64,
    started: Instant,
) -> Option<Box<TraceCtx>> {
    let parent = traceparent.and_then(TraceParent::parse);
    let (trace_id, parent_span_id) = match parent {
        Some(p) if !p.sampled => return None,
        Some(p) => (p.trace_id, Some(p.parent_id)),
        None => {
            let id = new_trace_id();
            let low = u64::from_be_bytes(id[8..].try_into().unwrap_or([0; 8]));
            if threshold != u64::MAX && low >= threshold {
                return None;
            }
            (id, None)
        }
    };
    let trace_state = parent
        .and(tracestate)
        .and_then(|s| std::str::from_utf8(s.trim_ascii()).ok())
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .map(Box::from);
    let start_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .saturating_sub(started.elapsed());
    Some(Box::new(TraceCtx {
        trace_id,
        parent_span_id,
        span_id: new_span_id(),
        upstream_span_id: new_span_id(),
        trace_state,
        start_unix_ns: u64::try_from(start_unix_ns.as_nanos()).unwrap_or(u64::MAX),
        route_end: None,
        auth_start: None,
        auth_end: None,
        decide_start: None,
        decide_end: None,
        forward_start: None,
        forward_head: None,
    }))
}

/// The ratio (in millionths) as a threshold on the trace id's low 8 bytes.
pub fn threshold_ppm(ppm: u32) -> u64 {
    threshold(f64::from(ppm) / 1e6)
}

/// The ratio as a threshold on the trace id's low 8 bytes (`u64::MAX`: keep all).
pub fn threshold(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        u64::MAX
    } else if ratio <= 0.0 {
        0
    } else {
        (ratio * u64::MAX as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip_and_refusals() {
        let good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = TraceParent::parse(good).unwrap_or_else(|| panic!("parse"));
        assert!(p.sampled);
        assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(&traceparent(&p.trace_id, &p.parent_id, true)[..], &good[..]);
        let unsampled = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(
            TraceParent::parse(unsampled).map(|p| p.sampled),
            Some(false)
        );
        // A future version may append fields.
        assert!(
            TraceParent::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
        for bad in [
            &b""[..],
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(
                TraceParent::parse(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn sampling_follows_the_parent_then_the_ratio() {
        let now = Instant::now();
        let sampled = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = start(Some(sampled), Some(b"k=v"), 0, now).unwrap_or_else(|| panic!("sampled"));
        assert_eq!(hex(&t.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.trace_state.as_deref(), Some("k=v"));
        assert_ne!(t.span_id, t.upstream_span_id);
        let tp = t.upstream_traceparent();
        assert!(tp.starts_with(b"00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert_eq!(&tp[36..52], hex(&t.upstream_span_id).as_bytes());
        let unsampled = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(start(Some(unsampled), None, u64::MAX, now).is_none());
        assert!(start(None, None, threshold(0.0), now).is_none());
        let t = start(None, Some(b"k=v"), threshold(1.0), now).unwrap_or_else(|| panic!("new"));
        assert!(t.parent_span_id.is_none() && t.trace_state.is_none());
        let kept = (0..2000)
            .filter(|_| start(None, None, threshold(0.25), now).is_some())
            .count();
        assert!((350..650).contains(&kept), "{kept}");
    }
}
