//! Which MCP methods the ACL governs, matched exactly, and the refusal of near-misses
//! ("Tools/Call", " tools/call", "tools/ｃall") that a lenient upstream might dispatch as the
//! governed method while the gateway would have waved them through as ungoverned.

/// The role a method plays for the ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Governed {
    /// `tools/list`, … : the answer is filtered.
    List(ListKind),
    ToolsCall,
    PromptsGet,
    ResourcesRead,
    /// `resources/subscribe` and `resources/unsubscribe`.
    ResourcesSubscribe,
    CompletionComplete,
    /// Server→client: `notifications/resources/updated`.
    ResourceUpdated,
    /// Server→client requests governed per API.
    Sampling,
    Elicitation,
    Roots,
}

/// The four list methods whose results the ACL filters (keyed on name / name / uri / uriTemplate):
/// the codec's own kind, so the decision and the filter can never disagree on which list is which.
pub use mcpgate_codec::filter::ListKind;

/// Exact, case-sensitive lookup, as the MCP SDKs dispatch.
pub fn governed(method: &str) -> Option<Governed> {
    Some(match method {
        "tools/list" => Governed::List(ListKind::Tools),
        "tools/call" => Governed::ToolsCall,
        "prompts/list" => Governed::List(ListKind::Prompts),
        "prompts/get" => Governed::PromptsGet,
        "resources/list" => Governed::List(ListKind::Resources),
        "resources/templates/list" => Governed::List(ListKind::ResourceTemplates),
        "resources/read" => Governed::ResourcesRead,
        "resources/subscribe" | "resources/unsubscribe" => Governed::ResourcesSubscribe,
        "completion/complete" => Governed::CompletionComplete,
        "notifications/resources/updated" => Governed::ResourceUpdated,
        "sampling/createMessage" => Governed::Sampling,
        "elicitation/create" => Governed::Elicitation,
        "roots/list" => Governed::Roots,
        _ => return None,
    })
}

const GOVERNED_NAMES: [&str; 14] = [
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "notifications/resources/updated",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
];

/// True when `method` is not a governed method but folds to one: differs only by case (ASCII or
/// Unicode, incl. the dotless ı and long ſ), whitespace, control or zero-width characters, or
/// full-width forms. Such a message must be refused, never passed as "ungoverned".
pub fn is_disguised_governed(method: &str) -> bool {
    // Fast path: the common ungoverned methods (`initialize`, `ping`, `notifications/…`) are
    // plain ASCII with nothing to fold except case; compare case-insensitively without allocating.
    if method.bytes().all(|b| b.is_ascii_graphic()) {
        return GOVERNED_NAMES
            .iter()
            .any(|name| name.eq_ignore_ascii_case(method) && *name != method);
    }
    let folded = fold(method);
    GOVERNED_NAMES
        .iter()
        .any(|name| name.to_lowercase() == folded)
}

fn fold(method: &str) -> String {
    let mut out = String::with_capacity(method.len());
    for c in method.chars() {
        if c.is_whitespace() || c.is_control() || is_invisible(c) {
            continue;
        }
        let c = match c {
            // Full-width ASCII variants (U+FF01..U+FF5E) map onto ASCII.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            'ı' => 'i',
            'ſ' => 's',
            '\u{2044}' | '\u{2215}' => '/',
            _ => c,
        };
        out.extend(c.to_lowercase());
    }
    out
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_are_governed_and_not_disguised() {
        for name in GOVERNED_NAMES {
            assert!(governed(name).is_some(), "{name}");
            assert!(!is_disguised_governed(name), "{name}");
        }
    }

    #[test]
    fn disguises_are_caught() {
        for m in [
            "Tools/Call",
            "TOOLS/CALL",
            " tools/call",
            "tools/call\n",
            "tools/call\u{200B}",
            "tools/ｃall",
            "resources/lıst",
            "Sampling/CreateMessage",
            "sampling/createmessage",
            "prompts\u{2215}get",
        ] {
            assert!(governed(m).is_none(), "{m:?}");
            assert!(is_disguised_governed(m), "{m:?}");
        }
    }

    #[test]
    fn ordinary_methods_pass() {
        for m in [
            "initialize",
            "ping",
            "notifications/initialized",
            "notifications/tools/list_changed",
            "logging/setLevel",
            "tasks/get",
            "tools/calls",
        ] {
            assert!(!is_disguised_governed(m), "{m}");
        }
    }
}
