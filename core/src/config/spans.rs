//! Exact positions for errors inside the per-API tables that validation deserializes in a second
//! step (`[api.acl]`, `[api.plan]`: they are read as plain TOML values first, so that one error
//! can name the API, and a plain value has lost the positions of its nested keys).
//!
//! Two ways, the first that knows wins:
//! - `[api.acl]` is read again from the document text straight into its serde type, so the TOML
//!   parser reports the offending key or value where it is (a key inside `[[api.acl.rule]]` at
//!   its own line, not at `[api.acl]`);
//! - for the plans (whose `type`-tagged form loses positions inside serde), and as a fallback,
//!   an `unknown field` or `unknown variant` message is matched to the first place after the
//!   table where that key is set or that value is written, before the next `[[api]]`.

use std::ops::Range;

use mcpgate_policies::acl::AclConfig;
use serde::Deserialize;

/// The document, with only the APIs' ACL tables typed (everything else ignored).
#[derive(Deserialize)]
struct AclProbe {
    #[serde(default, rename = "api")]
    _api: Vec<AclProbeApi>,
}

#[derive(Deserialize)]
struct AclProbeApi {
    /// Only deserialized for its errors.
    #[serde(rename = "acl")]
    _acl: Option<AclConfig>,
}

/// The first error of any `[api.acl]` table as the TOML parser reports it reading the text in
/// order: where it is, and its message (which may differ from the first error of the plain
/// value, whose keys are sorted).
pub(super) fn acl_error(text: &str) -> Option<(Range<usize>, String)> {
    match toml::from_str::<AclProbe>(text) {
        Ok(_) => None,
        Err(e) => Some((e.span()?, e.message().trim_end().to_string())),
    }
}

/// The span of what `message` names, searched from `table.start` to the next `[[api]]`:
/// the key of `unknown field `k``, the value of `unknown variant `v``. `None` for other
/// messages, or when it is not found.
pub(super) fn named_in_message(
    text: &str,
    table: &Range<usize>,
    message: &str,
) -> Option<Range<usize>> {
    let region_start = table.start.min(text.len());
    let rest = text.get(region_start..)?;
    let region_end = region_start + next_api_header(rest).unwrap_or(rest.len());
    let region = text.get(region_start..region_end)?;
    let found = if let Some(key) = quoted_after(message, "unknown field `") {
        find_key(region, key)
    } else if let Some(value) = quoted_after(message, "unknown variant `") {
        find_value(region, value)
    } else {
        None
    }?;
    Some(region_start + found.start..region_start + found.end)
}

/// The span of the key an ACL compile error names (`rule[2].pattern`): that key inside the
/// third `[[api.acl.rule]]` after `table.start` (same API). `None` for Gravitee rules (their
/// JSON is not in this file) or when not found.
pub(super) fn acl_rule_key(text: &str, table: &Range<usize>, at: &str) -> Option<Range<usize>> {
    let rest = at.strip_prefix("rule[")?;
    let (index, rest) = rest.split_once(']')?;
    let index: usize = index.parse().ok()?;
    let key = rest.strip_prefix('.')?;
    let key = key.split(['.', '[']).next()?;
    let region_start = table.start.min(text.len());
    let region = text.get(region_start..)?;
    let region = region.get(..next_api_header(region).unwrap_or(region.len()))?;
    let mut offset = 0;
    let mut seen = 0;
    let mut lines = region.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        let header = line.trim();
        offset += line.len();
        if header.starts_with("[[") && header.trim_matches(['[', ']', ' ']) == "api.acl.rule" {
            if seen == index {
                // The rule's own lines, up to the next table header.
                let body_start = offset;
                let mut body_len = 0;
                for line in lines.by_ref() {
                    if line.trim_start().starts_with('[') {
                        break;
                    }
                    body_len += line.len();
                }
                let body = region.get(body_start..body_start + body_len)?;
                let found = find_key(body, key)?;
                return Some(
                    region_start + body_start + found.start..region_start + body_start + found.end,
                );
            }
            seen += 1;
        }
    }
    None
}

/// The name between the backticks that follow `prefix` in `message`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let start = message.find(prefix)? + prefix.len();
    let rest = message.get(start..)?;
    rest.get(..rest.find('`')?)
}

/// Offset of the first `[[api]]` header line after the first line of `region`.
fn next_api_header(region: &str) -> Option<usize> {
    let mut offset = region.find('\n')? + 1;
    for line in region.get(offset..)?.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("[[") && t.trim_start_matches('[').trim_start().starts_with("api") {
            let name = t
                .trim_start_matches('[')
                .trim()
                .trim_end_matches(|c: char| c == ']' || c.is_whitespace());
            if name == "api" {
                return Some(offset);
            }
        }
        offset += line.len();
    }
    None
}

/// The first place in `region` where `key` is set: at the start of a line (or after `{` / `,`
/// in an inline table), bare or quoted, followed by `=` or `.`; outside comments.
fn find_key(region: &str, key: &str) -> Option<Range<usize>> {
    let mut line_start = 0;
    for line in region.split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or(line);
        for (i, _) in code.match_indices(key) {
            let before = code.get(..i).unwrap_or("").trim_end();
            let before = before
                .strip_suffix('"')
                .or_else(|| before.strip_suffix('\''))
                .unwrap_or(before)
                .trim_end();
            let after = code.get(i + key.len()..).unwrap_or("");
            let after = after
                .strip_prefix('"')
                .or_else(|| after.strip_prefix('\''))
                .unwrap_or(after)
                .trim_start();
            let key_start = before.is_empty() || before.ends_with('{') || before.ends_with(',');
            if key_start && (after.starts_with('=') || after.starts_with('.')) {
                return Some(line_start + i..line_start + i + key.len());
            }
        }
        line_start += line.len();
    }
    None
}

/// The first place in `region` where `value` is written as a string.
fn find_value(region: &str, value: &str) -> Option<Range<usize>> {
    for quote in ['"', '\''] {
        let needle = format!("{quote}{value}{quote}");
        if let Some(i) = region.find(&needle) {
            return Some(i + 1..i + 1 + value.len());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::{load_str, Overrides};

    fn err(text: &str) -> String {
        match load_str(text, "t.toml", &Overrides::default()) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    const API: &str = "[[api]]\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n";

    #[test]
    fn a_bad_key_inside_an_acl_rule_is_reported_at_its_own_line() {
        let e = err(&format!(
            "{API}\n[api.acl]\ndry_run = false\n\n[[api.acl.rule]]\nmethods = [\"tools/list\"]\n\n\
             [[api.acl.rule]]\nmethods = [\"tools/call\"]\nnmes = [\"echo\"]\n"
        ));
        assert!(
            e.starts_with("t.toml:13:1: api[0].acl: unknown field `nmes`"),
            "{e}"
        );
        // A bad value, and a bad key of an inline table.
        let e = err(&format!(
            "{API}[api.acl]\n[[api.acl.rule]]\nmethods = [\"tools/lst\"]\n"
        ));
        assert!(e.starts_with("t.toml:6:"), "{e}");
        let e = err(&format!(
            "{API}[api.acl]\n[[api.acl.rule]]\ntype = \"TOOLS\"\nrefusal = {{ code = 1, mesage = \"x\" }}\n"
        ));
        assert!(e.starts_with("t.toml:7:"), "{e}");
        // The second API's ACL.
        let e = err(&format!(
            "{API}[api.acl]\n[[api.acl.rule]]\ntype = \"TOOLS\"\n\
             [[api]]\npath = \"/b\"\nupstream = \"http://127.0.0.1:3002/mcp\"\n\
             [api.acl]\nserver_requests = {{ sampling = \"maybe\" }}\n"
        ));
        assert!(
            e.starts_with("t.toml:11:") && e.contains("api[1].acl"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_key_inside_a_plan_is_reported_at_its_own_line() {
        let e = err(&format!(
            "{API}\n[[api.plan]]\ntype = \"keyless\"\n\n[[api.plan]]\ntype = \"api_key\"\n\
             header = \"X-Key\"\nkyes = [\"0123456789abcdef0\"]\n"
        ));
        assert!(
            e.starts_with("t.toml:11:1: api[0].plan: unknown field `kyes`"),
            "{e}"
        );
        let e = err(&format!("{API}[api.plan]\ntype = \"oauth\"\n"));
        assert!(e.starts_with("t.toml:5:9: "), "{e}");
    }

    #[test]
    fn a_rule_that_does_not_compile_is_reported_at_the_key() {
        let e = err(&format!(
            "{API}[api.acl]\n[[api.acl.rule]]\ntype = \"TOOLS\"\n\n[[api.acl.rule]]\n\
             methods = [\"tools/call\"]\npattern = \"a)|(b\"\n"
        ));
        assert!(
            e.starts_with("t.toml:10:1: api[0].acl: ") && e.contains("rule[1].pattern"),
            "{e}"
        );
    }

    #[test]
    fn keys_are_found_only_where_they_are_set() {
        let region = "a = 1 # nmes = 2\nx = { nmes = 3 }\n";
        assert_eq!(super::find_key(region, "nmes"), Some(23..27));
        assert_eq!(super::find_key("names = [\"nmes\"]\n", "nmes"), None);
        assert_eq!(super::find_key("\"nmes\" = 1\n", "nmes"), Some(1..5));
        let text = "[api.plan]\nx = 1\n[[api]]\nkyes = 2\n";
        assert_eq!(
            super::named_in_message(text, &(0..10), "unknown field `kyes`, expected"),
            None,
            "never past the next [[api]]"
        );
    }
}
