//! The response-head rewriter (`HeadWriter::response`, what the relay phase uses on every
//! upstream answer) under fuzzer-chosen edits. Input: a response head, a NUL byte, then one edit
//! per `\n`-separated line: `r<name>` remove, `s<name>:<value>` set, `a<name>:<value>` add, `h`
//! drop the hop-by-hop fields. Invariants: no panic; the output always ends its head with a blank
//! line and writes the same bytes twice; and when the edits hold only values the writer documents
//! as writable (no CR, LF or NUL) and that survive a parse unchanged (no other control byte, no
//! surrounding whitespace), the output parses back (unless an added field breaks the field-count
//! or size limit) with the same status and reason and exactly the fields of a model: the input's
//! fields minus the removed, set and (with `h`) hop-by-hop and Connection-listed ones, in order,
//! then the set and added ones whose name is a token.
use mcpgate_codec::http::{HeadWriter, HttpError, ResponseHead};

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

fn is_token(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// What `HeadWriter` writes at all (its header-injection guard).
fn writable(value: &[u8]) -> bool {
    !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

/// What httparse reads back byte for byte: field-vchar / SP / HTAB / obs-text, no OWS around.
fn round_trips(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80)
        && !value.first().is_some_and(|&b| b == b' ' || b == b'\t')
        && !value.last().is_some_and(|&b| b == b' ' || b == b'\t')
}

enum Edit<'a> {
    Remove(&'a str),
    Set(&'a str, &'a [u8]),
    Add(&'a str, &'a [u8]),
    HopByHop,
}

fn parse_edits(script: &[u8]) -> Vec<Edit<'_>> {
    let mut edits = Vec::new();
    for line in script.split(|&b| b == b'\n') {
        let Some((&op, rest)) = line.split_first() else {
            continue;
        };
        let (name, value) = match rest.iter().position(|&b| b == b':') {
            Some(colon) => (&rest[..colon], &rest[colon + 1..]),
            None => (rest, &b""[..]),
        };
        // Names are `&str` in the writer's API: the gateway only ever passes literals.
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        edits.push(match op {
            b'r' => Edit::Remove(name),
            b's' => Edit::Set(name, value),
            b'a' => Edit::Add(name, value),
            b'h' => Edit::HopByHop,
            _ => continue,
        });
    }
    edits
}

/// The input's fields as the model keeps them, then the written edits.
fn model<'b>(head: &ResponseHead, buf: &'b [u8], edits: &[Edit<'b>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let hop = edits.iter().any(|e| matches!(e, Edit::HopByHop));
    let listed: Vec<Vec<u8>> = if hop {
        head.headers(buf)
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .map(|t| t.trim_ascii().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    } else {
        Vec::new()
    };
    let dropped = |name: &[u8]| {
        edits.iter().any(|e| match e {
            Edit::Remove(n) | Edit::Set(n, _) => name.eq_ignore_ascii_case(n.as_bytes()),
            _ => false,
        }) || (hop
            && (HOP_BY_HOP
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
                || listed.iter().any(|t| name.eq_ignore_ascii_case(t))))
    };
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = head
        .headers(buf)
        .filter(|(n, _)| !dropped(n))
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    let sets = edits.iter().filter_map(|e| match e {
        Edit::Set(n, v) => Some((n, v)),
        _ => None,
    });
    let adds = edits.iter().filter_map(|e| match e {
        Edit::Add(n, v) => Some((n, v)),
        _ => None,
    });
    for (name, value) in sets.chain(adds) {
        if is_token(name.as_bytes()) && writable(value) {
            fields.push((name.as_bytes().to_vec(), value.to_vec()));
        }
    }
    fields
}

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let (head_bytes, script) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(Some(head)) = ResponseHead::parse(head_bytes) else {
        return;
    };
    let edits = parse_edits(script);
    let mut writer = HeadWriter::response(head_bytes, &head);
    for edit in &edits {
        match edit {
            Edit::Remove(name) => writer.remove_mut(name),
            Edit::Set(name, value) => writer.set_mut(name, value),
            Edit::Add(name, value) => writer.add_mut(name, value),
            Edit::HopByHop => writer = writer.remove_hop_by_hop(),
        }
    }
    let mut out = Vec::new();
    writer.write(&mut out);
    assert!(out.starts_with(b"HTTP/1.1 "), "{out:?}");
    assert!(out.ends_with(b"\r\n\r\n"), "{out:?}");
    let mut again = Vec::new();
    writer.write(&mut again);
    assert_eq!(out, again, "two writes differ");

    let clean = edits.iter().all(|e| match e {
        Edit::Set(_, v) | Edit::Add(_, v) => !writable(v) || round_trips(v),
        _ => true,
    });
    if !clean {
        return;
    }
    let parsed = match ResponseHead::parse(&out) {
        Ok(Some(parsed)) => parsed,
        Err(HttpError::TooManyHeaders | HttpError::HeadTooLarge) => return,
        other => panic!(
            "rewritten head did not parse: {other:?}\n{:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(parsed.head_len, out.len());
    assert_eq!(parsed.status, head.status);
    assert_eq!(parsed.reason(&out), head.reason(head_bytes));
    let written: Vec<(Vec<u8>, Vec<u8>)> = parsed
        .headers(&out)
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(
        written,
        model(&head, head_bytes, &edits),
        "fields differ from the model\n{:?}",
        String::from_utf8_lossy(&out)
    );
}
