//! The pure rules of a virtual MCP server (one endpoint over several upstreams; the I/O is
//! `mcpgate_core::features::virtual_server`): how client-visible names are made from an upstream's
//! name and its own (`<upstream><separator><name>`) and routed back, the gateway's list cursor
//! carrying each upstream's cursor, the session state sealed into the client's `Mcp-Session-Id`,
//! and the merge of `initialize` answers (protocol version, capabilities, instructions). No I/O.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest tool / prompt name the spec allows (SEP-986: `[A-Za-z0-9_.-]{1,128}`).
pub const MAX_NAME_LEN: usize = 128;

/// Why a client-visible name cannot be made or a cursor read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("`{0}` has characters outside [A-Za-z0-9_.-]")]
    Characters(String),
    #[error("`{0}` is empty")]
    Empty(String),
    #[error("`{name}` is {len} characters, over the spec's limit of {MAX_NAME_LEN}")]
    TooLong { name: String, len: usize },
}

/// A name the spec accepts as a tool name: `[A-Za-z0-9_.-]{1,128}`.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty(name.into()));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(NameError::Characters(name.into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            name: name.into(),
            len: name.len(),
        });
    }
    Ok(())
}

/// How an API's upstreams name their features for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// Upstream names, in configuration order (the index is the upstream's number).
    pub upstreams: Vec<String>,
    pub separator: String,
}

impl Naming {
    /// Checks what the configuration can: each upstream name is a valid name without the
    /// separator (so the first separator in a client name is the boundary, never ambiguous),
    /// names are unique, and `<upstream><sep>x` still fits the limit. `Err((index, message))`.
    pub fn validate(&self) -> Result<(), (usize, String)> {
        check_name(&self.separator).map_err(|e| (usize::MAX, format!("separator: {e}")))?;
        for (i, name) in self.upstreams.iter().enumerate() {
            check_name(name).map_err(|e| (i, e.to_string()))?;
            if name.contains(self.separator.as_str()) {
                return Err((
                    i,
                    format!(
                        "`{name}` contains the separator `{}`: names would be ambiguous",
                        self.separator
                    ),
                ));
            }
            if name.len() + self.separator.len() >= MAX_NAME_LEN {
                return Err((
                    i,
                    format!(
                        "`{name}{}` leaves no room for a tool name within {MAX_NAME_LEN} characters",
                        self.separator
                    ),
                ));
            }
            if self.upstreams[..i].contains(name) {
                return Err((i, format!("`{name}` names two upstreams")));
            }
        }
        Ok(())
    }

    /// With one upstream nothing is prefixed (a single stdio server published as it is).
    pub fn prefixes(&self) -> bool {
        self.upstreams.len() > 1
    }

    /// The client-visible name of upstream `index`'s tool `name`; refused when it breaks the
    /// spec's tool-name limits (the entry is then left out of the list, with a warning).
    pub fn expose(&self, index: usize, name: &str) -> Result<String, NameError> {
        if !self.prefixes() {
            return Ok(name.to_owned());
        }
        let full = self.prefix(index, name);
        check_name(&full)?;
        Ok(full)
    }

    /// The client-visible name of a prompt or a resource template: prefixed the same way, but
    /// not held to the tool-name charset (their names are free text, `"Dynamic Text Resource"`).
    pub fn prefix(&self, index: usize, name: &str) -> String {
        if !self.prefixes() {
            return name.to_owned();
        }
        let upstream = self.upstreams.get(index).map_or("", String::as_str);
        format!("{upstream}{}{name}", self.separator)
    }

    /// Which upstream a client-visible name belongs to, and the upstream's own name.
    pub fn route<'a>(&self, name: &'a str) -> Option<(usize, &'a str)> {
        if !self.prefixes() {
            return (!self.upstreams.is_empty()).then_some((0, name));
        }
        let (upstream, rest) = name.split_once(self.separator.as_str())?;
        let index = self.upstreams.iter().position(|u| u == upstream)?;
        (!rest.is_empty()).then_some((index, rest))
    }
}

/// The gateway's list cursor: the upstreams that still have pages, each with its own cursor.
/// Opaque to the client (base64url of JSON); a cursor the gateway did not make is refused
/// (-32602), never forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCursor {
    /// Upstream name → its `nextCursor`.
    #[serde(rename = "c")]
    pub pending: BTreeMap<String, String>,
}

impl ListCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(cursor: &str) -> Option<ListCursor> {
        let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let c: ListCursor = serde_json::from_slice(&raw).ok()?;
        (!c.pending.is_empty()).then_some(c)
    }
}

/// One upstream's leg of a virtual session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    /// The upstream's `Mcp-Session-Id` (empty: it gave none, or a shared stdio process).
    #[serde(rename = "s", default, skip_serializing_if = "String::is_empty")]
    pub session: String,
    /// The protocol version this upstream negotiated (sent as `MCP-Protocol-Version`).
    #[serde(rename = "v")]
    pub version: String,
}

/// What a virtual session is: sealed into the client's `Mcp-Session-Id` (AES-GCM, bound to the
/// subject), so any worker or replica serves it without shared memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualSession {
    /// The version the client got.
    #[serde(rename = "v")]
    pub version: String,
    /// Upstream name → its leg; an upstream down at `initialize` has none (it stays out of this
    /// session's lists, `fail_open`).
    #[serde(rename = "u")]
    pub legs: BTreeMap<String, Leg>,
}

impl VirtualSession {
    /// The payload sealed into the session id (marked so a pass-through id never parses as one).
    pub fn to_payload(&self) -> String {
        format!("v1:{}", serde_json::to_string(self).unwrap_or_default())
    }

    pub fn from_payload(payload: &str) -> Option<VirtualSession> {
        serde_json::from_str(payload.strip_prefix("v1:")?).ok()
    }
}

/// How a server→client request's id reads on the client's stream: the upstream's name and the
/// upstream's own id (as JSON), so the client's answer — which may reach any worker or replica —
/// is routed back without per-session memory. Upstream names have no `:` (see [`check_name`]).
const RELAYED_ID: &str = "mcpgate:";

/// The id a server→client request of `upstream` carries on the client's stream.
pub fn relayed_id(upstream: &str, id: &Value) -> Value {
    Value::String(format!("{RELAYED_ID}{upstream}:{id}"))
}

/// The upstream and its own id behind an id [`relayed_id`] made; `None` for any other id.
pub fn parse_relayed_id(id: &Value) -> Option<(&str, Value)> {
    let (upstream, own) = id.as_str()?.strip_prefix(RELAYED_ID)?.split_once(':')?;
    let own: Value = serde_json::from_str(own).ok()?;
    (check_name(upstream).is_ok() && (own.is_string() || own.is_number()))
        .then_some((upstream, own))
}

/// How a resource URI reads when a second upstream lists a URI an earlier one already listed:
/// `mcpgate://<upstream>/<the upstream's URI, percent-encoded>`, so both stay readable and the
/// gateway knows where to send a read without any memory. Upstream names are valid URI hosts
/// (see [`check_name`]).
const COLLIDED_URI: &str = "mcpgate://";

/// The client-visible URI of `upstream`'s resource `uri` that collided with another's.
pub fn collided_uri(upstream: &str, uri: &str) -> String {
    let mut out = String::with_capacity(COLLIDED_URI.len() + upstream.len() + 1 + uri.len() * 3);
    out.push_str(COLLIDED_URI);
    out.push_str(upstream);
    out.push('/');
    for b in uri.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The upstream and its own URI behind a [`collided_uri`]; `None` for any other URI.
pub fn parse_collided_uri(uri: &str) -> Option<(&str, String)> {
    let (upstream, encoded) = uri.strip_prefix(COLLIDED_URI)?.split_once('/')?;
    check_name(upstream).ok()?;
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some((upstream, String::from_utf8(out).ok()?))
}

/// The version the client gets: the oldest any upstream chose (MCP versions are dates, so they
/// order as strings), since a feature of a newer version may be missing behind the older one.
pub fn negotiate_version<'a>(chosen: impl IntoIterator<Item = &'a str>) -> Option<String> {
    chosen.into_iter().min().map(str::to_owned)
}

/// Merges the upstreams' `capabilities` (documented in docs/configuration.md):
/// - a capability (`tools`, `prompts`, `resources`, `logging`, `completions`, …) is offered when
///   any upstream offers it;
/// - a boolean flag inside one (`listChanged`, `subscribe`) is true when any upstream's is;
/// - other members: the first upstream's value wins (configuration order);
/// - `experimental`: the union of keys, first upstream first.
pub fn merge_capabilities<'a>(all: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut merged = Map::new();
    for caps in all {
        let Some(caps) = caps.as_object() else {
            continue;
        };
        for (key, value) in caps {
            match (merged.get_mut(key), value) {
                (None, v) => {
                    merged.insert(key.clone(), v.clone());
                }
                (Some(Value::Object(into)), Value::Object(from)) => {
                    for (k, v) in from {
                        match (into.get_mut(k), v) {
                            (Some(Value::Bool(a)), Value::Bool(b)) => *a |= *b,
                            (None, v) => {
                                into.insert(k.clone(), v.clone());
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Value::Object(merged)
}

/// The upstreams' `instructions`, each under its upstream's name, in configuration order.
pub fn combine_instructions<'a>(
    all: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Option<String> {
    let parts: Vec<String> = all
        .into_iter()
        .filter_map(|(name, text)| {
            let text = text?.trim();
            (!text.is_empty()).then(|| format!("## {name}\n{text}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn naming(names: &[&str], sep: &str) -> Naming {
        Naming {
            upstreams: names.iter().map(|s| s.to_string()).collect(),
            separator: sep.into(),
        }
    }

    #[test]
    fn names_are_prefixed_and_routed_back() {
        let n = naming(&["alpha", "beta"], "__");
        assert_eq!(n.expose(1, "get-sum").as_deref(), Ok("beta__get-sum"));
        assert_eq!(n.route("beta__get-sum"), Some((1, "get-sum")));
        // The first separator is the boundary: the upstream's own name may contain it.
        assert_eq!(n.route("alpha__a__b"), Some((0, "a__b")));
        assert_eq!(n.route("gamma__x"), None);
        assert_eq!(n.route("alpha__"), None);
        assert_eq!(n.route("echo"), None);
        // One upstream: nothing prefixed.
        let one = naming(&["only"], "__");
        assert_eq!(one.expose(0, "echo").as_deref(), Ok("echo"));
        assert_eq!(one.route("echo"), Some((0, "echo")));
    }

    #[test]
    fn names_over_the_limit_or_with_bad_characters_are_refused() {
        let n = naming(&["a", "b"], "_");
        assert!(matches!(
            n.expose(0, &"x".repeat(127)),
            Err(NameError::TooLong { len: 129, .. })
        ));
        assert!(n.expose(0, &"x".repeat(126)).is_ok());
        assert!(matches!(
            n.expose(0, "has space"),
            Err(NameError::Characters(_))
        ));
        // Prompts and templates carry free-text names.
        assert_eq!(n.prefix(1, "Dynamic Text"), "b_Dynamic Text");
    }

    #[test]
    fn configurations_that_would_be_ambiguous_are_refused() {
        assert!(naming(&["a", "b"], "__").validate().is_ok());
        assert_eq!(
            naming(&["a", "a"], "__").validate().map_err(|e| e.0),
            Err(1)
        );
        assert_eq!(
            naming(&["a", "x__y"], "__").validate().map_err(|e| e.0),
            Err(1)
        );
        assert_eq!(
            naming(&["a b", "x"], "__").validate().map_err(|e| e.0),
            Err(0)
        );
        assert_eq!(
            naming(&[&"l".repeat(126), "x"], "__")
                .validate()
                .map_err(|e| e.0),
            Err(0)
        );
        assert!(naming(&["a", "b"], "/").validate().is_err());
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let mut c = ListCursor::default();
        c.pending.insert("a".into(), "p2".into());
        c.pending.insert("b".into(), "xyz".into());
        assert_eq!(ListCursor::decode(&c.encode()), Some(c));
        assert_eq!(ListCursor::decode("not a cursor"), None);
        assert_eq!(ListCursor::decode(&ListCursor::default().encode()), None);
        assert_eq!(ListCursor::decode(&URL_SAFE_NO_PAD.encode("{}")), None);
    }

    #[test]
    fn sessions_round_trip_through_their_payload() {
        let mut s = VirtualSession {
            version: "2025-06-18".into(),
            ..Default::default()
        };
        s.legs.insert(
            "a".into(),
            Leg {
                session: "abc".into(),
                version: "2025-06-18".into(),
            },
        );
        s.legs.insert(
            "b".into(),
            Leg {
                session: String::new(),
                version: "2025-03-26".into(),
            },
        );
        assert_eq!(VirtualSession::from_payload(&s.to_payload()), Some(s));
        assert_eq!(VirtualSession::from_payload("upstream-session-id"), None);
    }

    #[test]
    fn the_oldest_version_wins() {
        assert_eq!(
            negotiate_version(["2025-06-18", "2025-03-26", "2025-11-25"]).as_deref(),
            Some("2025-03-26")
        );
        assert_eq!(negotiate_version([]), None);
    }

    #[test]
    fn capabilities_merge_by_union_and_flags_by_or() {
        let a = json!({"tools": {"listChanged": false}, "logging": {}, "experimental": {"x": 1}});
        let b = json!({"tools": {"listChanged": true}, "resources": {"subscribe": true},
                       "experimental": {"y": 2, "x": 9}});
        let m = merge_capabilities([&a, &b]);
        assert_eq!(
            m,
            json!({"tools": {"listChanged": true}, "logging": {}, "resources": {"subscribe": true},
                   "experimental": {"x": 1, "y": 2}})
        );
    }

    #[test]
    fn instructions_are_combined_under_each_upstream() {
        assert_eq!(
            combine_instructions([("a", Some("use me")), ("b", None), ("c", Some("  "))]),
            Some("## a\nuse me".into())
        );
        assert_eq!(combine_instructions([("a", None)]), None);
    }

    #[test]
    fn relayed_ids_round_trip_and_nothing_else_parses() {
        for own in [json!(7), json!("abc:def"), json!("\"quoted\""), json!(-1)] {
            let relayed = relayed_id("up-1", &own);
            assert_eq!(parse_relayed_id(&relayed), Some(("up-1", own.clone())));
        }
        for other in [
            json!(7),
            json!("7"),
            json!("mcpgate:"),
            json!("mcpgate:up"),
            json!("mcpgate:up:{}"),
            json!("mcpgate:up:not json"),
            json!("mcpgate:a b:1"),
            json!(null),
        ] {
            assert_eq!(parse_relayed_id(&other), None, "{other}");
        }
    }

    #[test]
    fn collided_uris_round_trip_and_nothing_else_parses() {
        for uri in [
            "demo://resource/static/document/architecture.md",
            "file:///tmp/a b?c=d#e",
            "ünï://ß/%41",
            "",
        ] {
            let visible = collided_uri("up_2", uri);
            assert!(visible.starts_with("mcpgate://up_2/"), "{visible}");
            assert!(visible.bytes().all(|b| b.is_ascii_graphic()), "{visible}");
            assert_eq!(parse_collided_uri(&visible), Some(("up_2", uri.to_owned())));
        }
        for other in [
            "demo://x",
            "mcpgate://",
            "mcpgate://up",
            "mcpgate://a b/x",
            "mcpgate://up/%4",
            "mcpgate://up/%zz",
            "mcpgate://up/%FF",
        ] {
            assert_eq!(parse_collided_uri(other), None, "{other}");
        }
    }
}
